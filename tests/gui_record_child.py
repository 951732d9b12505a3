"""Child process for the GUI signal test: ``emotiond gui SOURCE`` (run by the test on the
offscreen platform) that presses Record once the source runs.

    python tests/gui_record_child.py SOURCE SESSIONS_DIR

Prints ``recording <path>`` once a few frames are in the recording, then goes on until a
signal ends it; exits with what :func:`emotiond.gui.app.main` returns.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotiond.config import load_config  # noqa: E402
from emotiond.gui.app import main  # noqa: E402
from emotiond.gui.main_window import MainWindow  # noqa: E402

FRAMES = 6  # in the recording before the parent is told


def config():
    return load_config(overrides={"voice.enabled": False, "record.folder": sys.argv[2]})


_open_spec = MainWindow.open_spec


def open_spec(self, spec) -> None:
    """The window's own open_spec, then Record as soon as the button is enabled."""
    from PySide6.QtCore import QTimer

    _open_spec(self, spec)
    timer = QTimer(self)

    def tick() -> None:
        rec = self.recording
        if rec is None:
            if self.record_button.isEnabled():
                self.record_button.click()
        elif rec.recorder.frames_offered >= FRAMES:
            timer.stop()
            print(f"recording {rec.path}", flush=True)

    timer.timeout.connect(tick)
    timer.start(20)


MainWindow.open_spec = open_spec

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], config))
