"""The voice-emotion expert: a 2 s window of 16 kHz audio -> distribution over labels.EMOTIONS,
an arousal estimate and a speech/music score.

The model file is ``models/voice_emotion.onnx`` (input ``features`` [n, D]: the
:func:`emotiond.audio.prosody.utterance_features` of a window, normalised against the
speaker's baseline; outputs ``probs`` [n, classes] — calibrated — and ``arousal`` [n]).
Its card names the classes, the baseline's population statistics (``[baseline]``), the
window (``[features]``) and the measured cross-corpus reliability (``[reliability]``) that
sets the voice's weight in fusion.  ``voice.model`` in the configuration selects another
model (a path to its ``.onnx`` or ``.card.toml``, the card beside the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotiond import labels
from emotiond.audio import features, prosody
from emotiond.errors import ModelError
from emotiond.types import ModalityEvidence

MODEL_NAME = "voice_emotion"
SPEECHNESS_MIN = 0.5  # windows scoring below this are not speech (music, tones, noise): no evidence
RELIABILITY_FLOOR = 0.02  # fusion weight of a model measured at chance: still heard alone, never next to a face


@dataclass
class VoiceOutput:
    """What the model says about one window."""

    probs: np.ndarray  # [7] over labels.EMOTIONS, zeros outside the covered classes
    arousal: float  # -1 calm .. 1 aroused
    speechness: float  # 0 music/tone/noise .. 1 speech
    features: np.ndarray  # raw utterance features (what the speaker baseline learns from)

    @property
    def is_speech(self) -> bool:
        return self.speechness >= SPEECHNESS_MIN


class VoiceEmotionModel:
    def __init__(self, model, class_names, card: dict, name: str = MODEL_NAME):
        self._model = model  # emotiond.runtime.OrtModel
        self.name = name
        self.class_names = tuple(class_names)
        try:
            self._index = np.array([labels.INDEX[labels.canonical(c)] for c in self.class_names], dtype=np.int64)
        except KeyError as exc:
            raise ModelError(f"voice model {name} has a class outside the label space ({exc})",
                             "fix the classes in its card") from None
        self.covered = np.zeros(len(labels.EMOTIONS), dtype=bool)
        self.covered[self._index] = True
        try:
            feat = card["features"]
            self.params = features.FeatureParams(sample_rate=int(feat["sample_rate"]), window_s=float(feat["window_s"]),
                                                 hop_s=float(feat["hop_s"]), silence_dbfs=float(feat["silence_dbfs"]))
            inp = card["input"]
            if inp.get("kind") != "prosody" or int(inp.get("version", -1)) != prosody.FEATURES_VERSION:
                raise ValueError(f"input kind {inp.get('kind')!r} version {inp.get('version')}; this code computes "
                                 f"'prosody' version {prosody.FEATURES_VERSION}")
            base = card["baseline"]
            self.pop_mean = np.asarray(base["mean"], dtype=np.float64)
            self.pop_std = np.asarray(base["std"], dtype=np.float64)
            self.prior = float(base.get("prior", 8.0))
            if self.pop_mean.shape != (prosody.N_FEATURES,) or self.pop_std.shape != (prosody.N_FEATURES,):
                raise ValueError(f"[baseline] must hold {prosody.N_FEATURES} means and stds")
            # measured cross-corpus reliability (the card) and the weight fusion gives the voice
            self.reliability = float(np.clip(card.get("reliability", {}).get("cross_corpus", 0.0), 0.0, 1.0))
            self.fusion_reliability = max(self.reliability, RELIABILITY_FLOOR)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"voice model card of {name} is not usable ({exc})",
                             "rebuild it with `python -m emotiond.training.voice`") from None
        outs = model.session.get_outputs()
        shape = outs[0].shape
        if isinstance(shape[-1], int) and shape[-1] != len(self.class_names):
            raise ModelError(f"voice model {name} outputs {shape[-1]} classes, its card lists {len(self.class_names)}",
                             "the model file and card do not belong together; rebuild both")
        self._has_arousal = len(outs) > 1

    @classmethod
    def from_registry(cls, models_dir: Path | None = None, provider: str = "auto", threads: int = 1,
                      name: str = MODEL_NAME) -> VoiceEmotionModel:
        from emotiond import registry, runtime

        card = registry.resolve(name, models_dir)
        if card.task != "voice-emotion":
            raise ModelError(f"model {name} is a {card.task!r} model, not voice-emotion", "check models/")
        if not card.classes:
            raise ModelError(f"model card {card.card_path} lists no classes", "rebuild the voice model")
        return cls(runtime.load(card.path, provider=provider, threads=threads), card.classes, card.data, name)

    @classmethod
    def from_path(cls, path: Path | str, provider: str = "auto", threads: int = 1) -> VoiceEmotionModel:
        """A user-trained model: ``path`` is its ``.onnx`` or its ``.card.toml`` (the two side by side)."""
        p = Path(path).expanduser()
        name = p.name[: -len(".card.toml")] if p.name.endswith(".card.toml") else p.stem
        if not (p.parent / f"{name}.card.toml").is_file():
            raise ModelError(f"no voice model card {p.parent / (name + '.card.toml')}",
                             "voice.model must name a model made by `python -m emotiond.training.voice` "
                             "(its .onnx or .card.toml, side by side)")
        return cls.from_registry(p.parent, provider=provider, threads=threads, name=name)

    @classmethod
    def from_config(cls, cfg):
        """(model, its verified card): ``voice.model`` when set (a user-trained model), else the
        shipped one from ``models_dir``."""
        from emotiond import registry

        if cfg.voice.model:
            model = cls.from_path(cfg.voice.model, provider=cfg.provider, threads=cfg.threads)
            return model, registry.card(model.name, Path(cfg.voice.model).expanduser().parent)
        model = cls.from_registry(cfg.models_dir, provider=cfg.provider, threads=cfg.threads)
        return model, registry.card(MODEL_NAME, cfg.models_dir)

    @property
    def provider(self) -> str:
        return self._model.provider

    def new_baseline(self) -> prosody.SpeakerBaseline:
        """A fresh speaker baseline (the population statistics, until the speaker's windows arrive)."""
        return prosody.SpeakerBaseline(self.pop_mean, self.pop_std, prior=self.prior)

    def is_silent(self, samples_16k: np.ndarray) -> bool:
        return features.rms_dbfs(samples_16k) < self.params.silence_dbfs

    def run(self, feats_normalised: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probs [k, classes], arousal [k]) for normalised feature rows [k, D]."""
        x = np.ascontiguousarray(np.atleast_2d(feats_normalised), dtype=np.float32)
        if x.shape[1] != prosody.N_FEATURES:
            raise ValueError(f"feature rows must be [k, {prosody.N_FEATURES}], got {x.shape}")
        out = self._model.run(x)
        arousal = out[1] if self._has_arousal else np.zeros(x.shape[0], np.float32)
        return out[0], arousal

    def analyse(self, window_16k: np.ndarray, baseline: prosody.SpeakerBaseline | None = None,
                frames: prosody.Frames | None = None) -> VoiceOutput:
        """One window (up to ``window_s`` of 16 kHz mono): distribution, arousal and speechness.
        ``baseline`` (the speaker's, e.g. a running one) normalises the features; None = population.
        ``frames``: the window's frame measurements when the caller has them (a FrameStream)."""
        x = np.asarray(window_16k, dtype=np.float32)
        fr = prosody.frames(x) if frames is None else frames
        feats = prosody.utterance_features(x, fr)
        b = baseline if baseline is not None else self.new_baseline()
        probs, arousal = self.run(b.normalise(feats)[None])
        return VoiceOutput(self._to_emotions(probs[0]), float(arousal[0]), prosody.speechness(fr), feats)

    def predict(self, x: np.ndarray, baseline: prosody.SpeakerBaseline | None = None) -> np.ndarray:
        """Distribution [7] over labels.EMOTIONS (zeros outside :attr:`covered`) for 16 kHz mono
        samples of any length: the mean over its 2 s windows (1 s apart).  Silent audio gives the
        uniform distribution over the covered classes: no evidence either way."""
        x = np.asarray(x, dtype=np.float32)
        if x.size == 0 or self.is_silent(x):
            return self._uniform()
        outs = [self.analyse(w, baseline) for w in self.windows(x)]
        p = np.mean([o.probs for o in outs], axis=0)
        return (p / p.sum()).astype(np.float32)

    def windows(self, x: np.ndarray) -> list[np.ndarray]:
        n, hop = self.params.window_samples, self.params.hop_samples
        if x.size <= n:
            return [x]
        starts = list(range(0, x.size - n + 1, hop))
        if starts[-1] + n < x.size:
            starts.append(x.size - n)
        return [x[s : s + n] for s in starts]

    def evidence(self, samples_16k: np.ndarray, speech: float = 1.0) -> ModalityEvidence:
        """What the voice says about an utterance, for fusion: reliability = speech (VAD) ×
        speechness × the card's cross-corpus reliability (at least RELIABILITY_FLOOR); 0 for
        silence and non-speech."""
        x = np.asarray(samples_16k, dtype=np.float32)
        if x.size == 0 or self.is_silent(x):
            return ModalityEvidence("voice", self._uniform(), self.covered.copy(), 0.0)
        outs = [self.analyse(w) for w in self.windows(x)]
        sp = float(np.mean([o.speechness for o in outs]))
        if sp < SPEECHNESS_MIN:
            return ModalityEvidence("voice", self._uniform(), self.covered.copy(), 0.0)
        p = np.mean([o.probs for o in outs], axis=0)
        rel = float(np.clip(speech, 0.0, 1.0)) * sp * self.fusion_reliability
        return ModalityEvidence("voice", p / p.sum(), self.covered.copy(), rel,
                                arousal=float(np.mean([o.arousal for o in outs])))

    def _to_emotions(self, p: np.ndarray) -> np.ndarray:
        out = np.zeros(len(labels.EMOTIONS), dtype=np.float32)
        np.add.at(out, self._index, np.asarray(p, dtype=np.float32))
        s = out.sum()
        return out / s if s > 0 else self._uniform()

    def _uniform(self) -> np.ndarray:
        return (self.covered / self.covered.sum()).astype(np.float32)
