"""The one clock of a live session: ``time.monotonic_ns`` since the session epoch.

Every captured frame and audio block is stamped on this clock at capture, so
video and audio share one timeline (seconds, float).  The wall-clock time of
the epoch is kept for metadata only; the wall clock itself (which NTP can
step) never times anything.
"""

from __future__ import annotations

import time


class Clock:
    """Seconds since ``epoch_ns`` on the monotonic clock (``CLOCK_MONOTONIC`` on Linux)."""

    __slots__ = ("epoch_ns", "epoch_wall")

    def __init__(self, epoch_ns: int | None = None):
        self.epoch_ns = time.monotonic_ns() if epoch_ns is None else int(epoch_ns)
        # the wall time at the epoch, for humans and metadata (never used to time anything)
        self.epoch_wall = time.time() - (time.monotonic_ns() - self.epoch_ns) / 1e9

    def now(self) -> float:
        return (time.monotonic_ns() - self.epoch_ns) / 1e9

    def now_ns(self) -> int:
        """Raw ``time.monotonic_ns()`` (cheap; convert later with :meth:`from_ns`)."""
        return time.monotonic_ns()

    def from_ns(self, monotonic_ns: int) -> float:
        """Session seconds of a ``time.monotonic_ns()`` reading."""
        return (monotonic_ns - self.epoch_ns) / 1e9

    def from_monotonic(self, monotonic_s: float) -> float:
        """Session seconds of a monotonic reading in seconds (e.g. a V4L2 buffer timestamp)."""
        return monotonic_s - self.epoch_ns / 1e9

    def to_wall(self, t: float) -> float:
        """Approximate wall-clock (Unix) time of session time ``t``."""
        return self.epoch_wall + t

    def __repr__(self) -> str:
        return f"Clock(epoch_ns={self.epoch_ns})"
