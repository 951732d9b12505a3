"""Classification metrics, and evaluation of the voice model on a labelled dataset.

The metric functions are pure (label indices in, numbers out).  Unweighted
accuracy (UA) is the mean per-class recall — the figure emotion-recognition
papers report, because corpora are unbalanced; weighted accuracy (WA) is the
plain fraction of correct items.

``emotiond eval --modality voice DATA_DIR`` is :func:`evaluate_voice_dir`:
it reads a folder-per-label layout or a known corpus (emotiond.training.datasets)
and scores every clip with the shipped model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """int64 [n_classes, n_classes]: rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[int(t), int(p)] += 1
    return cm


def accuracy(cm: np.ndarray) -> float:
    """Weighted accuracy (WA): correct / all."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def recalls(cm: np.ndarray) -> np.ndarray:
    """Per-class recall; NaN for a class without items."""
    n = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.diag(cm) / np.where(n > 0, n, 1), np.nan)


def unweighted_accuracy(cm: np.ndarray) -> float:
    """Unweighted accuracy (UA): mean recall over the classes that have items."""
    r = recalls(cm)
    r = r[~np.isnan(r)]
    return float(r.mean()) if r.size else float("nan")


def format_report(cm: np.ndarray, class_names: Sequence[str]) -> str:
    """A text table: confusion matrix with per-class recall, then UA and WA."""
    names = list(class_names)
    w = max(8, *(len(n) for n in names)) + 1
    r = recalls(cm)
    head = "true \\ pred".ljust(w) + "".join(n[:w - 1].rjust(w) for n in names) + "n".rjust(6) + "recall".rjust(8)
    lines = [head]
    for i, name in enumerate(names):
        rec = "   -" if np.isnan(r[i]) else f"{r[i]:.3f}"
        lines.append(name.ljust(w) + "".join(str(v).rjust(w) for v in cm[i]) + str(cm[i].sum()).rjust(6) + rec.rjust(8))
    lines.append(f"UA (mean recall) {unweighted_accuracy(cm):.3f}   WA (accuracy) {accuracy(cm):.3f}   n = {cm.sum()}")
    return "\n".join(lines)


@dataclass
class EvalResult:
    class_names: list[str]
    confusion: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)  # label -> clips the model cannot express

    @property
    def ua(self) -> float:
        return unweighted_accuracy(self.confusion)

    @property
    def wa(self) -> float:
        return accuracy(self.confusion)

    def report(self) -> str:
        text = format_report(self.confusion, self.class_names)
        if self.skipped:
            text += "\nnot scored: " + ", ".join(
                f"{v} × {k}" + ("" if k.startswith("(") else " (a class the model does not cover)")
                for k, v in self.skipped.items()
            )
        return text


def evaluate_voice(model, items, clips_16k: Sequence[np.ndarray] | None = None) -> EvalResult:
    """Score ``items`` (datasets.ClipItem) with a VoiceEmotionModel.

    Each clip is one prediction (the model averages its windows).  Clips whose
    label the model does not cover are counted in ``skipped``, not scored.
    """
    from emotiond import labels
    from emotiond.training import datasets

    covered = [labels.EMOTIONS[i] for i in np.flatnonzero(model.covered)]
    index = {name: k for k, name in enumerate(covered)}
    if clips_16k is None:
        clips_16k = datasets.load_16k(list(items), model.params)
    y_true, y_pred, skipped = [], [], {}
    for it, x in zip(items, clips_16k, strict=True):
        if it.label not in index:
            skipped[it.label] = skipped.get(it.label, 0) + 1
            continue
        probs = model.predict(x)
        y_true.append(index[it.label])
        y_pred.append(index[labels.EMOTIONS[int(np.argmax(probs))]])
    return EvalResult(covered, confusion_matrix(y_true, y_pred, len(covered)), skipped)


def evaluate_voice_dir(data_dir: Path, layout: str = "auto", models_dir: Path | None = None,
                       provider: str = "auto") -> EvalResult:
    """``emotiond eval --modality voice DATA_DIR``: the shipped voice model on a dataset."""
    from emotiond.audio.voice_model import VoiceEmotionModel
    from emotiond.training import datasets

    items = datasets.load(Path(data_dir), layout)
    model = VoiceEmotionModel.from_registry(models_dir, provider=provider)
    return evaluate_voice(model, items)


NO_FACE = "(no face found)"


def evaluate_face_dir(data_dir: Path, config=None, progress: bool = False) -> EvalResult:
    """``emotiond eval --modality face DATA_DIR``: folder-per-label images (folder name = class,
    synonyms allowed: happiness, anger, …).  Each image: the largest face found by the landmark
    stage → aligned crop → the face model.  Images with no face are listed as not scored."""
    from emotiond import labels
    from emotiond.config import load_config
    from emotiond.engine import face_emotions, open_landmarker
    from emotiond.errors import SourceError
    from emotiond.face.emotion import FaceEmotionModel
    from emotiond.face.tracker import largest
    from emotiond.sources.media import IMAGE_EXTENSIONS, read_image

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
    model = FaceEmotionModel.from_registry(cfg.models_dir, provider=cfg.provider, threads=cfg.threads)
    y_true, y_pred, skipped = [], [], {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), unit="image", leave=False)
    with open_landmarker(cfg, video=False) as lm:
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
            y_true.append(labels.INDEX[label])
            y_pred.append(int(np.argmax(face.emotion)))
    if bar is not None:
        bar.close()
    return EvalResult(list(labels.EMOTIONS), confusion_matrix(y_true, y_pred, len(labels.EMOTIONS)), skipped)
