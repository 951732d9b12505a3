"""Audio features for the voice path: mix-down, resampling, log-mel, windows.

Pure functions, no I/O.  Training (``emotiond.training``) and inference
(``emotiond.audio.voice_model``) call exactly these functions, and the voice
model's card stores :class:`FeatureParams` as its ``[features]`` table, so the
parameters the model was trained with are the ones it runs with.

The pipeline, for any input rate and channel count::

    samples [n] or [n, ch] at rate r
      -> to_mono            (mean of the channels)
      -> resample(r, 16000) (soxr, "HQ"; or Resampler for a stream of chunks)
      -> windows            (window_s long, hop_s apart; short input is tiled)
      -> log_mel            (power mel spectrogram in dB, float32 [n_mels, frames])

The model normalises each window itself (inside the ONNX graph), so the
features stay plain dB values that are easy to inspect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

FEATURES_VERSION = 1


@dataclass(frozen=True)
class FeatureParams:
    """Every parameter of the voice features, in one place.

    Defaults are those of the shipped voice model; the model card's
    ``[features]`` table overrides them at inference (see :meth:`from_dict`).
    """

    version: int = FEATURES_VERSION  # bump when the meaning of a field changes
    sample_rate: int = 16000  # Hz, the rate features are computed at
    n_fft: int = 512  # FFT size (32 ms)
    win_length: int = 400  # analysis window (25 ms), Hann
    hop_length: int = 160  # 10 ms between frames
    n_mels: int = 64  # mel bands (Slaney mel scale and norm, librosa's default)
    fmin: float = 50.0  # Hz
    fmax: float = 8000.0  # Hz (Nyquist at 16 kHz)
    power: float = 2.0  # power spectrogram
    center: bool = True  # frames centred on t = k * hop (librosa convention)
    pad_mode: str = "constant"  # zero padding at the two ends when centred
    amin: float = 1e-10  # floor of the power before the log (-100 dB)
    ref: float = 1.0  # dB reference: 0 dB = full-scale power 1.0
    top_db: float = 80.0  # clip each spectrogram at (its max - top_db) dB
    window_s: float = 2.0  # seconds of audio the model sees at once
    hop_s: float = 1.0  # seconds between windows when one utterance gives several
    silence_dbfs: float = -55.0  # a window whose RMS is below this carries no evidence

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.sample_rate))

    @property
    def frames(self) -> int:
        """Frames in one window's log-mel (the model's time axis)."""
        n = self.window_samples
        return 1 + n // self.hop_length if self.center else 1 + (n - self.n_fft) // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML-able values (the voice model card's ``[features]`` table)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureParams:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown feature parameters: {', '.join(unknown)}")
        values = {}
        for name, value in data.items():
            default = getattr(cls, name)
            values[name] = type(default)(value)  # TOML ints for float fields etc.
        params = cls(**values)
        if params.version != FEATURES_VERSION:
            raise ValueError(
                f"feature parameters version {params.version}; this code computes version {FEATURES_VERSION}"
            )
        return params


DEFAULT_PARAMS = FeatureParams()


def to_mono(samples: np.ndarray) -> np.ndarray:
    """float32 [n] from [n] or [n, channels] (the mean of the channels)."""
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.integer):  # PCM integers -> [-1, 1]
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise ValueError(f"audio must be [n] or [n, channels], got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target: int = 16000) -> np.ndarray:
    """Resample a whole signal with soxr (HQ); mono [n] or [n, ch] in, same layout out."""
    import soxr

    if rate == target:
        return np.asarray(samples, dtype=np.float32)
    if not 1000 <= rate <= 384000:
        raise ValueError(f"unsupported sample rate {rate}")
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if x.shape[0] == 0:
        return x
    return soxr.resample(x, rate, target, quality="HQ").astype(np.float32, copy=False)


class Resampler:
    """Streaming resampler for a live source: feed chunks, get 16 kHz mono out.

    Equal (to float rounding) to :func:`resample` of the whole stream, without
    the clicks that resampling every chunk on its own would put at chunk edges.
    Its output lags its input by soxr's filter delay until :meth:`flush`.
    """

    def __init__(self, rate: int, target: int = 16000):
        self.rate = int(rate)
        self.target = int(target)
        self._stream = None
        if self.rate != self.target:
            import soxr

            self._stream = soxr.ResampleStream(self.rate, self.target, 1, dtype="float32", quality="HQ")

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        x = to_mono(samples)
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x, last=False)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, np.float32)
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)


def to_16k_mono(samples: np.ndarray, rate: int, params: FeatureParams = DEFAULT_PARAMS) -> np.ndarray:
    """The one conversion every clip and every stream goes through before features."""
    return resample(to_mono(samples), rate, params.sample_rate)


def rms_dbfs(samples: np.ndarray) -> float:
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return -np.inf
    return float(10.0 * np.log10(max(np.mean(x * x), 1e-20)))
