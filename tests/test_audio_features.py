"""Audio features: mix-down, resampling, and train/inference parity of the voice model's input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emotiond.audio import features as F
from emotiond.audio import prosody
from emotiond.types import AudioChunk


def _sine(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec))
    # parabolic interpolation of the peak bin
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(x)


def _rms(x):
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_resample_keeps_frequency_and_level(rate):
    x = _sine(1000.0, rate, 1.0, 0.5)
    y = F.resample(x, rate, 16000)
    assert y.dtype == np.float32
    assert abs(len(y) - 16000) <= 1
    mid = y[800:-800]  # away from the filter's edge transients
    assert _peak_hz(mid, 16000) == pytest.approx(1000.0, abs=0.5)
    assert _rms(mid) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_stereo_to_16k_mono():
    left = _sine(440.0, 48000, 1.0, 0.4)
    stereo = np.stack([left, left], axis=1)  # [n, 2], same signal on both channels
    mono = F.to_mono(stereo)
    assert mono.shape == (48000,) and np.allclose(mono, left)
    y = F.to_16k_mono(stereo, 48000)
    assert _peak_hz(y[800:-800], 16000) == pytest.approx(440.0, abs=0.5)
    assert _rms(y[800:-800]) == pytest.approx(0.4 / np.sqrt(2), rel=0.01)
    # opposite-phase channels cancel: a mix-down, not a channel pick
    assert _rms(F.to_mono(np.stack([left, -left], axis=1))) < 1e-6


def test_to_mono_int16_scaled():
    x = np.array([[16384, -16384], [32767, 32767]], dtype=np.int16)
    assert np.allclose(F.to_mono(x), [0.0, 32767 / 32768])


def test_streaming_resampler_matches_one_shot():
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(44100 * 2)).astype(np.float32)
    whole = F.resample(x, 44100, 16000)
    rs = F.Resampler(44100)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(100, 3000))
        parts.append(rs(x[i : i + n]))
        i += n
    parts.append(rs.flush())
    streamed = np.concatenate(parts)
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    assert np.allclose(streamed[:n], whole[:n], atol=1e-4)


def test_params_round_trip_and_validation():
    p = F.FeatureParams()
    assert F.FeatureParams.from_dict(p.to_dict()) == p
    d = p.to_dict() | {"fmin": 20}  # TOML int for a float field
    assert F.FeatureParams.from_dict(d).fmin == 20.0
    with pytest.raises(ValueError):
        F.FeatureParams.from_dict(p.to_dict() | {"bogus": 1})
    with pytest.raises(ValueError):
        F.FeatureParams.from_dict(p.to_dict() | {"version": 999})


def test_training_and_inference_features_are_identical(tmp_path):
    """The recipe's dataset path and the app's path give the same model input."""
    from emotiond.training import datasets

    rng = np.random.default_rng(2)
    rate = 44100
    t = np.arange(int(rate * 2.6)) / rate
    voice = 0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * np.sin(2 * np.pi * 3 * t)))
    stereo = np.stack([voice, voice + 0.01 * rng.standard_normal(len(t))], axis=1).astype(np.float32)
    (tmp_path / "angry").mkdir()
    path = tmp_path / "angry" / "spk1_clip.wav"
    sf.write(path, stereo, rate, subtype="FLOAT")

    # training path
    (item,) = datasets.folder(tmp_path)
    assert item.label == "angry" and item.speaker == "spk1"
    train_feats = prosody.utterance_features(datasets.clip_16k(item))

    # inference path: the file arrives as AudioChunks of a stream, resampled once per utterance
    data, r = sf.read(path, dtype="float32")
    chunks = [AudioChunk(i / r, data[i : i + 4410], r) for i in range(0, len(data), 4410)]
    utterance = np.concatenate([c.samples for c in chunks])
    infer_feats = prosody.utterance_features(F.to_16k_mono(utterance, chunks[0].rate))
    assert np.array_equal(train_feats, infer_feats)

    # live path: streaming resampler, chunk by chunk
    rs = F.Resampler(r)
    live = np.concatenate([rs(c.samples) for c in chunks] + [rs.flush()])
    live_feats = prosody.utterance_features(live[: len(datasets.clip_16k(item))])
    assert live_feats.shape == train_feats.shape
    # streaming differs from one-shot resampling only by float rounding
    assert np.allclose(live_feats, train_feats, rtol=1e-3, atol=1e-3)
