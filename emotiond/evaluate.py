"""Evaluation of the face and voice models on a labelled dataset (the metrics themselves
are in :mod:`emotiond.metrics`, re-exported here).

``emotiond eval --modality voice DATA_DIR`` is :func:`evaluate_voice_dir`:
it reads a folder-per-label layout or a known corpus (emotiond.training.datasets)
and scores every clip with the shipped model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


from emotiond.metrics import accuracy, confusion_matrix, format_report, recalls, unweighted_accuracy  # noqa: F401


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
