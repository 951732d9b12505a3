"""The desktop GUI (PySide6 + pyqtgraph): a thin view on the Qt-free engine.

The only package of emotiond that imports Qt (an import-linter contract in
``pyproject.toml`` enforces it).  Layout:

* :mod:`emotiond.gui.worker`  — runs ``runner.run`` on a Python thread; the GUI polls
  its latest result (Qt-free, so it is testable without a display);
* :mod:`emotiond.gui.widgets` — video overlay, probability bars, level meter, banner;
* :mod:`emotiond.gui.timeline` — the scrolling pyqtgraph timeline (imported late:
  pyqtgraph takes ~0.5 s to import, after the first frame is on screen);
* :mod:`emotiond.gui.main_window` — the window, its controls and the 30 Hz poll;
* :mod:`emotiond.gui.app` — ``main()``: QApplication, error hooks, event loop;
* :mod:`emotiond.gui.screenshot` — ``python -m emotiond.gui.screenshot`` (docs/screenshots/).

This module itself imports nothing heavy, so ``emotiond.cli`` may ask it whether a GUI
can be shown without paying for Qt.
"""

from __future__ import annotations

import os
import sys

# Variables opencv-contrib-python's cv2/config-3.py points at its own bundled Qt 5
# plugins when it is imported; PySide6 (Qt 6) cannot load those plugins.
_CV2_QT_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")


_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc")


def display_available() -> bool:
    """Whether a person could see a window: a display on Linux/BSD (X11 or Wayland),
    always on macOS and Windows; never with Qt's headless platforms (``offscreen``)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform in _HEADLESS_PLATFORMS:
        return False
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def gui_available() -> bool:
    """What ``emotiond`` with no command asks: a display, and PySide6 importable (the
    ``gui`` extra installed and Qt's system libraries present)."""
    if not display_available():
        return False
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError:
        return False
    return True


def fix_qt_environment() -> list[str]:
    """Import cv2, then drop the Qt variables it set to its own Qt 5 plugins.

    Must run before the QApplication exists: Qt reads them when the platform plugin
    loads, and with cv2's path PySide6 fails with "could not load the Qt platform
    plugin".  cv2 is imported here (not later, on the engine's thread) so that it
    cannot change the environment while Qt runs.  Returns the variables removed.
    """
    try:
        import cv2  # noqa: F401  (for its side effect on os.environ, done once, now)
    except ImportError:  # the engine reports a missing OpenCV itself, in the window
        pass
    removed = []
    for var in _CV2_QT_VARIABLES:
        value = os.environ.get(var)
        if value and "cv2" in os.path.normpath(value).split(os.sep):
            del os.environ[var]
            removed.append(var)
    return removed


def main(source: str | None = None, config_factory=None) -> int:
    """Open the window on ``source`` (a path, ``camera[:N]``, ``demo`` or ``auto``)."""
    from emotiond.gui.app import main as app_main

    return app_main(source, config_factory)
