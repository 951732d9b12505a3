"""Evaluation of the face and voice models on a labelled dataset (the metrics themselves
are in :mod:`emotiond.metrics`, re-exported here).

``emotiond eval --modality voice DATA_DIR [DATA_DIR ...]`` is :func:`evaluate_voice_dir`:
it reads folder-per-label layouts or known corpora (emotiond.training.datasets), scores
every clip with the voice model (the shipped one or ``voice.model``) and reports each
corpus and the pool.  Clips of a class the model cannot output are scored as errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


from emotiond.errors import EmotiondError, SourceError
from emotiond.metrics import accuracy, confusion_matrix, format_report, recalls, unweighted_accuracy  # noqa: F401


@dataclass
class EvalResult:
    class_names: list[str]
    confusion: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)  # label -> items not scored (e.g. no face found)
    lacking: list[str] = field(default_factory=list)  # true classes the model cannot output (scored as errors)
    by_corpus: dict[str, EvalResult] = field(default_factory=dict)

    @property
    def ua(self) -> float:
        return unweighted_accuracy(self.confusion)

    @property
    def wa(self) -> float:
        return accuracy(self.confusion)

    def predicted_fractions(self) -> dict[str, float]:
        n = self.confusion.sum()
        return {c: float(v / n) if n else 0.0 for c, v in zip(self.class_names, self.confusion.sum(axis=0))}

    def report(self) -> str:
        text = format_report(self.confusion, self.class_names)
        if self.lacking:
            text += ("\nclasses the model cannot output (their clips are scored as errors): "
                     + ", ".join(self.lacking))
        fr = self.predicted_fractions()
        if fr:
            top = max(fr, key=lambda k: fr[k])
            text += f"\nmost predicted: {top} ({fr[top]:.0%} of clips)"
        if self.skipped:
            text += "\nnot scored: " + ", ".join(f"{v} × {k}" for k, v in self.skipped.items())
        for name, r in self.by_corpus.items():
            text += f"\n\n== {name}\n" + r.report()
        return text

    def to_dict(self) -> dict:
        return {
            "classes": self.class_names,
            "confusion": self.confusion.tolist(),
            "accuracy": self.wa,
            "unweighted_accuracy": self.ua,
            "lacking": self.lacking,
            "predicted_fractions": self.predicted_fractions(),
            "not_scored": self.skipped,
            "by_corpus": {k: v.to_dict() for k, v in self.by_corpus.items()},
        }


def voice_clip_probs(model, items, clips_16k: Sequence[np.ndarray], baseline: str = "speaker") -> np.ndarray:
    """[n, 7] per clip: the mean of its windows' distributions.  ``baseline="speaker"`` normalises
    each speaker's features against that speaker's own baseline built from all their windows (a
    warmed-up live session); ``"none"`` uses the population statistics (a cold start)."""
    from emotiond.audio import prosody

    feats = [[prosody.utterance_features(w) for w in model.windows(x)] if not model.is_silent(x) else []
             for x in clips_16k]
    baselines: dict[str, prosody.SpeakerBaseline] = {}
    for it, f in zip(items, feats):
        b = baselines.setdefault(it.speaker, model.new_baseline())
        if baseline == "speaker":
            for row in f:
                b.update(row)
    out = np.zeros((len(feats), len(model.covered)), np.float32)
    for i, (it, f) in enumerate(zip(items, feats)):
        if not f:
            out[i] = model._uniform()
            continue
        probs, _ = model.run(np.stack([baselines[it.speaker].normalise(row) for row in f]))
        out[i] = model._to_emotions(probs.mean(axis=0))
    return out


def evaluate_voice(model, items, clips_16k: Sequence[np.ndarray] | None = None, baseline: str = "speaker") -> EvalResult:
    """Score ``items`` (datasets.ClipItem) with a VoiceEmotionModel.

    Each clip is one prediction (the mean over its windows).  Rows are every true class present,
    columns every class the model can output plus those true classes, so clips of a class the
    model lacks are errors and show where they went.
    """
    from emotiond import labels
    from emotiond.training import datasets

    items = list(items)
    if clips_16k is None:
        clips_16k = datasets.load_16k(items, model.params)
    covered = {labels.EMOTIONS[i] for i in np.flatnonzero(model.covered)}
    present = {it.label for it in items}
    names = [e for e in labels.EMOTIONS if e in covered or e in present]
    index = {n: k for k, n in enumerate(names)}
    probs = voice_clip_probs(model, items, clips_16k, baseline)
    y_true = [index[it.label] for it in items]
    y_pred = [index[labels.EMOTIONS[int(np.argmax(p))]] for p in probs]
    return EvalResult(names, confusion_matrix(y_true, y_pred, len(names)),
                      lacking=[e for e in names if e in present and e not in covered])


def evaluate_voice_dir(data_dir: Path | Sequence[Path], layout: str = "auto", models_dir: Path | None = None,
                       provider: str = "auto", model_path: Path | str | None = None,
                       baseline: str = "speaker", *, config=None, models=None) -> EvalResult:
    """``emotiond eval --modality voice DATA_DIR [DATA_DIR ...]``: the voice model on one or more
    corpora; with several, the result pools them and ``by_corpus`` holds each one.  The model comes
    from ``models`` (a :class:`~emotiond.models.Models` with the voice, kept open) or from a
    ``Models`` loaded here for ``config`` (``models_dir``, ``provider`` and ``model_path`` — a
    user-trained model, ``voice.model`` — override it), as a run loads it."""
    from emotiond.training import datasets

    dirs = [Path(data_dir)] if isinstance(data_dir, (str, Path)) else [Path(d) for d in data_dir]
    own = None
    if models is None:
        from emotiond.config import load_config
        from emotiond.models import Models

        cfg = (config or load_config()).model_copy(deep=True)
        cfg.voice.enabled = True
        cfg.provider = provider if provider != "auto" or config is None else cfg.provider
        if models_dir is not None:
            cfg.models_dir = Path(models_dir)
        if model_path:
            cfg.voice.model = Path(model_path)
        models = own = Models(cfg, face=False, voice=True)
    try:
        if models.voice_model is None:
            raise EmotiondError("these models hold no voice model", "load them with voice=True")
        return _evaluate_voice_dirs(models.voice_model, dirs, layout, baseline, datasets)
    finally:
        if own is not None:
            own.close()


def _evaluate_voice_dirs(model, dirs: list[Path], layout: str, baseline: str, datasets) -> EvalResult:
    per: dict[str, tuple[list, list]] = {}
    for d in dirs:
        items = datasets.load(d, layout)
        per[d.name] = (items, datasets.load_16k(items, model.params))
    if len(per) == 1:
        items, clips = next(iter(per.values()))
        return evaluate_voice(model, items, clips, baseline)
    parts = {name: evaluate_voice(model, items, clips, baseline) for name, (items, clips) in per.items()}
    all_items = [it for items, _ in per.values() for it in items]
    all_clips = [c for _, clips in per.values() for c in clips]
    total = evaluate_voice(model, all_items, all_clips, baseline)
    total.by_corpus = parts
    return total


NO_FACE = "(no face found)"


def evaluate_face_dir(data_dir: Path, config=None, progress: bool = False, *, models=None) -> EvalResult:
    """``emotiond eval --modality face DATA_DIR``: folder-per-label images (folder name = class,
    synonyms allowed: happiness, anger, …).  Each image: the largest face found by the landmark
    stage → aligned crop → the face model.  Images with no face are listed as not scored.  The
    models come from ``models`` (a :class:`~emotiond.models.Models`, kept open) or from one loaded
    here for ``config`` (one still-image landmarker, no voice), as a run loads them."""
    from emotiond import labels
    from emotiond.config import load_config
    from emotiond.models import Models
    from emotiond.sources.media import IMAGE_EXTENSIONS

    cfg = config or load_config()
    root = Path(data_dir)
    if not root.is_dir():
        raise SourceError(f"{root}: no such folder", "give a folder with one sub-folder of images per class")
    items: list[tuple[str, Path]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            label = labels.canonical(sub.name)
        except KeyError:
            continue
        items += [(label, f) for f in sorted(sub.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not items:
        raise SourceError(
            f"{root} holds no labelled images",
            f"make one sub-folder per class named after it ({', '.join(labels.EMOTIONS)}) holding the images",
        )
    own = None
    if models is None:
        models = own = Models(cfg, voice=False, workers=1, video=False)
    try:
        if models.face_model is None:
            raise EmotiondError("these models hold no face model", "load them with face=True")
        (lm,) = models.lease_landmarkers(1, video=False)
        try:
            return _evaluate_faces(models.face_model, lm, items, progress)
        finally:
            models.release_landmarkers([lm])
    finally:
        if own is not None:
            own.close()


def _evaluate_faces(model, lm, items: list[tuple[str, Path]], progress: bool) -> EvalResult:
    from emotiond import labels
    from emotiond.engine import face_emotions
    from emotiond.face.tracker import largest
    from emotiond.sources.media import read_image

    y_true: list[int] = []
    y_pred: list[int] = []
    skipped: dict[str, int] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), unit="image", leave=False)
    try:
        for label, path in items:
            if bar is not None:
                bar.update(1)
            try:
                image = read_image(path)
            except SourceError:
                skipped["(unreadable image)"] = skipped.get("(unreadable image)", 0) + 1
                continue
            face = largest(lm.detect(image))
            if face is None:
                skipped[NO_FACE] = skipped.get(NO_FACE, 0) + 1
                continue
            face_emotions(model, image, [face])
            assert face.emotion is not None  # set by face_emotions
            y_true.append(labels.INDEX[label])
            y_pred.append(int(np.argmax(face.emotion)))
    finally:
        if bar is not None:
            bar.close()
    return EvalResult(list(labels.EMOTIONS), confusion_matrix(y_true, y_pred, len(labels.EMOTIONS)), skipped)
