"""Simulated capture devices that run in real time, for the real capture code above them.

* :class:`SimCamera` has the ``cv2.VideoCapture`` surface (``grab``/``retrieve``/
  ``read``/``get``/``set``/``release``/``isOpened``).  Frame ``k`` is exposed at
  ``start + k / fps`` (monotonic seconds; ``start`` defaults to the first grab)
  and handed out ``latency`` later;
  ``grab`` sleeps until then on the caller's thread (the real capture thread),
  like a driver.  A reader that falls behind gets the newest frame (the driver
  keeps one buffer), so skipped frames are lost as on real hardware.  The frame
  index is written into the first pixels; ``flash_frames`` are white.
* :class:`SimMicrophone` is a ``stream_factory`` for
  :class:`~emotiond.capture.microphone.MicrophoneCapture`: its stream calls the
  real callback from its own thread every ``blocksize`` samples in real time,
  with PortAudio-like ``time_info`` (ADC time on a stream clock with an
  arbitrary offset) and ``status`` flags.  It can drift, overflow on purpose
  (blocks lost + the overflow flag), overflow for real when starved, and stop
  delivering (unplugged).

Ground truth (``true_times``, ``click_times``) lets tests measure the stamps.
"""

from __future__ import annotations

import threading
import time

import numpy as np

CAP_PROP_POS_MSEC, CAP_PROP_FRAME_WIDTH, CAP_PROP_FRAME_HEIGHT, CAP_PROP_FPS = 0, 3, 4, 5


def _sleep_until(deadline: float, stop: threading.Event | None = None) -> None:
    while True:
        dt = deadline - time.monotonic()
        if dt <= 0:
            return
        if stop is not None:
            if stop.wait(min(dt, 0.05)):
                return
        else:
            time.sleep(min(dt, 0.05))


def frame_index_of(image_rgb: np.ndarray) -> int:
    """The index a SimCamera wrote into a frame (survives RGB conversion; not lossy encoding)."""
    px = image_rgb[0, :4, 1].astype(np.int64)
    return int(px[0] | (px[1] << 8) | (px[2] << 16))


def click_times(chunks, threshold: float = 0.5) -> list[float]:
    """Session times of the clicks in the audio (first sample above threshold, 20 ms refractory)."""
    out: list[float] = []
    for c in chunks:
        for k in np.flatnonzero(c.samples > threshold):
            t = c.t + k / c.rate
            if not out or t - out[-1] > 0.02:
                out.append(t)
    return out


class SimCamera:
    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        *,
        start: float | None = None,
        latency: float = 0.004,
        flash_frames: tuple[int, ...] = (),
        fail_after_frames: int | None = None,
        hang_after_frames: int | None = None,
        images: list[np.ndarray] | None = None,
        name: str = "sim camera",
    ):
        self.width, self.height, self.fps = width, height, float(fps)
        self.start = start  # None: frame 0 is exposed at the first grab()
        self.latency = latency
        self.flash_frames = set(flash_frames)
        self.fail_after_frames = fail_after_frames
        self.hang_after_frames = hang_after_frames
        self.name = name
        self.requested: dict[int, float] = {}
        rng = np.random.default_rng(0)
        self._base = images or [rng.integers(0, 200, (height, width, 3), dtype=np.uint8)]
        self._k = 0
        self._cur = -1
        self.delivered = 0
        self.skipped = 0  # frames the reader was too late for
        self.true_times: dict[int, float] = {}  # frame index -> exposure time (monotonic s)
        self._released = threading.Event()

    # cv2.VideoCapture surface
    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return not self._released.is_set()

    def set(self, prop: int, value: float) -> bool:
        self.requested[prop] = value
        return True

    def get(self, prop: int) -> float:
        return {
            CAP_PROP_FRAME_WIDTH: float(self.width),
            CAP_PROP_FRAME_HEIGHT: float(self.height),
            CAP_PROP_FPS: self.fps,
            CAP_PROP_POS_MSEC: 0.0,  # no driver timestamp: the capture code stamps at grab()
        }.get(prop, 0.0)

    def grab(self) -> bool:
        if self._released.is_set():
            return False
        if self.start is None:
            self.start = time.monotonic()
        k = self._k
        if self.fail_after_frames is not None and k >= self.fail_after_frames:
            time.sleep(1.0 / self.fps)
            return False
        if self.hang_after_frames is not None and k >= self.hang_after_frames:
            self._released.wait()  # a driver stuck until the device is released
            return False
        due = self.start + k / self.fps + self.latency
        now = time.monotonic()
        if now > due + 1.0 / self.fps:  # behind: the driver hands out its newest frame
            newest = int((now - self.start - self.latency) * self.fps)
            self.skipped += newest - k
            k = newest
        else:
            _sleep_until(due, self._released)
        self._k = k + 1
        self._cur = k
        self.true_times[k] = self.start + k / self.fps
        return True

    def retrieve(self):
        k = self._cur
        if k < 0:
            return False, None
        if k in self.flash_frames:
            img = np.full((self.height, self.width, 3), 255, np.uint8)
        else:
            img = self._base[k % len(self._base)].copy()
        # index in the green channel of the first pixels (BGR order: green is channel 1 either way)
        img[0, 0, 1], img[0, 1, 1], img[0, 2, 1] = k & 255, (k >> 8) & 255, (k >> 16) & 255
        self.delivered += 1
        return True, img

    def read(self):
        if not self.grab():
            return False, None
        return self.retrieve()

    def release(self) -> None:
        self._released.set()


class _Flags:
    __slots__ = ("input_overflow",)

    def __init__(self, overflow: bool):
        self.input_overflow = overflow

    def __bool__(self) -> bool:
        return self.input_overflow


class _TimeInfo:
    __slots__ = ("currentTime", "inputBufferAdcTime")

    def __init__(self, current: float, adc: float):
        self.currentTime = current
        self.inputBufferAdcTime = adc


class SimMicrophone:
    """Factory of simulated input streams; pass ``sim.factory`` as ``stream_factory``."""

    def __init__(
        self,
        *,
        start: float | None = None,
        latency: float = 0.002,
        drift_ppm: float = 0.0,
        click_times: tuple[float, ...] = (),
        overflow_blocks: dict[int, int] | None = None,
        lose_after: float | None = None,
        adc_times: bool = True,
        signal=None,
        stream_clock_offset: float = 1234.5,
    ):
        self.start = start  # None: sample 0 is captured when the stream starts
        self.latency = latency
        self.drift = drift_ppm * 1e-6
        self.click_times = tuple(click_times)
        self.overflow_blocks = dict(overflow_blocks or {})
        self.lose_after = lose_after
        self.adc_times = adc_times
        self.signal = signal  # fn(sample_indices, rate) -> float32 samples
        self.offset = stream_clock_offset
        self.streams: list[SimInputStream] = []

    def sample_time(self, s: int | np.ndarray, rate: int):
        """True capture time (monotonic s) of sample ``s``."""
        return self.start + s / (rate * (1.0 + self.drift))

    def factory(self, **kwargs) -> "SimInputStream":
        st = SimInputStream(self, **kwargs)
        self.streams.append(st)
        return st


class SimInputStream:
    def __init__(self, sim: SimMicrophone, *, device=None, samplerate, channels, dtype, blocksize, callback, finished_callback=None):
        self.sim = sim
        self.samplerate, self.channels, self.blocksize = int(samplerate), int(channels), int(blocksize)
        self.callback, self.finished_callback = callback, finished_callback
        self.latency = sim.latency
        self.blocks = 0
        self.overflows = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.active = False

    def _samples(self, first: int, n: int) -> np.ndarray:
        rate = self.samplerate
        idx = np.arange(first, first + n)
        if self.sim.signal is not None:
            x = np.asarray(self.sim.signal(idx, rate), dtype=np.float32)
        else:
            x = (0.01 * np.sin(idx * (2 * np.pi * 220.0 / rate))).astype(np.float32)
        for tc in self.sim.click_times:
            s = int(round((tc - self.sim.start) * rate * (1.0 + self.sim.drift)))
            if first <= s < first + n:
                x[s - first : min(n, s - first + 48)] = 0.9
            elif s < first < s + 48:
                x[: s + 48 - first] = 0.9
        return np.repeat(x[:, None], self.channels, axis=1)

    def _run(self) -> None:
        sim, rate, b = self.sim, self.samplerate, self.blocksize
        k = 0  # block number; block k holds samples [k*b, (k+1)*b)
        overflow = False
        try:
            while not self._stop.is_set():
                if k in sim.overflow_blocks:  # injected: these blocks never reach the host
                    k += sim.overflow_blocks.pop(k)
                    overflow = True
                first = k * b
                due = sim.sample_time(first + b, rate) + sim.latency
                if sim.lose_after is not None and due - sim.start > sim.lose_after:
                    return  # unplugged: no more callbacks, no goodbye
                now = time.monotonic()
                if now - due > 0.25:  # starved for longer than the host buffer: samples are lost
                    k = int((now - sim.latency - sim.start) * rate * (1.0 + sim.drift)) // b - 1
                    overflow = True
                    continue
                _sleep_until(due, self._stop)
                if self._stop.is_set():
                    break
                adc = sim.sample_time(first, rate)
                now = time.monotonic()
                info = _TimeInfo(now + sim.offset, (adc + sim.offset) if sim.adc_times else 0.0)
                self.callback(self._samples(first, b), b, info, _Flags(overflow))
                self.overflows += overflow
                overflow = False
                self.blocks += 1
                k += 1
        finally:
            self.active = False

    def start(self) -> None:
        if self.sim.start is None:
            self.sim.start = time.monotonic()
        self.active = True
        self._thread = threading.Thread(target=self._run, name="sim-microphone", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        if self.finished_callback is not None and self._thread is not None:
            self.finished_callback()
            self.finished_callback = None

    def close(self) -> None:
        self.stop()


# -- realistic content for the simulators ----------------------------------------------------------
def face_frames(limit: int = 72) -> list[np.ndarray]:
    """BGR frames of the product owner's single-face clip (what a driver hands OpenCV)."""
    from pathlib import Path

    import av

    clip = Path(__file__).resolve().parents[2] / "shared" / "media" / "single_face.mp4"
    out = []
    with av.open(str(clip)) as c:
        for fr in c.decode(video=0):
            out.append(fr.to_ndarray(format="bgr24"))
            if len(out) >= limit:
                break
    return out


def speech_signal(rate: int = 48000):
    """A ``signal`` for SimMicrophone: the test speech clip at ``rate``, looped with a pause."""
    from pathlib import Path

    import soundfile as sf
    import soxr

    x, sr = sf.read(str(Path(__file__).resolve().parent / "data" / "speech_en_espeak.flac"), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != rate:
        x = soxr.resample(x, sr, rate).astype(np.float32)
    x = np.concatenate([x, np.zeros(rate // 2, np.float32)])

    def signal(idx: np.ndarray, _rate: int) -> np.ndarray:
        return x[idx % x.shape[0]]

    return signal
