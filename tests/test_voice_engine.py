"""The voice path inside the engine: real silero VAD and the real voice model on real audio."""

import json
from pathlib import Path

import numpy as np
import pytest

from emotiond.config import load_config
from emotiond.engine import Engine
from emotiond.runner import run
from emotiond.sinks import JsonlSink
from emotiond.sources import open_source
from emotiond.types import AudioChunk
from tests.mediautil import transcode, write_wav

DATA = Path(__file__).resolve().parent / "data"
SPEECH = DATA / "speech_en_espeak.flac"


def analyse(path, tmp_path, **overrides):
    cfg = load_config(overrides=overrides)
    src = open_source(path)
    log = tmp_path / f"{Path(path).stem}.jsonl"
    sink = JsonlSink(log, mode="overwrite")
    with Engine(cfg, source_info=src.info) as engine:
        run(src, engine, [sink], progress=False)
    sink.close()
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_speech_file_gives_voice_evidence_on_audio_ticks(tmp_path):
    recs = analyse(SPEECH, tmp_path)
    hop = load_config().voice.hop
    assert len(recs) >= int(8.8 / hop) - 1
    assert all(r["frame"] == -1 and r["faces"] == [] for r in recs)
    ts = [r["t"] for r in recs]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    with_voice = [r for r in recs if r["voice"] is not None]
    assert len(with_voice) >= 0.5 * len(recs), "speech most of the time: voice evidence most of the time"
    for r in with_voice:
        assert sum(r["voice"].values()) == pytest.approx(1.0, abs=2e-3)
        assert r["voice"]["surprise"] == 0.0  # the class the voice model lacks
        assert r["shares"] == {"voice": 1.0}
        assert sum(r["fused"].values()) == pytest.approx(1.0, abs=2e-3)
    assert max(r["speech"] for r in recs) > 0.8


@pytest.mark.parametrize("kind", ["silence", "tone"])
def test_silence_and_tone_give_no_voice_evidence(tmp_path, kind):
    rate = 48000
    t = np.arange(rate * 4) / rate
    x = np.zeros_like(t) if kind == "silence" else 0.3 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / f"{kind}.wav"
    write_wav(path, x.astype(np.float32), rate)
    recs = analyse(path, tmp_path)
    assert recs, "an audio file always gives results"
    assert all(r["voice"] is None and r["fused"] is None for r in recs)
    assert max(r["speech"] for r in recs) < 0.5


@pytest.mark.parametrize("rate,channels", [(8000, 1), (44100, 2), (48000, 2), (96000, 1)])
def test_any_rate_and_channel_count(tmp_path, rate, channels):
    import soundfile as sf

    x, sr = sf.read(SPEECH, dtype="float32")
    import soxr

    y = soxr.resample(x, sr, rate)
    if channels == 2:
        y = np.stack([y, 0.5 * y], axis=1)
    path = tmp_path / f"speech_{rate}_{channels}.wav"
    write_wav(path, y, rate)
    recs = analyse(path, tmp_path)
    assert sum(r["voice"] is not None for r in recs) >= 0.5 * len(recs)


def test_speech_from_off_camera_does_not_join_the_face(single_face_mp4, tmp_path):
    """A real face clip with someone else's speech as its audio track: the face is not speaking
    (its mouth does not follow the voice), so its result stays face-only and the voice goes to
    the off-screen entry (tests/test_speaking.py has the faces that do speak).  The speech
    starts at once (its leading silence cut): had it started at 0.8 s, just when this face
    opens its mouth, that would be real evidence of the face speaking."""
    import soundfile as sf

    x, rate = sf.read(str(SPEECH), dtype="float32")
    speech = tmp_path / "speech_now.wav"
    write_wav(speech, x[int(0.75 * rate):], rate)
    with_audio = tmp_path / "face_speech.mkv"
    transcode(single_face_mp4, with_audio, "libx264", "aac", audio_from=speech)
    recs = analyse(with_audio, tmp_path)
    voiced = [r for r in recs if r["voice"] is not None and r["faces"]]
    assert voiced, "the speech gives voice evidence"
    for r in voiced:
        assert r["shares"] == {"face": 1.0} and r["faces"][0]["shares"] == {"face": 1.0}
        assert r["faces"][0]["speaking"] < 0.5
    off = [r for r in voiced if r["offscreen"] is not None]
    assert len(off) >= 0.9 * len(voiced)
    assert all(sum(r["offscreen"]["fused"].values()) == pytest.approx(1.0, abs=2e-3) for r in off)


def test_video_without_audio_track(single_face_mp4, tmp_path):
    dst = tmp_path / "silent_video.mkv"
    transcode(single_face_mp4, dst, "libx264", None, max_frames=20)
    recs = analyse(dst, tmp_path)
    assert len(recs) == 20
    assert all(r["voice"] is None and r["speech"] is None for r in recs)
    assert all(r["shares"] == {"face": 1.0} for r in recs if r["faces"])


def test_voice_evidence_decays_after_speech(tmp_path):
    """Speech then 3 s of silence: the voice's weight falls off with decay_tau."""
    from emotiond.voice import VoiceTrack

    cfg = load_config()
    track = VoiceTrack.from_config(cfg)
    import soundfile as sf

    x, sr = sf.read(SPEECH, dtype="float32")
    track.insert(AudioChunk(0.0, x, sr))
    end = len(x) / sr
    track.insert(AudioChunk(end, np.zeros(int(sr * 3), np.float32), sr))
    t_end = track.ended_at
    assert t_end is not None and t_end <= end + 1.0, "the utterance ends in the silence"
    e0 = track.evidence(t_end)
    e1 = track.evidence(t_end + 2 * cfg.voice.decay_tau)
    assert e0 is not None and e0.reliability > 0.1 * track.model.fusion_reliability
    assert e1 is None or e1.reliability == pytest.approx(e0.reliability * np.exp(-2), rel=1e-6)


def test_unreadable_audio_stream_degrades_to_face_only(single_face_mp4, tmp_path):
    """Every audio packet replaced by noise bytes: the video is still analysed and the run says so."""
    import subprocess
    import sys

    import av

    inp = av.open(str(single_face_mp4))
    path = tmp_path / "bad_audio.mkv"
    out = av.open(str(path), "w")
    vs = out.add_stream_from_template(inp.streams.video[0])
    aus = out.add_stream_from_template(inp.streams.audio[0])
    rng = np.random.default_rng(0)
    for p in inp.demux():
        if p.dts is None:
            continue
        if p.stream.type == "audio":
            q = av.Packet(rng.integers(0, 256, p.size, dtype=np.uint8).tobytes())
            q.pts, q.dts, q.time_base, q.stream = p.pts, p.dts, p.time_base, aus
            out.mux(q)
        else:
            p.stream = vs
            out.mux(p)
    out.close()
    inp.close()
    log = tmp_path / "bad_audio.jsonl"
    proc = subprocess.run([sys.executable, "-m", "emotiond", "run", str(path), "--log", str(log)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "damaged audio packets" in proc.stderr and "no voice evidence" in proc.stderr
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(recs) == 72 and sum(bool(r["faces"]) for r in recs) >= 65
    assert all(r["voice"] is None for r in recs)


def test_short_audio_tail_is_analysed(tmp_path):
    """0.2 s of speech: shorter than one hop, still one result at its end."""
    import soundfile as sf

    x, sr = sf.read(SPEECH, dtype="float32")
    start = int(2.5 * sr)
    path = tmp_path / "short.wav"
    write_wav(path, x[start : start + int(0.2 * sr)], sr)
    recs = analyse(path, tmp_path)
    assert len(recs) == 1
    assert recs[0]["t"] == pytest.approx(0.2, abs=0.033)  # the tail is padded to one 32 ms VAD chunk
    assert recs[0]["speech"] is not None



def test_streamed_windows_and_frames_equal_the_offline_ones():
    """The track keeps its last 2 s in a ring and FrameStream analyses each 10 ms frame once (both
    without copying their buffers every 32 ms): every window the track evaluates must be the last
    2 s of the stream (zeros before its start), and its frames those prosody.frames computes on
    the same samples — also after a silence longer than FrameStream keeps (it trims there)."""
    import soundfile as sf

    from emotiond.audio import features, prosody
    from emotiond.audio.vad import VoiceActivity
    from emotiond.audio.voice_model import VoiceEmotionModel
    from emotiond.voice import VoiceTrack

    x, sr = sf.read(SPEECH, dtype="float32")
    x = x[: int(3.5 * sr)]
    x = np.concatenate([x, np.zeros(6 * sr, np.float32), x])
    y = features.to_16k_mono(x, sr)  # the whole-signal resampling the stream must equal
    track = VoiceTrack(VoiceActivity.from_registry(), VoiceEmotionModel.from_registry(provider="cpu"), hop=0.5)
    seen = []
    track._score = lambda window, speech, frames: seen.append((track._n, window.copy(), frames))
    step = sr // 50
    for i in range(0, x.size, step):
        track.insert(AudioChunk(i / sr, x[i : i + step], sr))
    w = track.params.window_samples
    assert len(seen) >= 6 and seen[0][0] < w and seen[-1][0] > 9.5 * 16000  # short, full, after the silence
    for n, window, frames in seen:
        want = np.concatenate([np.zeros(max(0, w - n), np.float32), y[max(0, n - w) : n]])
        np.testing.assert_allclose(window, want, atol=1e-5)
        # frames sit on a 10 ms grid from the start of the stream; the window holds the last 197
        grid = prosody._frame(y[:n])
        ref = prosody._finish(prosody._raw(grid[-frames.energy_db.size :]))
        assert frames.energy_db.size == min(grid.shape[0], 1 + (w - prosody.FRAME) // prosody.HOP)
        np.testing.assert_allclose(frames.energy_db, ref.energy_db, atol=1e-2)
        np.testing.assert_allclose(frames.voicing, ref.voicing, atol=1e-3)
        np.testing.assert_allclose(frames.mfcc, ref.mfcc, atol=1e-2)
