"""Logging set-up: module loggers (``logging.getLogger(__name__)``) under ``emotiond``.

Quiet by default (warnings only, on stderr); ``-v`` (info) / ``-vv`` (debug) on the command
line, or ``EMOTIOND_LOG_LEVEL=debug|info|warning|error``, turn it up.  The last lines are
also kept in memory (:func:`recent_lines`) so the GUI can show them.  Nothing here writes a
file; libraries' own loggers are left alone.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque

ENV = "EMOTIOND_LOG_LEVEL"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMAT = "emotiond: %(levelname)s %(name)s: %(message)s"
RING_SIZE = 500


class RingHandler(logging.Handler):
    """Keeps the last ``capacity`` formatted records (thread-safe)."""

    def __init__(self, capacity: int = RING_SIZE):
        super().__init__()
        self._lines: deque[str] = deque(maxlen=capacity)
        self._lock_ = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a bad format argument must not break the program
            line = str(record.msg)
        with self._lock_:
            self._lines.append(line)

    def lines(self, n: int | None = None) -> list[str]:
        with self._lock_:
            out = list(self._lines)
        return out if n is None else out[-n:]


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (not the stream that was
    current at set-up, which a test runner or a GUI may have replaced and closed since)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


_ring = RingHandler()
_stderr: logging.Handler | None = None


def level_from(verbosity: int = 0, env: str | None = None) -> int:
    """``verbosity`` (count of -v) wins over the environment variable; default WARNING."""
    if verbosity >= 2:
        return logging.DEBUG
    if verbosity == 1:
        return logging.INFO
    text = (env if env is not None else os.environ.get(ENV, "")).strip().lower()
    return LEVELS.get(text, logging.WARNING)


def setup(verbosity: int = 0) -> int:
    """Configure the ``emotiond`` logger (idempotent); returns the level set."""
    global _stderr
    level = level_from(verbosity)
    root = logging.getLogger("emotiond")
    root.setLevel(level)
    root.propagate = False
    if _ring not in root.handlers:
        root.addHandler(_ring)
    if _stderr is not None:
        root.removeHandler(_stderr)
    _stderr = _StderrHandler()
    _stderr.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(_stderr)
    return level


def recent_lines(n: int | None = None) -> list[str]:
    """The last log lines (what the GUI shows); empty until :func:`setup` ran."""
    return _ring.lines(n)
