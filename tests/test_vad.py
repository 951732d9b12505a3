"""Voice activity: the real silero ONNX model, and the utterance segmenter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotiond.audio import features
from emotiond.audio.vad import CHUNK, Segmenter, SegmenterParams, VoiceActivity, segment

SPEECH = Path(__file__).parent / "data" / "speech_en_espeak.flac"  # see tests/data/speech_en_espeak.md


@pytest.fixture(scope="module")
def vad():
    return VoiceActivity.from_registry(provider="cpu")


def test_silence_is_not_speech(vad):
    rng = np.random.default_rng(0)
    quiet = (1e-4 * rng.standard_normal(16000 * 2)).astype(np.float32)  # -80 dBFS hiss
    for x in (np.zeros(16000 * 2, np.float32), quiet):
        p = vad.probabilities(x)
        assert len(p) == -(-2 * 16000 // CHUNK)  # the tail is zero-padded to a whole chunk
        assert p.max() < 0.2
    assert segment([(i * 0.032, 0.0) for i in range(100)]) == []


def test_pure_tone_is_not_speech(vad):
    t = np.arange(16000 * 3) / 16000
    for f in (220.0, 1000.0):
        p = vad.probabilities((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32))
        assert p.max() < 0.5, f


def test_real_speech_is_speech(vad):
    x, rate = sf.read(SPEECH, dtype="float32")
    y = features.to_16k_mono(x, rate)
    out = []
    for i in range(0, len(y), 1234):  # odd chunk sizes, as from a device
        out += vad.push(y[i : i + 1234])
    probs = np.array([p for _, p in out])
    times = np.array([t for t, _ in out])
    assert np.allclose(np.diff(times), CHUNK / 16000)
    lead = times < 0.6  # the clip has 0.8 s of silence at each end
    assert probs[lead].max() < 0.2
    assert (probs > 0.5).mean() > 0.5
    utts = segment(out)
    assert utts, "no utterance found in speech"
    assert 0.5 <= utts[0][0] <= 1.0  # speech begins at 0.8 s; pre-roll 0.2 s
    assert utts[-1][1] >= len(y) / 16000 - 1.3
    # streaming in odd chunks equals scoring the whole signal
    whole = vad.probabilities(y[: len(probs) * CHUNK])
    assert np.allclose(whole, probs, atol=1e-5)


def _feed(seg: Segmenter, probs, dt=0.032):
    events = []
    for i, p in enumerate(probs):
        events += [(e.kind, round(e.t, 3)) for e in seg.feed(i * dt, p)]
    return events


def test_segmenter_pre_roll_and_hang_over():
    params = SegmenterParams(on=0.5, off=0.35, pre_roll_s=0.2, hang_over_s=0.3, min_speech_s=0.25, chunk_s=0.032)
    probs = [0.0] * 50 + [0.9] * 40 + [0.0] * 30  # speech 1.6 s .. 2.88 s
    ev = _feed(Segmenter(params), probs)
    assert ev == [("start", round(1.6 - 0.2, 3)), ("end", round(2.88 + 0.3, 3))]


def test_segmenter_min_speech_and_hysteresis():
    params = SegmenterParams(on=0.5, off=0.35, pre_roll_s=0.2, hang_over_s=0.3, min_speech_s=0.25, chunk_s=0.032)
    # a 3-chunk blip (96 ms) is shorter than min_speech: no events
    assert _feed(Segmenter(params), [0.0] * 10 + [0.9] * 3 + [0.0] * 30) == []
    # dips between off and on do not end speech; a gap shorter than the hang-over does not split
    probs = [0.0] * 10 + [0.9] * 20 + [0.4] * 20 + [0.9] * 5 + [0.0] * 5 + [0.9] * 10 + [0.0] * 20
    ev = _feed(Segmenter(params), probs)
    assert [k for k, _ in ev] == ["start", "end"]
    # a gap longer than the hang-over splits into two utterances that do not overlap
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 15 + [0.9] * 20 + [0.0] * 20
    ev = _feed(Segmenter(params), probs)
    assert [k for k, _ in ev] == ["start", "end", "start", "end"]
    assert ev[2][1] >= ev[1][1]


def test_segmenter_flush_closes_open_utterance():
    seg = Segmenter(SegmenterParams(chunk_s=0.032))
    _feed(seg, [0.9] * 20)
    assert seg.in_speech
    (end,) = seg.flush(0.64)
    assert end.kind == "end" and end.t == pytest.approx(0.64)
    assert not seg.in_speech
