"""Recording sessions: folder layout, metadata, real timestamps, never blocking, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from emotiond.capture.microphone import MicrophoneCapture
from emotiond.config import load_config
from emotiond.errors import DeviceError, SourceError
from emotiond.recording import MEDIA_FILE, METADATA_FILE, PREDICTIONS_FILE, RecordingSource, SessionRecorder, session_folder
from emotiond.sources.live import LiveSource
from emotiond.sources.base import SourceInfo
from emotiond.sources.media import MediaFileSource
from emotiond.sources.session import SessionSource, is_session, read_predictions
from emotiond.types import AudioChunk, VideoFrame
from tests.simdevices import SimCamera, SimMicrophone, click_times

pytestmark = pytest.mark.serial  # watches the wall clock: run alone, after the parallel part (make test)

REPO = Path(__file__).resolve().parents[1]
RATE = 48000


def config(**overrides):
    return load_config(None, {"capture.stall_timeout": 0.5, **overrides})


def replay(path, clock="deterministic"):
    src = SessionSource(path, clock=clock)
    items = list(src.items())
    return src, [i for i in items if isinstance(i, VideoFrame)], [i for i in items if isinstance(i, AudioChunk)]


def test_live_session_is_recorded_with_real_timestamps_and_replays_identically(tmp_path):
    start = time.monotonic() + 0.3
    flash = (12, 24)
    cam = SimCamera(320, 240, 30.0, start=start, flash_frames=flash)
    sim = SimMicrophone(start=start, click_times=tuple(start + k / 30 + 0.1 for k in flash))
    cfg = config()
    live = LiveSource(cfg, camera=cam, microphone=MicrophoneCapture(stream_factory=sim.factory, rate=RATE))
    source = RecordingSource(live, SessionRecorder(tmp_path / "s1", cfg))
    frames, chunks = [], []
    t_end = time.monotonic() + 1.4
    for item in source.items():
        (frames if isinstance(item, VideoFrame) else chunks).append(item)
        if time.monotonic() > t_end:
            break
    source.close()
    path = tmp_path / "s1"
    assert source.path == path and is_session(path)
    assert sorted(p.name for p in path.iterdir()) == ["frames.txt", MEDIA_FILE, METADATA_FILE]

    md = json.loads((path / METADATA_FILE).read_text())
    assert md["schema"] == "emotiond.session/1" and md["status"] == "complete"
    assert md["predictions"] == PREDICTIONS_FILE
    c = md["counters"]
    assert c["frames_offered"] == c["frames_written"] + c["frames_dropped"] and c["frames_dropped"] == 0
    assert c["frames_written"] >= len(frames)
    assert md["media"]["video"]["codec"] == "libx264" and md["media"]["audio"]["rate"] == RATE
    assert md["devices"]["camera"]["actual"] == {"width": 320, "height": 240, "fps": 30.0}
    assert md["capture"]["audio_overflows"] == 0 and "frames_dropped" in md["capture"]
    assert md["config"]["capture"]["stall_timeout"] == 0.5 and "face_landmarker" in md["models"]
    assert md["started"] and md["stopped"] and md["stopped_unix"] >= md["started_unix"]

    # an ordinary MP4: H.264 + AAC, that FFmpeg (and so players) open
    with av.open(str(path / MEDIA_FILE)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert [s.codec_context.name for s in container.streams] == ["h264", "aac"]

    src, rv, ra = replay(path)
    assert src.info.kind == "session" and src.info.extra["status"] == "complete" and not src.interrupted
    assert len(rv) == c["frames_written"]
    live_t = {f.index: f.t for f in frames}
    assert all(abs(f.t - live_t[f.index]) < 2e-5 for f in rv if f.index in live_t), "same indices, same times"
    assert len([f for f in rv if f.index in live_t]) == len(frames)
    # the A/V offset survives encoding: flash → click 100 ms later, in the replay as live
    live_flash = [f.t for f in frames if f.index in flash]
    rep_flash = [f.t for f in rv if f.index in flash]
    live_off = [min(click_times(chunks, 0.5), key=lambda x: abs(x - t - 0.1)) - t for t in live_flash]
    rep_off = [min(click_times(ra, 0.4), key=lambda x: abs(x - t - 0.1)) - t for t in rep_flash]
    print(f"\nA/V offset live {np.round(np.array(live_off) * 1e3, 2)} ms, replayed {np.round(np.array(rep_off) * 1e3, 2)} ms")
    assert np.allclose(live_off, rep_off, atol=0.002)
    assert sum(x.samples.shape[0] for x in ra) >= c["audio_samples_written"] - 1024


def test_write_never_blocks_and_drops_are_counted(tmp_path, monkeypatch):
    cfg = config(**{"record.queue_seconds": 0.2})
    rec = SessionRecorder(tmp_path / "slow", cfg)
    rec.start(SourceInfo(kind="live", uri="sim", live=True, has_audio=True, fps=30.0, audio_rate=RATE))
    real_handle = rec._handle

    def slow_handle(item):  # an encoder that cannot keep up (a busy machine)
        time.sleep(0.02)
        real_handle(item)

    monkeypatch.setattr(rec, "_handle", slow_handle)
    img = np.zeros((120, 160, 3), np.uint8)
    worst = 0.0
    for i in range(120):
        t0 = time.perf_counter()
        rec.write(VideoFrame(index=i, t=i / 30, image=img))
        rec.write(AudioChunk(t=i / 30, samples=np.zeros(1600, np.float32), rate=RATE))
        worst = max(worst, time.perf_counter() - t0)
    rec.close("test")
    c = rec.counters()
    assert c["frames_dropped"] > 0 and c["frames_offered"] == 120
    assert c["frames_written"] + c["frames_dropped"] == 120
    assert worst < 0.1, f"write() took {worst * 1e3:.1f} ms"
    md = json.loads((tmp_path / "slow" / METADATA_FILE).read_text())
    assert md["counters"]["frames_dropped"] == c["frames_dropped"] and md["end_reason"] == "test"
    _, rv, _ = replay(tmp_path / "slow")
    assert len(rv) == c["frames_written"]


def test_any_source_can_be_recorded_and_replayed(single_face_mp4, tmp_path):
    src = RecordingSource(MediaFileSource(single_face_mp4), SessionRecorder(tmp_path / "clip", config()))
    orig = [(i.index, i.t) for i in src.items() if isinstance(i, VideoFrame)]
    session, rv, ra = replay(tmp_path / "clip")
    assert [(f.index, round(f.t, 4)) for f in rv] == [(i, round(t, 4)) for i, t in orig]
    assert session.info.width == 640 and session.info.frame_count == len(orig)


def test_device_loss_finalizes_the_recording(tmp_path):
    cam = SimCamera(160, 120, 30.0, fail_after_frames=25)
    cfg = config()
    live = LiveSource(cfg, camera=cam, microphone=MicrophoneCapture(stream_factory=SimMicrophone().factory, rate=RATE))
    source = RecordingSource(live, SessionRecorder(tmp_path / "lost", cfg))
    with pytest.raises(DeviceError):
        for _ in source.items():
            pass
    md = json.loads((tmp_path / "lost" / METADATA_FILE).read_text())
    assert md["status"] == "complete" and "lost" not in md["status"]
    assert "DeviceError" in md["end_reason"] and "camera" in md["end_reason"]
    assert md["capture"]["status"] == "lost"
    _, rv, ra = replay(tmp_path / "lost")
    assert len(rv) == 25 and ra


def test_audio_only_and_video_only_sessions(tmp_path):
    cfg = config()
    for name, has_video, has_audio in [("audio", False, True), ("video", True, False)]:
        rec = SessionRecorder(tmp_path / name, cfg)
        rec.start(SourceInfo(kind="live", uri=name, live=True, has_video=has_video, has_audio=has_audio,
                             fps=30.0, audio_rate=RATE if has_audio else None))
        for i in range(45):
            t = 0.3 + i / 30
            if has_video:
                rec.write(VideoFrame(index=i, t=t, image=np.full((64, 80, 3), i, np.uint8)))
            if has_audio:
                rec.write(AudioChunk(t=t, samples=np.full(1600, 0.2, np.float32), rate=RATE))
        rec.close("done")
        src, rv, ra = replay(tmp_path / name)
        assert src.info.has_video is has_video and src.info.has_audio is has_audio
        assert len(rv) == (45 if has_video else 0)
        if has_audio:
            assert ra[0].t == pytest.approx(0.3, abs=1e-4)
            assert sum(c.samples.shape[0] for c in ra) >= 45 * 1600
        else:
            assert rv[0].t == pytest.approx(0.3, abs=1e-4) and not ra


def test_session_folder_never_overwrites(tmp_path):
    assert session_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert session_folder(tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    inner = session_folder(tmp_path / "full")
    assert inner.parent == tmp_path / "full" and inner.name.startswith("session-")
    with pytest.raises(SourceError):
        SessionSource(tmp_path / "full")


def test_sigkill_mid_live_recording_loses_at_most_half_a_second(tmp_path):
    """Record from simulated devices in a child process, kill -9 it, open and replay what was saved."""
    target = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "record_child.py"), str(target)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # ~2 s of media captured
            frames = [ln for ln in lines if ln.startswith("frame ")]
            if frames and float(frames[-1].split()[2]) - float(frames[0].split()[2]) > 2.0:
                break
            if proc.poll() is not None:
                pytest.fail(f"the recorder died: {proc.stderr.read()[-2000:]}")
            time.sleep(0.02)
        else:
            pytest.fail("the child never recorded 2 s")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(2)
    last_offered = float([ln for ln in lines if ln.startswith("frame ")][-1].split()[2])
    path = Path(lines[0].split(" ", 1)[1].strip())

    md = json.loads((path / METADATA_FILE).read_text())  # valid JSON: it is replaced atomically
    assert md["status"] == "recording"
    src, rv, ra = replay(path)
    assert src.interrupted and src.info.extra["status"] == "interrupted"
    assert any("interrupted" in w for w in src.warnings)
    assert rv and ra
    idx = [f.index for f in rv]
    assert idx == list(range(len(rv)))
    assert all(b.t > a.t for a, b in zip(rv, rv[1:]))
    lost = last_offered - rv[-1].t
    audio_end = ra[-1].t + ra[-1].duration
    print(f"\nSIGKILL after {last_offered - rv[0].t:.2f} s of video: {rv[-1].t - rv[0].t:.2f} s saved, "
          f"{lost:.2f} s lost; audio saved to {audio_end - rv[0].t:.2f} s; "
          f"{len(read_predictions(path))} prediction lines")
    assert lost <= 0.5, "at most a 0.2 s fragment plus the encoder's and muxer's few frames are lost"
    assert abs(audio_end - rv[-1].t) < 0.2  # both tracks end at the same fragment
    preds = read_predictions(path)
    assert len(preds) >= len(rv) - 5 and all("t" in r for r in preds)
    # and it replays again, the same
    _, rv2, ra2 = replay(path)
    assert [f.t for f in rv2] == [f.t for f in rv] and len(ra2) == len(ra)



def test_replay_keeps_the_source_frame_numbers(tmp_path):
    """A recording that starts at frame 500 with gaps replays with the same numbers."""
    rec = SessionRecorder(tmp_path / "late", config())
    rec.start(SourceInfo(kind="live", uri="sim", live=True, has_audio=False, fps=30.0))
    img = np.zeros((120, 160, 3), np.uint8)
    numbers = [500 + i + (i // 10) * 3 for i in range(30)]  # gaps where frames were skipped live
    for n in numbers:
        assert rec.write(VideoFrame(index=n, t=n / 30.0, image=img))
    rec.close()
    session, rv, _ = replay(tmp_path / "late")
    assert [f.index for f in rv] == numbers


def test_damaged_session_media_is_reported(single_face_mp4, tmp_path):
    src = RecordingSource(MediaFileSource(single_face_mp4), SessionRecorder(tmp_path / "dmg", config()))
    n = sum(isinstance(i, VideoFrame) for i in src.items())
    media = tmp_path / "dmg" / MEDIA_FILE
    data = bytearray(media.read_bytes())
    cut = len(data) // 2
    media.write_bytes(bytes(data[:cut]))  # the second half of the media is gone; metadata says complete
    session, rv, _ = replay(tmp_path / "dmg")
    assert 0 < len(rv) < n
    assert session.truncated
    assert any("ends early" in w or "stopped at" in w for w in session.warnings), session.warnings


def test_span_on_a_file_records_every_frame_behind_a_stalled_encoder(single_face_mp4, tmp_path):
    """A RecordingSpan fed by a file source waits for the encoder (back-pressure): with the writer
    held until frames queue up, every frame still reaches the media, none is dropped, and the
    predictions of the span are exactly its frames (the source ended: every result belongs)."""
    from emotiond.recording import RecordingSpan
    from emotiond.types import FrameResult

    cfg = config(**{"record.queue_seconds": 0.1})
    span = RecordingSpan(tmp_path / "s", cfg, models={})
    gate = threading.Event()
    handle = span.recorder._handle

    holding = threading.Event()

    def held(item):  # the writer thread: nothing is encoded until the reader had to wait
        holding.set()
        gate.wait(30)
        handle(item)

    span.recorder._handle = held
    src = RecordingSource(MediaFileSource(single_face_mp4), stop=threading.Event())
    src.attach(span, whole_run=True)
    assert span.recorder._max_frames == 4

    waited = []

    def release():  # once the reader waits for room (the writer, held, waits on nothing)
        deadline = time.monotonic() + 10
        while not (holding.is_set() and span.recorder._cond._waiters) and time.monotonic() < deadline:
            time.sleep(0.005)
        waited.append(bool(span.recorder._cond._waiters))
        gate.set()

    releaser = threading.Thread(target=release)
    releaser.start()
    frames = []
    for item in src.items():
        if isinstance(item, VideoFrame):
            frames.append(item.index)
            span.write_result(FrameResult(t=item.t, frame=item.index))
    releaser.join()
    assert span.stopped and span.end_reason == "source ended"  # the media was finalised when the items ended
    assert not span.done.is_set() and span.results_open  # results of recorded frames may still come
    span.end_results()
    assert span.done.wait(5) and span.failure is None
    src.close()

    c = span.counters()
    assert waited == [True] and c["frames_dropped"] == 0 and c["audio_samples_dropped"] == 0
    with av.open(str(tmp_path / "s" / MEDIA_FILE)) as media:
        in_media = sum(1 for _ in media.decode(video=0))
    with av.open(str(single_face_mp4)) as original:
        in_source = sum(1 for _ in original.decode(video=0))
    assert in_media == in_source == len(frames) == c["frames_written"] == 72
    predicted = [r["frame"] for r in read_predictions(tmp_path / "s" / PREDICTIONS_FILE)]
    assert predicted == frames
    md = json.loads((tmp_path / "s" / METADATA_FILE).read_text())
    assert md["status"] == "complete" and md["end_reason"] == "source ended"


def test_span_cut_mid_run_keeps_the_results_of_its_own_frames(tmp_path):
    """Stopped while the source goes on: results before the first recorded frame and after the
    last are not the span's; the log closes at the result of its last frame; a span never
    started stops at once."""
    from emotiond.recording import RecordingSpan
    from emotiond.types import FrameResult

    span = RecordingSpan(tmp_path / "cut", config(), models={})
    span.start(SourceInfo(kind="file", uri="sim", live=False, has_audio=False, fps=10.0))
    img = np.zeros((120, 160, 3), np.uint8)
    for i in range(5, 10):
        assert span.write(VideoFrame(index=i, t=i / 10, image=img))
    span.stop()  # the window's Stop: returns at once
    assert not span.write(VideoFrame(index=10, t=1.0, image=img))  # not part of the span any more
    for i in range(3, 12):  # the pipeline is behind: the results of frames 3..11 come now
        span.write_result(FrameResult(t=i / 10, frame=i))
    assert span.done.wait(10) and not span.results_open
    assert [r["frame"] for r in read_predictions(tmp_path / "cut" / PREDICTIONS_FILE)] == [5, 6, 7, 8, 9]
    _, rv, _ = replay(tmp_path / "cut")
    assert [f.index for f in rv] == [5, 6, 7, 8, 9]

    never = RecordingSpan(tmp_path / "never", config(), models={})
    never.stop()
    assert never.done.is_set() and not (tmp_path / "never").exists()
