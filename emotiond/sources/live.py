"""The live source: camera + microphone on their own capture threads, one clock.

Capture threads push into a :class:`~emotiond.capture.ringbuffer.SyncRingBuffer`
(and into any taps, e.g. the recorder, at full rate).  :meth:`LiveSource.items`
yields, frame by frame, the audio captured since the previous frame (merged
into few chunks, time-ordered) and then the frame.  A frame that is older than
``max_lag`` (0.1 s) while a newer one is already waiting is skipped and counted
(``frames_dropped``): a short hiccup of the consumer costs no frame, a slow
consumer stays current instead of falling behind.  Frame indices are the
camera's capture indices, so skipped frames leave gaps and a recording (which
keeps every frame) replays with the same indices.

Device loss (unplugged, stalled for ``capture.stall_timeout``): the source
drains what it has, sets ``status`` to ``"lost"`` and ``error`` to a
:class:`~emotiond.errors.DeviceError`, and raises it from ``items()`` — it
never hangs.  ``status`` / ``error`` / :meth:`stats` are there for the GUI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from emotiond.capture.camera import CameraCapture
from emotiond.capture.clock import Clock
from emotiond.capture.microphone import MicrophoneCapture
from emotiond.capture.ringbuffer import Cursor, SyncRingBuffer, merge_chunks
from emotiond.errors import DeviceError
from emotiond.sources.base import Item, SourceInfo

AUDIO_HOLD = 0.1  # seconds audio may wait for the next frame (so it travels with it, in few chunks)


class LiveSource:
    """Live devices as a :class:`~emotiond.sources.base.Source`.

    ``camera``: None (from ``config.capture.camera``), an index/name, a
    ``cv2.VideoCapture``-like device object, a :class:`CameraCapture`, or False
    (no camera).  ``microphone``: None (``config.capture.microphone``; when that
    is unset and no microphone works, the source runs video-only with a
    warning), an index/name, a :class:`MicrophoneCapture`, or False.
    """

    def __init__(
        self,
        config=None,
        camera: Any = None,
        microphone: Any = None,
        *,
        clock: Clock | None = None,
        drop_stale: bool = True,
        max_lag: float = 0.1,
    ):
        if config is None:
            from emotiond.config import load_config

            config = load_config()
        self.config = config
        cap = config.capture
        self.clock = clock or Clock()
        self.drop_stale = drop_stale
        self.max_lag = float(max_lag)  # a frame older than this is skipped when a newer one waits
        self.stall_timeout = float(cap.stall_timeout)
        self.warnings: list[str] = []
        self.status = "ready"  # ready → running → ended | stopped | lost
        self.error: DeviceError | None = None
        self.ring = SyncRingBuffer(cap.ring_seconds, video_seconds=cap.ring_video_seconds)
        self.frames_yielded = 0
        self.frames_dropped = 0  # stale frames skipped because the consumer was busy
        self._closed = threading.Event()
        self._started = False
        self._lock = threading.Lock()

        self.camera = self._make_camera(camera, cap)
        try:
            self.microphone = self._make_microphone(microphone, config)
        except BaseException:
            if self.camera is not None:
                self.camera.stop()
            raise
        if self.camera is None and self.microphone is None:
            if microphone is not False and camera is False and not config.voice.enabled:
                raise DeviceError("a microphone-only source needs the voice analysis, which is off",
                                  "drop --no-voice (voice.enabled = false)")
            raise DeviceError("neither a camera nor a microphone is available", "connect one, or analyse a file: `emotiond run FILE`")
        for dev in (self.camera, self.microphone):
            if dev is not None:
                dev.clock = self.clock
                if isinstance(dev, MicrophoneCapture):
                    dev.stall_timeout = min(dev.stall_timeout, self.stall_timeout)
        if self.camera is not None:
            self.camera.add_listener(self.ring.push_frame)
        if self.microphone is not None:
            self.microphone.add_listener(self.ring.push_audio)
        self.info = self._info()

    @classmethod
    def from_spec(cls, spec: str, config=None) -> "LiveSource":
        """``camera`` (the configured camera) or ``camera:N`` / ``camera:NAME``."""
        _, _, which = spec.partition(":")
        return cls(config, camera=which or None)

    # -- devices -------------------------------------------------------------------------
    def _make_camera(self, camera, cap) -> CameraCapture | None:
        if camera is False:
            return None
        if isinstance(camera, CameraCapture):
            return camera
        kwargs = dict(
            width=cap.width, height=cap.height, fps=cap.fps, clock=self.clock,
            latency=cap.camera_latency, loss_timeout=min(1.0, self.stall_timeout),
        )
        if camera is None or isinstance(camera, (str, int)):
            return CameraCapture(spec=cap.camera if camera is None else camera, **kwargs)
        return CameraCapture(camera, spec=getattr(camera, "name", "sim"), name=getattr(camera, "name", None), **kwargs)

    def _make_microphone(self, microphone, config) -> MicrophoneCapture | None:
        if microphone is False or not config.voice.enabled:
            return None
        if isinstance(microphone, MicrophoneCapture):
            return microphone
        cap = config.capture
        spec = cap.microphone if microphone is None else microphone
        try:
            return MicrophoneCapture(spec, rate=cap.audio_rate, clock=self.clock, stall_timeout=self.stall_timeout)
        except DeviceError as exc:
            if microphone is None and cap.microphone is None and self.camera is not None:
                self.warnings.append(f"no microphone, video only: {exc.message} ({exc.hint})")
                return None
            raise

    def _info(self) -> SourceInfo:
        cam, mic = self.camera, self.microphone
        parts = ([cam.name] if cam else []) + ([mic.name] if mic else [])
        return SourceInfo(
            kind="live",
            uri=" + ".join(parts),
            live=True,
            has_video=cam is not None,
            has_audio=mic is not None,
            width=int(cam.actual["width"]) if cam else None,
            height=int(cam.actual["height"]) if cam else None,
            fps=cam.actual["fps"] if cam else None,
            audio_rate=mic.rate if mic else None,
            audio_channels=1 if mic else None,
            extra={
                "camera": cam.describe() if cam else None,
                "microphone": mic.describe() if mic else None,
                "clock_epoch_wall": self.clock.epoch_wall,
            },
        )

    # -- taps ------------------------------------------------------------------------------
    def add_tap(self, fn: Callable[[Item], None]) -> None:
        """Call ``fn(item)`` for every captured frame and audio chunk, from the capture
        threads, at full rate (before stale frames are skipped).  ``fn`` must not block."""
        if self.camera is not None:
            self.camera.add_listener(fn)
        if self.microphone is not None:
            self.microphone.add_listener(fn)

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._started or self._closed.is_set():
                return
            self._started = True
            self.status = "running"
            if self.camera is not None:
                self.camera.start()
            if self.microphone is not None:
                try:
                    self.microphone.start()
                except DeviceError as exc:
                    if self.camera is None or self.config.capture.microphone is not None:
                        self._stop_devices()
                        self.status, self.error = "lost", exc
                        raise
                    self.warnings.append(f"microphone failed, video only: {exc.message}")
                    self.microphone = None
                    self.info.has_audio = False

    def items(self) -> Iterator[Item]:
        self.start()
        cursor = Cursor()
        ring = self.ring
        audio: list = []  # captured since the last frame: yielded, merged, with the next frame
        pending: list = []  # frames not yet yielded, oldest first
        video = self.camera is not None
        while True:
            if not pending:
                ring.wait(cursor, timeout=0.05)
            frames, chunks = ring.read_new(cursor)
            audio.extend(chunks)
            pending.extend(frames)
            if self.drop_stale:  # a newer frame is waiting and this one is too old: skip it
                while len(pending) > 1 and self.clock.now() - pending[0].t > self.max_lag:
                    pending.pop(0)
                    self.frames_dropped += 1
            if audio and (pending or not video or self.clock.now() - audio[0].t > AUDIO_HOLD or self._closed.is_set()):
                yield from merge_chunks(audio)
                audio = []
            if pending:
                yield self._deliver(pending.pop(0))
            if self._closed.is_set():
                if self.status == "running":
                    self.status = "stopped"
                return
            lost = self._check_devices()
            if lost is not None:
                self.status, self.error = "lost", lost
                # everything captured before the loss is still delivered
                frames, chunks = ring.read_new(cursor)
                yield from merge_chunks(audio + chunks)
                pending.extend(frames)
                for f in pending[-1:] if self.drop_stale else pending:
                    yield self._deliver(f)
                self._stop_devices()
                raise lost

    def _deliver(self, frame):
        if self.frames_yielded == 0:  # the first frame's size is the truth
            self.info.height, self.info.width = frame.image.shape[:2]
        self.frames_yielded += 1
        return frame

    def _check_devices(self) -> DeviceError | None:
        cam, mic = self.camera, self.microphone
        if cam is not None:
            if cam.state == "running" and cam.last_frame_mono is not None:
                idle = time.monotonic() - cam.last_frame_mono
                limit = max(self.stall_timeout, 5.0) if cam.frames == 0 else self.stall_timeout
                if idle > limit:
                    cam.mark_lost(f"{cam.name} delivered no frame for {idle:.1f} s (unplugged or hung?)")
            if cam.state == "lost":
                return cam.error
        if mic is not None and mic.state == "lost":
            return mic.error
        return None

    def _stop_devices(self) -> None:
        for dev in (self.camera, self.microphone):
            if dev is not None:
                dev.stop()

    def close(self) -> None:
        """Stop capturing and release the devices; safe twice and from another thread."""
        self._closed.set()
        self.ring.close()
        self._stop_devices()
        if self.status in ("ready", "running"):
            self.status = "stopped"

    # -- counters --------------------------------------------------------------------------
    def stats(self) -> dict:
        cam, mic = self.camera, self.microphone
        r = self.ring.stats()
        out = {
            "status": self.status,
            "frames_captured": cam.frames if cam else 0,
            "frames_yielded": self.frames_yielded,
            "frames_dropped": self.frames_dropped,
            "camera_read_failures": cam.read_failures if cam else 0,
            "camera_device_timestamps": cam.device_timestamps if cam else 0,
            "ring_frames": r.frames_in_buffer,
            "ring_frame_bytes": r.frame_bytes,
            "ring_frames_evicted": r.frames_evicted,
            "ring_audio_seconds": round(r.audio_span, 3),
        }
        if mic is not None:
            out.update(mic.counters())
        if self.error is not None:
            out["error"] = str(self.error)
        return out
