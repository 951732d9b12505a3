"""``emotiond gui``: the QApplication, the window, and where unexpected errors go."""

from __future__ import annotations

import os
import signal
import sys
import threading

from emotiond.errors import EmotiondError
from emotiond.gui import _HEADLESS_PLATFORMS, display_available, fix_qt_environment


def guard_singleton_refcounts() -> bool:
    """Work around PySide6 6.12.0 on Python 3.10/3.11: it hands back ``None`` (void methods,
    slots) and ``True`` (``Signal.emit``) without a new reference -- harmless from 3.12 on,
    where these objects are immortal.  Each ``painter.setPen(...)`` then takes one
    reference from None, and after a few thousand calls the interpreter aborts with
    "none_dealloc: deallocating None" (or "bool_dealloc").  When the leak is detected,
    None, True and False get reference counts they cannot exhaust (they are static objects
    that are never freed, so nothing else changes).  True when the guard was needed.
    The real fix is a PySide6 without the bug (6.11.2 does not have it)."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if sys.getrefcount(None) > sys.maxsize // 8:  # guarded already
        return True
    from PySide6.QtGui import QPainterPath

    path = QPainterPath()
    before = sys.getrefcount(None)
    for _ in range(100):
        path.moveTo(0.0, 0.0)
    if before - sys.getrefcount(None) < 50:
        return False
    import ctypes

    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += sys.maxsize // 4
    return True


def create_application(argv: list[str] | None = None):
    """The QApplication (created once), with the project's style.  cv2's Qt variables are
    removed first (see :func:`emotiond.gui.fix_qt_environment`)."""
    fix_qt_environment()
    guard_singleton_refcounts()
    from PySide6.QtGui import QFont
    from PySide6.QtWidgets import QApplication

    from emotiond.gui import style

    app = QApplication.instance()
    if app is None:
        app = QApplication(argv or ["emotiond"])
        app.setApplicationName("emotiond")
        app.setApplicationDisplayName("emotiond")
        app.setStyle("Fusion")
        font = QFont(app.font())
        font.setPointSizeF(style.BASE_POINT_SIZE)
        app.setFont(font)
        app.setStyleSheet(style.STYLESHEET)
    return app


def _install_excepthook(window) -> None:
    """An exception escaping a Qt slot (a bug) goes to a crash report and the window's
    banner rather than to a terminal nobody may be watching."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        from emotiond.gui.worker import internal_error

        err = exc if isinstance(exc, EmotiondError) else internal_error(exc.with_traceback(tb))
        try:
            window.banner.show_message("error", err.message, err.hint)
        except Exception:  # the window itself is gone: fall back to the default hook
            previous(exc_type, exc, tb)

    sys.excepthook = hook


def _check_xcb_libraries(platform: str) -> None:
    """Qt 6's X11 plugin aborts the process (no exception) when libxcb-cursor is missing."""
    if not sys.platform.startswith("linux") or platform in _HEADLESS_PLATFORMS or platform == "wayland":
        return
    if platform != "xcb" and os.environ.get("WAYLAND_DISPLAY"):
        return
    import ctypes.util

    if ctypes.util.find_library("xcb-cursor") is None:
        raise EmotiondError(
            "Qt's X11 platform plugin needs the libxcb-cursor0 system library, which is missing",
            "install it with `sudo apt-get install libxcb-cursor0` (make setup does), or use `emotiond run SOURCE`",
        )


def main(source: str | None = None, config_factory=None) -> int:
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if not (display_available() or platform in _HEADLESS_PLATFORMS):  # offscreen: tests, screenshots
        raise EmotiondError(
            "no display to open a window on (DISPLAY / WAYLAND_DISPLAY is not set)",
            "run it in a desktop session, or use the headless `emotiond run SOURCE`",
        )
    _check_xcb_libraries(platform)
    app = create_application()
    from emotiond.config import load_config
    from emotiond.gui.main_window import MainWindow

    config_error = None
    try:
        config = config_factory() if config_factory is not None else load_config()
    except EmotiondError as exc:  # a bad config file or variable: say so in the window, run with defaults
        from emotiond.config import Config

        config_error = exc
        config = Config.model_construct()  # the defaults, without reading the file or environment again
    window = MainWindow(config)
    _install_excepthook(window)
    window.show()
    window.open_spec(source)
    if config_error is not None:
        window.banner.show_message("error", config_error.message, f"{config_error.hint} (running with the default settings)")
    app.aboutToQuit.connect(window.shutdown)
    terminated = _quit_on_signals(app, window)
    code = app.exec()
    return 128 + terminated[0] if terminated else code


def _quit_on_signals(app, window) -> list[int]:
    """Ctrl-C in the terminal closes the window (asking first while recording, as closing it
    does).  SIGTERM (`timeout`, `systemctl stop`, `kill`) and SIGHUP (the terminal closed) end
    the program the way closing the window and answering "Save" does: a recording is stopped and
    finalised (status ``complete``), the worker stopped, then the application quits; the exit
    status is then 128 + the signal, as for ``emotiond run``.

    Python runs a signal handler only when the interpreter gets control, which Qt's event loop
    (C++) does not give it: the signal's byte goes to a socket (``signal.set_wakeup_fd``) that a
    QSocketNotifier watches, so the loop wakes up at once and the handler runs.  Returns the
    list the terminating signal's number is put in."""
    import socket

    from PySide6.QtCore import QSocketNotifier, QTimer

    terminated: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return terminated
    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)
    try:
        signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread of the main interpreter
        rsock.close()
        wsock.close()
        return terminated

    def drain() -> None:  # Python code running in the loop: pending handlers run now
        try:
            while rsock.recv(64):
                pass
        except OSError:
            pass

    notifier = QSocketNotifier(rsock.fileno(), QSocketNotifier.Type.Read, app)
    notifier.activated.connect(drain)

    def terminate(signum: int) -> None:
        if not terminated:
            terminated.append(signum)
        window.shutdown()  # stops and finalises a recording without asking; waits (bounded) for it
        app.quit()

    def on_signal(signum, frame) -> None:
        if signum == signal.SIGINT:
            QTimer.singleShot(0, window.close)
        else:
            QTimer.singleShot(0, lambda: terminate(signum))

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, on_signal)

    def restore() -> None:
        signal.set_wakeup_fd(-1)
        notifier.setEnabled(False)
        rsock.close()
        wsock.close()

    app.aboutToQuit.connect(restore)
    window._signal_notifier = notifier  # kept alive with the window
    return terminated
