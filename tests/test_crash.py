"""kill -9 of a recording `emotiond run` at random instants: at most 0.5 s lost.

Ground truth of what the process had handed over, read from its pipes (which keep what was
written to them when the process dies):

* media: ``EMOTIOND_RECORD_TRACE=1`` makes the recorder write ``emotiond-record: video|audio T``
  to stderr for each item it accepts, *before* queueing it (T: the item's end on the source
  clock);
* predictions: the run's results on stdout, written (flushed per line) just before the same
  record goes to the session's ``predictions.jsonl``.

What was saved: the frames and audio decodable from ``media.mp4`` (read back as a replay does)
and the complete lines of ``predictions.jsonl``.  The instants are random (seeded; the seed is
printed, ``EMOTIOND_CRASH_SEED=N`` repeats it) and the three runs go side by side, which loads
the machine as a busy one would.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emotiond.recording import METADATA_FILE
from emotiond.sources.session import SessionSource, read_predictions
from emotiond.types import AudioChunk, VideoFrame

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # kill instants: alone, after the parallel part

REPO = Path(__file__).resolve().parents[1]
MAX_LOSS = 0.5  # seconds of media (the promise)
KILLS = 3


class Child:
    """`emotiond run CLIP --record DIR` (face only: the audio is recorded all the same) with the
    recorder's trace, its pipes read as they come."""

    def __init__(self, clip: Path, target: Path, home: Path):
        env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "EMOTIOND_RECORD_TRACE": "1"}
        env.pop("EMOTIOND_CONFIG", None)
        self.target = target
        self.proc = subprocess.Popen([sys.executable, "-m", "emotiond", "run", str(clip), "--record", str(target),
                                      "--no-progress", "--no-voice"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.first_video: float | None = None  # source time of the first frame the recorder accepted
        self.last_video: float | None = None  # ... and of the latest one
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for th in self._threads:
            th.start()

    def _read(self, pipe, lines: list[bytes]) -> None:
        for line in iter(pipe.readline, b""):
            if line.startswith(b"emotiond-record: video "):
                t = float(line.split()[2])
                if self.first_video is None:
                    self.first_video = t
                self.last_video = t
            lines.append(line)

    def recorded_seconds(self) -> float:
        """Media seconds of video handed to the recorder so far."""
        return 0.0 if self.first_video is None else self.last_video - self.first_video

    def finish(self) -> None:
        for th in self._threads:
            th.join(30)

    def handed(self, kind: str) -> float:
        """The end of the last item of ``kind`` handed to the recorder."""
        ts = [float(ln.split()[2]) for ln in self.err if ln.startswith(f"emotiond-record: {kind} ".encode())]
        assert ts, f"no {kind} was handed to the recorder"
        return max(ts)

    def emitted(self) -> list[dict]:
        """The results the process wrote to stdout (complete lines)."""
        return [json.loads(ln) for ln in self.out if ln.endswith(b"\n")]


def saved_media(session: Path) -> tuple[SessionSource, float, float, int]:
    """What a replay reads back: (source, last frame's t, audio end, frames)."""
    src = SessionSource(session, clock="deterministic")
    v_end = a_end = float("-inf")
    n = 0
    for item in src.items():
        if isinstance(item, VideoFrame):
            v_end, n = max(v_end, item.t), n + 1
        elif isinstance(item, AudioChunk):
            a_end = max(a_end, item.t + item.duration)
    return src, v_end, a_end, n


@pytest.fixture(scope="module")
def killed(tmp_path_factory, pexels_mp4):
    """Three runs recording the 20-s clip at the fast clock, each killed -9 once 1–4 s of media
    were handed to its recorder (media time, so a loaded machine moves the instant, not what is
    due to be saved); they run side by side."""
    seed = int(os.environ.get("EMOTIOND_CRASH_SEED") or random.SystemRandom().randrange(1 << 31))
    rng = random.Random(seed)
    delays = [round(rng.uniform(1.0, 4.0), 3) for _ in range(KILLS)]
    base = tmp_path_factory.mktemp("crash")
    (base / "home").mkdir()
    children = [Child(pexels_mp4, base / f"s{k}", base / "home") for k in range(KILLS)]
    try:
        pending = set(range(KILLS))
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for k in sorted(pending):
                c = children[k]
                if c.proc.poll() is not None:
                    pytest.fail(f"seed {seed}: run {k} ended before it was killed: "
                                f"{b''.join(c.err)[-2000:].decode(errors='replace')}")
                if c.recorded_seconds() >= delays[k]:
                    os.kill(c.proc.pid, signal.SIGKILL)
                    pending.discard(k)
            time.sleep(0.01)
        assert not pending, f"seed {seed}: runs {sorted(pending)} never started recording"
        for c in children:
            c.proc.wait(30)
            c.finish()
    finally:
        for c in children:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()
    return seed, delays, children


@pytest.mark.parametrize("k", range(KILLS))
def test_kill_9_loses_at_most_half_a_second(killed, k):
    seed, delays, children = killed
    c = children[k]
    why = f"seed {seed} (EMOTIOND_CRASH_SEED={seed} repeats it), run {k} killed {delays[k]} s (media) into its recording"
    assert c.proc.returncode == -signal.SIGKILL, why
    session = c.target
    md = json.loads((session / METADATA_FILE).read_text())  # valid JSON: replaced atomically
    assert md["status"] == "recording", why
    src, v_end, a_end, n_frames = saved_media(session)
    assert src.interrupted and n_frames > 0, why
    v_lost = c.handed("video") - v_end
    a_lost = c.handed("audio") - a_end
    emitted = c.emitted()
    preds = read_predictions(session)
    p_lost = (emitted[-1]["t"] - preds[-1]["t"]) if emitted else 0.0
    print(f"\n{why}: {c.handed('video') - src.t0:.2f} s of video handed over; lost {v_lost:.3f} s of video, "
          f"{a_lost:.3f} s of audio, {p_lost:.3f} s of predictions ({len(emitted) - len(preds)} lines); "
          f"predictions reach {preds[-1]['t'] - src.t0 if preds else 0:.2f} s")
    assert v_lost <= MAX_LOSS, f"{why}: {v_lost:.3f} s of video lost"
    assert a_lost <= MAX_LOSS, f"{why}: {a_lost:.3f} s of audio lost"
    assert emitted, why
    assert p_lost <= MAX_LOSS and len(preds) >= len(emitted) - 1, f"{why}: predictions lost"
    frames = [r["frame"] for r in preds if r.get("frame", -1) >= 0]
    assert frames == list(range(len(frames))), why  # every frame the run analysed, in order


def test_a_killed_session_replays(killed, tmp_path):
    """`emotiond replay` of a killed session: every saved frame analysed, numbered as the live run
    numbered it, the live predictions' frames among them."""
    from emotiond.cli import main

    seed, _, children = killed
    session = children[0].target
    log = tmp_path / "replay.jsonl"
    assert main(["replay", str(session), "--clock", "deterministic", "--no-voice", "--no-progress",
                 "--log", str(log)]) == 0, f"seed {seed}"
    again = [r["frame"] for r in read_predictions(log) if r.get("frame", -1) >= 0]
    _, _, _, n_frames = saved_media(session)
    live = [r["frame"] for r in read_predictions(session) if r.get("frame", -1) >= 0]
    assert len(again) == n_frames > 0, f"seed {seed}"
    n = min(len(again), len(live))  # the media or the predictions may end a little earlier
    assert n > 0 and again[:n] == live[:n], f"seed {seed}"
