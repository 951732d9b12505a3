"""The one pacing policy: release items at their media time.  Qt-free, no I/O.

Used by the runner's reader (``--clock realtime``, the GUI playing a file or a
session) and by :class:`~emotiond.sources.session.SessionSource` (``replay
--clock realtime``, which also drops late frames the way the live run did).
Nothing else sleeps to pace media.

Policy:

* the clock is anchored once, at the first paced item: item ``t`` is due at
  ``anchor_wall + (t - anchor_t)``;
* with video, only frames are paced; audio is released at once (a demuxer
  interleaves audio a little ahead of video, and waiting for it would make the
  frames behind it late);
* a frame that is late is released at once.  When the pipeline is slower than
  the media (more than ``max_behind`` seconds late) the anchor slides forward
  by the excess, so playback runs slower instead of bursting later; the anchor
  is never reset to "now" (which, with audio ahead, made files crawl);
* ``late_drop``: a frame later than this is dropped instead (replay at recorded
  speed, like the live run that skipped stale frames); counted in ``dropped``;
* pausing holds the next item and shifts the anchor by the paused time.
"""

from __future__ import annotations

import threading
import time

from emotiond.types import VideoFrame

MAX_BEHIND = 0.5  # seconds a paced source may lag its media time before playback slows down


class Pacer:
    def __init__(
        self,
        *,
        realtime: bool = True,
        video: bool = True,
        max_behind: float | None = MAX_BEHIND,
        late_drop: float | None = None,
        stop: threading.Event | None = None,
        clock=time.monotonic,
        sleep=None,
    ):
        """``realtime`` False: items are not timed, only held while paused.  ``video``: the source has video (then only frames are paced).  ``stop``: set to end
        any wait at once.  ``max_behind`` None: never slide (a late stretch bursts to catch up)."""
        self.realtime = realtime
        self.video = video
        self.max_behind = max_behind
        self.late_drop = late_drop
        self.stop = stop or threading.Event()
        self._clock = clock
        self._sleep = sleep  # sleep(seconds) -> True when stopped; default: stop.wait (tests pass a fake)
        self._anchor: tuple[float, float] | None = None  # (wall, media time)
        self._lock = threading.Lock()
        self._resumed = threading.Event()
        self._resumed.set()
        self._paused_at: float | None = None
        self.dropped = 0  # frames dropped for being later than late_drop
        self.slid = 0.0  # seconds the anchor slid because the pipeline was slower than the media
        self.max_late = 0.0  # the most a frame was released after its time: ~0 when the machine kept up

    # -- control (any thread) ---------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        with self._lock:
            if paused and self._paused_at is None:
                self._paused_at = self._clock()
                self._resumed.clear()
            elif not paused and self._paused_at is not None:
                held = self._clock() - self._paused_at
                self._paused_at = None
                if self._anchor is not None:
                    self._anchor = (self._anchor[0] + held, self._anchor[1])
                self._resumed.set()

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def reset(self) -> None:
        """Forget the anchor: the next item is due at once (a seek, a new source)."""
        with self._lock:
            self._anchor = None

    # -- the reading thread -----------------------------------------------------------------
    def wait(self, item) -> bool:
        """Block until ``item`` is due.  True: release it; False: drop it (too late) or the
        pacer was stopped (check ``stop``)."""
        while not self._resumed.is_set():
            if self.stop.is_set():
                return False
            if self._sleep is not None:
                self._sleep(0.1)
            else:
                self._resumed.wait(0.1)
        if self.stop.is_set():
            return False
        is_frame = isinstance(item, VideoFrame)
        if not self.realtime or (self.video and not is_frame):
            return True  # audio may run ahead of the frames
        with self._lock:
            now = self._clock()
            if self._anchor is None:
                self._anchor = (now, item.t)
            wall0, media0 = self._anchor
            delay = wall0 + (item.t - media0) - now
            if delay <= 0:
                late = -delay
                self.max_late = max(self.max_late, late)
                if self.late_drop is not None and is_frame and late > self.late_drop:
                    self.dropped += 1
                    return False
                if self.max_behind is not None and late > self.max_behind:
                    excess = late - self.max_behind
                    self._anchor = (wall0 + excess, media0)
                    self.slid += excess
                return True
        stopped = self._sleep(delay) if self._sleep is not None else self.stop.wait(delay)
        return not stopped
