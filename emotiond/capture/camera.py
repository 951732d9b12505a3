"""The camera capture thread (OpenCV).

One thread reads the device as fast as it delivers and hands every frame, as a
:class:`~emotiond.types.VideoFrame` stamped on the session :class:`Clock`, to
``on_frame`` (the ring buffer, the recorder tap).  It never waits for the
consumers.  The device is any object with the ``cv2.VideoCapture`` surface
(``read``/``get``/``set``/``release``, optionally ``grab``/``retrieve``), so tests
pass a simulated camera and the code above it is the real code.

Timestamps: the V4L2 buffer timestamp (``CAP_PROP_POS_MSEC``, on the monotonic
clock) when the backend gives a plausible one, else the moment ``grab()``
returned (before decoding); minus ``latency`` (the camera's own pipeline delay,
calibrated by the user, 0 by default).

Device loss: ``read`` failing for ``loss_timeout`` seconds, or raising, ends
the thread with ``state == "lost"`` and :attr:`error` set; a device that hangs
inside ``read`` is caught by the consumer's stall watchdog (see LiveSource).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from emotiond.capture.clock import Clock
from emotiond.errors import DeviceError
from emotiond.types import VideoFrame

# cv2 property ids (stable across OpenCV versions), so tests need not import cv2
CAP_PROP_POS_MSEC = 0
CAP_PROP_FRAME_WIDTH = 3
CAP_PROP_FRAME_HEIGHT = 4
CAP_PROP_FPS = 5
CAP_PROP_FOURCC = 6
CAP_PROP_BUFFERSIZE = 38


class CameraCapture:
    """Reads one camera on its own thread.

    ``device``: an opened ``cv2.VideoCapture``-like object, or ``None`` to open
    ``spec`` (index or name substring) with OpenCV.
    """

    def __init__(
        self,
        device: Any = None,
        *,
        spec: str | int = "0",
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        clock: Clock | None = None,
        on_frame: Callable[[VideoFrame], None] | None = None,
        latency: float = 0.0,
        loss_timeout: float = 1.0,
        use_device_timestamps: bool = True,
        name: str | None = None,
    ):
        self.clock = clock or Clock()
        self.requested = {"width": int(width), "height": int(height), "fps": float(fps)}
        self.latency = float(latency)
        self.loss_timeout = float(loss_timeout)
        self.use_device_timestamps = use_device_timestamps
        self._on_frame: list[Callable[[VideoFrame], None]] = [on_frame] if on_frame else []
        self.spec = str(spec)
        self.name = name or f"camera {spec}"
        self.path: str | None = None
        if device is None:
            device = self._open(self.spec)
        self.device = device
        self._configure()
        self.state = "idle"  # idle → running → stopped | lost
        self.error: DeviceError | None = None
        self.frames = 0  # delivered to on_frame
        self.read_failures = 0
        self.device_timestamps = 0  # frames stamped with the driver's timestamp
        self.last_frame_mono: float | None = None  # time.monotonic() of the last frame (watchdog)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- opening ----------------------------------------------------------------------
    def _open(self, spec: str):
        import cv2

        from emotiond.capture.devices import _quiet_opencv, no_camera_error, resolve_camera

        cam = resolve_camera(spec)
        self.name, self.path = cam.name, cam.path
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        quiet = _quiet_opencv()
        try:
            cap = cv2.VideoCapture(cam.index, backend)
            if not cap.isOpened() and backend != cv2.CAP_ANY:
                cap.release()
                cap = cv2.VideoCapture(cam.index)
        finally:
            quiet()
        if not cap.isOpened():
            cap.release()
            raise no_camera_error(str(spec))
        return cap

    def _configure(self) -> None:
        dev, req = self.device, self.requested
        try:
            if req["width"] * req["height"] > 640 * 480:
                # uncompressed YUYV rarely reaches 30 fps above VGA over USB 2; MJPG does
                dev.set(CAP_PROP_FOURCC, float(_fourcc("MJPG")))
            dev.set(CAP_PROP_FRAME_WIDTH, float(req["width"]))
            dev.set(CAP_PROP_FRAME_HEIGHT, float(req["height"]))
            dev.set(CAP_PROP_FPS, float(req["fps"]))
            dev.set(CAP_PROP_BUFFERSIZE, 1.0)  # the newest frame, not a queue of old ones
        except Exception:  # a backend that refuses a property keeps its own value
            pass
        self.actual = {
            "width": _get_int(dev, CAP_PROP_FRAME_WIDTH) or req["width"],
            "height": _get_int(dev, CAP_PROP_FRAME_HEIGHT) or req["height"],
            "fps": _get_float(dev, CAP_PROP_FPS) or req["fps"],
        }

    # -- running ----------------------------------------------------------------------
    def add_listener(self, fn: Callable[[VideoFrame], None]) -> None:
        """Also call ``fn(frame)`` for every frame (from the capture thread; must not block)."""
        self._on_frame.append(fn)

    def start(self) -> None:
        if self._thread is not None:
            return
        self.state = "running"
        self.last_frame_mono = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="emotiond-camera", daemon=True)
        self._thread.start()

    def _stamp(self, t_grab: float) -> float:
        if self.use_device_timestamps:
            try:
                ms = float(self.device.get(CAP_PROP_POS_MSEC))
            except Exception:
                ms = 0.0
            if ms > 0:
                t_dev = self.clock.from_monotonic(ms / 1000.0)
                if 0.0 <= t_grab - t_dev < 0.5:  # plausible only on the monotonic clock
                    self.device_timestamps += 1
                    return t_dev - self.latency
        return t_grab - self.latency

    def _run(self) -> None:
        dev = self.device
        split = hasattr(dev, "grab") and hasattr(dev, "retrieve")
        failing_since: float | None = None
        index = 0
        try:
            while not self._stop.is_set():
                if split:
                    ok = dev.grab()
                    t = self.clock.now()
                    img = None
                    if ok:
                        ok, img = dev.retrieve()
                else:
                    ok, img = dev.read()
                    t = self.clock.now()
                if self._stop.is_set():
                    break
                if not ok or img is None or getattr(img, "size", 0) == 0:
                    self.read_failures += 1
                    now = time.monotonic()
                    failing_since = failing_since or now
                    if now - failing_since >= self.loss_timeout:
                        self._lost(f"{self.name} stopped delivering frames (unplugged, or taken by another program?)")
                        return
                    self._stop.wait(0.005)
                    continue
                failing_since = None
                frame = VideoFrame(index=index, t=self._stamp(t), image=_to_rgb(img))
                index += 1
                self.frames += 1
                self.last_frame_mono = time.monotonic()
                if index == 1:
                    self.actual["height"], self.actual["width"] = frame.image.shape[:2]
                for fn in self._on_frame:
                    fn(frame)
        except Exception as exc:  # the driver or OpenCV failed: the camera is gone
            self._lost(f"{self.name} failed: {exc.__class__.__name__}: {exc}")
        finally:
            if self.state == "running":
                self.state = "stopped"
            try:
                dev.release()
            except Exception:
                pass

    def _lost(self, message: str) -> None:
        self.error = DeviceError(
            message, "reconnect the camera and start again; what was captured so far is kept (and recorded)"
        )
        self.state = "lost"

    def mark_lost(self, message: str) -> None:
        """Declared lost from outside (the consumer's stall watchdog)."""
        if self.state in ("running", "idle"):
            self._lost(message)
        self._stop.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and release the device; safe to call twice.  Never waits
        longer than ``timeout`` (a driver stuck in ``read`` keeps its daemon thread)."""
        self._stop.set()
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout if self.state != "lost" else min(timeout, 0.2))  # a hung driver will not return
        elif th is None:
            try:
                self.device.release()
            except Exception:
                pass
        if self.state in ("running", "idle"):
            self.state = "stopped"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "spec": self.spec,
            "path": self.path,
            "requested": dict(self.requested),
            "actual": dict(self.actual),
            "latency_compensation": self.latency,
        }


def _fourcc(code: str) -> int:
    return sum(ord(c) << (8 * i) for i, c in enumerate(code))


def _get_float(dev, prop) -> float | None:
    try:
        v = float(dev.get(prop))
        return v if v > 0 and np.isfinite(v) else None
    except Exception:
        return None


def _get_int(dev, prop) -> int | None:
    v = _get_float(dev, prop)
    return int(round(v)) if v else None


def _to_rgb(img: np.ndarray) -> np.ndarray:
    """BGR / BGRA / gray from OpenCV → C-contiguous RGB uint8."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if _cv2 is not None:
        return _cv2.cvtColor(np.ascontiguousarray(img), _cv2.COLOR_BGR2RGB)  # a fresh array, ~3x faster than numpy
    return np.ascontiguousarray(img[:, :, ::-1])


try:
    import cv2 as _cv2
except ImportError:  # pragma: no cover - cv2 comes with mediapipe
    _cv2 = None
