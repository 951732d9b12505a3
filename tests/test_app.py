"""The application layer on real media: one way through for every front end, shared Models,
per-track fusion, the one pacer, and a run that stops promptly with every thread joined."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emotiond.app import Analysis, Models
from emotiond.config import load_config
from emotiond.pacer import Pacer
from emotiond.types import AudioChunk, VideoFrame
from tests.mediautil import transcode

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def short_speech_mp4(tmp_path_factory, pexels_mp4) -> Path:
    """2 s of the Pexels clip (a face and speech), re-encoded."""
    out = tmp_path_factory.mktemp("app") / "pexels_2s.mp4"
    transcode(pexels_mp4, out, max_frames=48)
    return out


def cli_run(source: Path, log: Path, *extra: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "emotiond", "run", str(source), "--log", str(log), "--no-progress",
                           *extra], capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_models_reused_across_files_equal_fresh_processes(tmp_path, single_face_mp4, short_speech_mp4, multi_face_jpg,
                                                          no_face_mp4):
    """One Models, four sources one after another (video+voice, image, no face, video again)
    = the logs of fresh `emotiond run` processes, byte for byte."""
    files = [short_speech_mp4, multi_face_jpg, no_face_mp4, single_face_mp4]
    cfg = load_config()
    with Models(cfg) as models:
        created = []
        for i, f in enumerate(files):
            with Analysis.open(str(f), cfg, models=models) as an:
                an.load()
                an.open_log(tmp_path / f"reused-{i}.jsonl")
                an.run()
                created.append(an.engine.loaded is models)
        assert all(created), "every engine must use the shared models"
        assert not models.closed
    assert models.closed
    for i, f in enumerate(files):
        cli_run(f, tmp_path / f"fresh-{i}.jsonl")
        reused = (tmp_path / f"reused-{i}.jsonl").read_bytes()
        fresh = (tmp_path / f"fresh-{i}.jsonl").read_bytes()
        assert reused and reused == fresh, f"{f.name}: a reused Models gave a different log than a fresh process"
    # the voice path really ran on the reused models, and faces were found
    recs = [json.loads(x) for x in (tmp_path / "reused-0.jsonl").read_text().splitlines()]
    assert any(r["speech"] is not None for r in recs) and any(r["faces"] for r in recs)


@pytest.mark.slow
def test_cli_and_gui_worker_write_the_same_log(tmp_path, short_speech_mp4):
    from emotiond.gui.worker import AnalysisWorker
    from emotiond.sinks import JsonlSink
    from emotiond.sources import open_source

    cli_run(short_speech_mp4, tmp_path / "cli.jsonl")
    sink = JsonlSink(tmp_path / "gui.jsonl")
    w = AnalysisWorker(lambda: open_source(short_speech_mp4), load_config(), pace=False, sinks=[sink]).start()
    assert w.join(120), "the GUI worker did not finish"
    sink.close()
    assert w.state == "ended", w.error
    cli = (tmp_path / "cli.jsonl").read_bytes()
    assert cli and (tmp_path / "gui.jsonl").read_bytes() == cli


def test_primary_face_and_per_track_fusion(multi_face_jpg, tmp_path):
    cfg = load_config(overrides={"voice.enabled": False})
    results = []
    with Analysis.open(str(multi_face_jpg), cfg) as an:
        an.open_log(tmp_path / "log.csv")
        an.run(on_result=lambda r, f: results.append(r))
    (res,) = results
    assert len(res.faces) >= 2
    areas = {f.track_id: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]) for f in res.faces}
    assert res.primary == max(areas, key=areas.get)
    assert res.primary_face is not None and res.primary_face.track_id == res.primary
    # one fusion state per face; the frame-level result is the primary's
    assert set(res.fused_by_track) == set(areas)
    assert np.array_equal(res.fused.probs, res.fused_by_track[res.primary].probs)
    other = next(k for k in areas if k != res.primary)
    assert not np.array_equal(res.fused_by_track[other].probs, res.fused.probs)
    header, row = (tmp_path / "log.csv").read_text().splitlines()[:2]
    cols = header.split(",")
    assert row.split(",")[cols.index("primary")] == str(res.primary)


def test_no_face_result_names_no_primary(no_face_mp4):
    cfg = load_config()
    results = []
    with Analysis.open(str(no_face_mp4), cfg) as an:
        an.run(on_result=lambda r, f: results.append(r))
    assert results and all(r.primary is None and not r.faces for r in results)


def test_stopping_mid_file_returns_quickly_and_joins_every_thread(pexels_mp4):
    cfg = load_config()
    before = set(threading.enumerate())
    with Models(cfg) as models:
        an = Analysis.open(str(pexels_mp4), cfg, models=models)  # (realtime would also warm the voice up)
        an.load()
        out: dict = {}
        th = threading.Thread(target=lambda: out.setdefault("stats", an.run()), name="test-run")
        th.start()
        time.sleep(1.5)
        t0 = time.monotonic()
        an.stop()
        th.join(10)
        an.close()
        took = time.monotonic() - t0
        assert not th.is_alive()
        assert took < 2.0, f"stopping took {took:.2f} s"
        stats = out["stats"]
        assert stats.stopped == "stopped" and 0 < stats.frames < 472 and stats.unjoined == []
        run_threads = [t.name for t in threading.enumerate() if t.name.startswith("emotiond-")]
        assert not run_threads, f"the run's threads still running: {run_threads}"
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, f"threads still running after the models closed: {[t.name for t in left]}"


def test_clock_policy_is_one_place(tmp_path, single_face_mp4):
    from emotiond.app import runner_clock, watched
    from emotiond.sources.base import SourceInfo

    f = SourceInfo(kind="video", uri="x")
    assert runner_clock(f, None) == "fast" and runner_clock(f, "realtime") == "realtime"
    assert runner_clock(f, "deterministic") == "fast"
    live = SourceInfo(kind="live", uri="cam", live=True)
    assert runner_clock(live, "realtime") == "fast" and watched(live, None)
    sess = SourceInfo(kind="session", uri="s", extra={"clock": "realtime"})
    assert runner_clock(sess, "realtime") == "fast" and watched(sess, "realtime")  # the session paces itself
    sess_fast = SourceInfo(kind="session", uri="s", extra={"clock": "fast"})
    assert runner_clock(sess_fast, "realtime") == "realtime"  # the GUI paces a fast-opened session


# -- the pacer --------------------------------------------------------------------------------------
def frame(i: int, t: float) -> VideoFrame:
    return VideoFrame(index=i, t=t, image=np.zeros((2, 2, 3), np.uint8))


def chunk(t: float) -> AudioChunk:
    return AudioChunk(t=t, samples=np.zeros(160, np.float32), rate=16000)


class FakeTime:
    """A clock the pacer sleeps on: deterministic whatever the machine's load."""

    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, dt: float) -> bool:
        self.slept.append(dt)
        self.now += dt
        return False

    def pacer(self, **kw) -> Pacer:
        return Pacer(clock=self.clock, sleep=self.sleep, **kw)


def test_pacer_releases_frames_at_media_time_with_audio_ahead():
    """The GUI bug: audio demuxed ahead of video made every frame late and the old tap re-anchored
    on each, so a file crawled.  Audio is not waited for; frames come at their media time."""
    ft = FakeTime()
    p = ft.pacer(video=True)
    released = []
    for i in range(20):
        for it in (chunk(i * 0.025 + 0.6), frame(i, i * 0.025)):  # audio 0.6 s ahead of the frames
            before = ft.now
            assert p.wait(it)
            if isinstance(it, AudioChunk):
                assert ft.now == before, "audio must never wait"
            else:
                released.append(ft.now - 100.0 - it.t)
    assert max(abs(d) for d in released) < 1e-9  # each frame exactly at its media time
    assert ft.now - 100.0 == pytest.approx(19 * 0.025)  # 0.475 s of media took 0.475 s, no crawl


def test_pacer_slows_down_without_bursting_or_crawling():
    """A consumer slower than the media: late frames are released at once (no waits); the anchor
    slides so that a frame is never more than max_behind late, and no burst follows."""
    ft = FakeTime()
    p = ft.pacer(video=True, max_behind=0.1)
    for i in range(10):
        assert p.wait(frame(i, i * 0.01))
        ft.now += 0.03  # the pipeline takes 3x the media time per frame
    assert ft.slept == [] and p.slid > 0 and p.dropped == 0
    # the consumer catches up (fast from now on): frames are paced again, never more than
    # max_behind late, and the catch-up is not a burst of the whole backlog
    for i in range(10, 30):
        assert p.wait(frame(i, i * 0.01))
    assert sum(ft.slept) == pytest.approx(0.19 - 0.1, abs=1e-6)  # 0.19 s of media, at most 0.1 s burst


def test_pacer_pause_holds_and_shifts_the_clock():
    ft = FakeTime()
    p = ft.pacer(video=True)
    assert p.wait(frame(0, 0.0))
    p.set_paused(True)
    ft.now += 5.0  # paused for 5 s
    p.set_paused(False)
    assert p.wait(frame(1, 0.05))
    assert ft.slept == [pytest.approx(0.05)]  # at its time on the shifted clock: no burst, no 5 s lag


def test_pacer_pause_blocks_until_resumed():
    p = Pacer(video=True)
    assert p.wait(frame(0, 0.0))
    p.set_paused(True)
    threading.Timer(0.3, p.set_paused, args=(False,)).start()
    t0 = time.monotonic()
    assert p.wait(frame(1, 0.0))
    assert time.monotonic() - t0 >= 0.25


def test_pacer_late_drop_and_stop():
    ft = FakeTime()
    p = ft.pacer(video=True, late_drop=0.05, max_behind=None)
    assert p.wait(frame(0, 0.0))
    ft.now += 0.12
    assert not p.wait(frame(1, 0.01)) and p.dropped == 1
    assert p.wait(chunk(0.02))  # audio is never dropped
    p = Pacer(video=True)
    p.stop.set()
    t0 = time.monotonic()
    assert not p.wait(frame(2, 5.0))
    assert time.monotonic() - t0 < 0.5


def test_session_source_closed_before_reading(tmp_path, single_face_mp4):
    """A session closed before its first read (a run stopped while the models loaded) yields
    nothing and raises nothing; closing twice is fine too."""
    from emotiond.recording import RecordingSource, SessionRecorder
    from emotiond.sources import open_source
    from emotiond.sources.session import SessionSource

    rec = RecordingSource(open_source(single_face_mp4), SessionRecorder(tmp_path / "s", load_config()))
    path = rec.start()
    assert sum(1 for _ in rec.items()) > 0
    rec.close()
    src = SessionSource(path)
    src.close()
    assert list(src.items()) == []
    src.close()
    # and a session read after another one was closed mid-way still reads in full
    src = SessionSource(path)
    n = sum(isinstance(it, VideoFrame) for it in src.items())
    src.close()
    assert n == 72


def test_logging_is_quiet_by_default_and_verbose_on_request(tmp_path, multi_face_jpg):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("EMOTIOND_LOG_LEVEL", None)

    def run_cli(*args, **extra_env):
        proc = subprocess.run([sys.executable, "-m", "emotiond", *args], capture_output=True, text=True, timeout=120,
                              env={**env, **extra_env}, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    quiet = run_cli("run", str(multi_face_jpg), "--log", str(tmp_path / "a.jsonl"), "--no-progress")
    assert "INFO" not in quiet and "DEBUG" not in quiet
    verbose = run_cli("run", str(multi_face_jpg), "--log", str(tmp_path / "b.jsonl"), "--no-progress", "-v")
    assert "emotiond: INFO emotiond.app.analysis: engine ready" in verbose and "DEBUG" not in verbose
    debug = run_cli("run", str(multi_face_jpg), "--log", str(tmp_path / "c.jsonl"), "--no-progress",
                    EMOTIOND_LOG_LEVEL="debug")
    assert "DEBUG emotiond.models: models loaded" in debug


def test_recent_log_lines_for_the_gui():
    import logging

    from emotiond import logs

    logs.setup(0)
    logging.getLogger("emotiond.test").warning("disk nearly full")
    logging.getLogger("emotiond.test").info("not shown at the default level")
    lines = logs.recent_lines(5)
    assert lines and lines[-1].endswith("WARNING emotiond.test: disk nearly full")
    assert not any("not shown" in x for x in lines)


def test_shared_models_missing_a_needed_path_is_an_error_not_a_silent_gap(single_face_mp4):
    from emotiond.errors import ModelError

    cfg = load_config()
    with Models(cfg, voice=False, workers=1) as models:
        with Analysis.open(str(single_face_mp4), cfg, models=models) as an:
            with pytest.raises(ModelError, match="without the voice path"):
                an.load()
        cfg_no_voice = load_config(overrides={"voice.enabled": False})
        with Analysis.open(str(single_face_mp4), cfg_no_voice, models=models) as an:
            an.load()  # fine: the voice is off
            assert an.engine.voice is None and an.engine.workers == 1


def test_gui_worker_recording_started_and_stopped_mid_run(tmp_path, single_face_mp4):
    """The window's Record / Stop on a file playing in real time (through the worker, as the
    window does): the session's predictions are exactly the results of the frames in its media,
    nothing is dropped, and it replays."""
    from emotiond.gui.worker import AnalysisWorker
    from emotiond.sources import open_source
    from emotiond.sources.session import SessionSource, read_predictions

    cfg = load_config(overrides={"voice.enabled": False})
    w = AnalysisWorker(lambda: open_source(single_face_mp4), cfg, pace=True).start()
    try:
        deadline = time.monotonic() + 60
        while not (w.can_record() and w.poll().results >= 3) and time.monotonic() < deadline:
            time.sleep(0.02)
        span = w.start_recording(tmp_path / "s")
        assert w.recording is span
        while span.recorder.frames_offered < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert w.stop_recording() is span and w.recording is None
        assert span.done.wait(30), "the recording did not finish"
        assert w.state == "running", "stopped mid-run, not at the end of the clip"
        results_then = w.poll().results
    finally:
        w.stop()
        assert w.join(30)
    session = tmp_path / "s"
    md = json.loads((session / "metadata.json").read_text())
    assert md["status"] == "complete" and md["end_reason"] == "stopped"
    c = md["counters"]
    assert c["frames_dropped"] == 0 and c["frames_written"] == c["frames_offered"] >= 12
    recorded = [int(x) for x in (session / "frames.txt").read_text().split()]
    assert recorded[0] > 0 and recorded[-1] < 71, "a span in the middle of the clip"
    assert recorded == list(range(recorded[0], recorded[-1] + 1)) and len(recorded) == c["frames_written"]
    assert [r["frame"] for r in read_predictions(session / "predictions.jsonl")] == recorded
    assert results_then > recorded[-1] - recorded[0]
    src = SessionSource(session)
    try:
        assert sum(isinstance(it, VideoFrame) for it in src.items()) == len(recorded)
    finally:
        src.close()
