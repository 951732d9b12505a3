"""The voice-emotion expert: log-mel windows -> distribution over labels.EMOTIONS.

The model file is ``models/voice_emotion.onnx`` (input ``logmel`` [n, 1, mels,
frames], output ``probs`` [n, classes]); its card names its classes and holds
the ``[features]`` table it was trained with, from which :attr:`params` is
built — inference never uses parameters of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotiond import labels
from emotiond.audio import features
from emotiond.errors import ModelError
from emotiond.types import ModalityEvidence

MODEL_NAME = "voice_emotion"


class VoiceEmotionModel:
    def __init__(self, model, class_names, params: features.FeatureParams, name: str = MODEL_NAME):
        self._model = model  # emotiond.runtime.OrtModel
        self.name = name
        self.params = params
        self.class_names = tuple(class_names)
        try:
            self._index = np.array([labels.INDEX[labels.canonical(c)] for c in self.class_names], dtype=np.int64)
        except KeyError as exc:
            raise ModelError(f"voice model {name} has a class outside the label space ({exc})",
                             "fix the classes in its card") from None
        self.covered = np.zeros(len(labels.EMOTIONS), dtype=bool)
        self.covered[self._index] = True
        out = model.session.get_outputs()[0].shape
        if isinstance(out[-1], int) and out[-1] != len(self.class_names):
            raise ModelError(f"voice model {name} outputs {out[-1]} classes, its card lists {len(self.class_names)}",
                             "the model file and card do not belong together; rebuild both")

    @classmethod
    def from_registry(cls, models_dir: Path | None = None, provider: str = "auto", threads: int = 1,
                      name: str = MODEL_NAME) -> VoiceEmotionModel:
        from emotiond import registry, runtime

        card = registry.resolve(name, models_dir)
        if card.task != "voice-emotion":
            raise ModelError(f"model {name} is a {card.task!r} model, not voice-emotion", "check models/")
        try:
            params = features.FeatureParams.from_dict(card.data["features"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model card {card.card_path} has no usable [features] table ({exc})",
                             f"rebuild it with `python {card.data.get('provenance', {}).get('script', 'emotiond/training/voice.py')}`") from None
        if not card.classes:
            raise ModelError(f"model card {card.card_path} lists no classes", "rebuild the voice model")
        return cls(runtime.load(card.path, provider=provider, threads=threads), card.classes, params, name)

    @property
    def provider(self) -> str:
        return self._model.provider

    def features(self, samples_16k: np.ndarray) -> np.ndarray:
        """float32 [k, 1, n_mels, frames] for an utterance (the training path's functions)."""
        return features.window_features(samples_16k, self.params)

    def predict_logmel(self, logmel: np.ndarray) -> np.ndarray:
        """Model class probabilities [k, classes] for log-mel windows [k, 1, mels, frames] or [mels, frames]."""
        x = np.asarray(logmel, dtype=np.float32)
        if x.ndim == 2:
            x = x[None, None]
        elif x.ndim == 3:
            x = x[:, None]
        expect = (self.params.n_mels, self.params.frames)
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2:] != expect:
            raise ValueError(f"log-mel input must be [k, 1, {expect[0]}, {expect[1]}], got {x.shape}")
        return self._model.run(np.ascontiguousarray(x))[0]

    def is_silent(self, samples_16k: np.ndarray) -> bool:
        return features.rms_dbfs(samples_16k) < self.params.silence_dbfs

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Distribution [7] over labels.EMOTIONS (zeros outside :attr:`covered`).

        ``x`` is either 16 kHz mono samples ([n], any length; windows are
        averaged) or log-mel windows ([mels, frames] or [k, 1, mels, frames]).
        Silent audio (RMS below ``silence_dbfs``) gives the uniform
        distribution over the covered classes: no evidence either way.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            if self.is_silent(x):
                return self._uniform()
            probs = self.predict_logmel(self.features(x))
        else:
            probs = self.predict_logmel(x)
        return self._to_emotions(probs.mean(axis=0))

    def evidence(self, samples_16k: np.ndarray, speech: float = 1.0) -> ModalityEvidence:
        """What the voice says about an utterance, for fusion.

        ``speech`` (voice-activity probability of the audio, from the VAD) scales
        the reliability; silent audio has reliability 0.
        """
        x = np.asarray(samples_16k, dtype=np.float32)
        if x.size == 0 or self.is_silent(x):
            return ModalityEvidence("voice", self._uniform(), self.covered.copy(), 0.0)
        return ModalityEvidence("voice", self.predict(x), self.covered.copy(), float(np.clip(speech, 0.0, 1.0)))

    def _to_emotions(self, p: np.ndarray) -> np.ndarray:
        out = np.zeros(len(labels.EMOTIONS), dtype=np.float32)
        np.add.at(out, self._index, np.asarray(p, dtype=np.float32))
        s = out.sum()
        return out / s if s > 0 else self._uniform()

    def _uniform(self) -> np.ndarray:
        return (self.covered / self.covered.sum()).astype(np.float32)
