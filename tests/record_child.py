"""Child process for the SIGKILL test: records from simulated devices until killed.

    python tests/record_child.py SESSION_DIR [SECONDS]

Prints ``session <path>`` once recording, then ``frame <index> <t>`` for every
frame it has handed to the recorder; writes a prediction line per frame into
the session's predictions.jsonl like a run would.  Without SECONDS it runs until
killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simdevices import SimCamera, SimMicrophone  # noqa: E402

from emotiond.capture.microphone import MicrophoneCapture  # noqa: E402
from emotiond.config import load_config  # noqa: E402
from emotiond.recording import PREDICTIONS_FILE, RecordingSource, SessionRecorder  # noqa: E402
from emotiond.sinks import JsonlSink  # noqa: E402
from emotiond.sources.live import LiveSource  # noqa: E402
from emotiond.types import FrameResult, VideoFrame  # noqa: E402


def main() -> None:
    target = Path(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else None
    config = load_config(None, {"capture.width": 320, "capture.height": 240})
    start = time.monotonic() + 0.2
    cam = SimCamera(320, 240, 30.0, start=start, flash_frames=tuple(range(30, 2000, 30)))
    sim = SimMicrophone(start=start, click_times=tuple(start + k + 0.1 for k in range(1, 60)))
    mic = MicrophoneCapture(stream_factory=sim.factory, rate=48000)
    source = RecordingSource(LiveSource(config, camera=cam, microphone=mic), SessionRecorder(target, config))
    path = source.start()
    log = JsonlSink(path / PREDICTIONS_FILE)
    print(f"session {path}", flush=True)
    t_end = None if seconds is None else time.monotonic() + seconds
    try:
        for item in source.items():
            if isinstance(item, VideoFrame):
                log.write(FrameResult(t=item.t, frame=item.index))
                print(f"frame {item.index} {item.t:.6f}", flush=True)
            if t_end is not None and time.monotonic() > t_end:
                break
    finally:
        log.close()
        source.close()


if __name__ == "__main__":
    main()
