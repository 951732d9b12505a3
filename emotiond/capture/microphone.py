"""The microphone capture thread (sounddevice / PortAudio).

The PortAudio callback only copies the block into a bounded queue (with its
arrival time and PortAudio's capture-time hint) and counts overflows; a pump
thread turns blocks into :class:`~emotiond.types.AudioChunk` items at the
device's native rate (many devices refuse 16 kHz; the engine resamples) and
hands them to the listeners (ring buffer, recorder tap).

Timestamps (:class:`AudioTimeline`): a sample-count timeline, so consecutive
chunks are contiguous, anchored to the session clock by each block's capture
time — ``arrival − (currentTime − inputBufferAdcTime)`` when PortAudio reports
a plausible ADC time, else ``arrival − block duration``.  Scheduling delays only
ever make a block look late, so the anchor follows the *minimum* error over
each second, slewed at most 0.5 ms per block (clock drift, a late first
callback); an overflow or an error over 50 ms re-anchors at once.

The stream is created by ``stream_factory`` (default ``sounddevice.InputStream``),
so tests drive the real callback from a simulated real-time device thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from emotiond.capture.clock import Clock
from emotiond.errors import DeviceError
from emotiond.types import AudioChunk


class AudioTimeline:
    """First-sample timestamps for blocks of audio from their arrival times."""

    def __init__(self, rate: int, *, resync: float = 0.05, window: float = 1.0, max_slew: float = 0.0005):
        self.rate = int(rate)
        self.resync = resync
        self.window_samples = int(window * rate)
        self.max_slew = max_slew
        self.anchor: float | None = None  # session time of sample 0 of the current run
        self.n = 0  # samples since the anchor
        self.resyncs = 0
        self.adc_times_used = 0
        self._pending = 0.0  # correction still to slew into the anchor
        self._wmin = np.inf
        self._wn = 0

    def stamp(self, arrival: float, frames: int, adc_age: float | None = None, overflow: bool = False) -> float:
        """Session time of the first sample of a block of ``frames`` samples that arrived at ``arrival``."""
        dur = frames / self.rate
        if adc_age is not None and 0.9 * dur <= adc_age <= dur + 0.5:
            measured = arrival - adc_age
            self.adc_times_used += 1
        else:
            measured = arrival - dur
        if self.anchor is None or overflow:
            self._reset(measured)
        else:
            err = measured - (self.anchor + self.n / self.rate)
            if abs(err - self._pending) > self.resync:
                self.resyncs += 1
                self._reset(measured)
            else:
                self._wmin = min(self._wmin, err - self._pending)  # the error once pending corrections are in
                self._wn += frames
                if self._wn >= self.window_samples:
                    self._pending += self._wmin
                    self._wmin, self._wn = np.inf, 0
                if self._pending:
                    step = max(-self.max_slew, min(self.max_slew, self._pending))
                    self.anchor += step
                    self._pending -= step
        t = self.anchor + self.n / self.rate
        self.n += frames
        return t

    def _reset(self, measured: float) -> None:
        self.anchor, self.n = measured, 0
        self._pending, self._wmin, self._wn = 0.0, np.inf, 0


class MicrophoneCapture:
    """Captures one input device; ``spec`` is an index, a name substring or None (default)."""

    def __init__(
        self,
        spec: str | int | None = None,
        *,
        rate: int | None = None,
        channels: int = 1,
        blocksize: int | None = None,
        clock: Clock | None = None,
        on_chunk: Callable[[AudioChunk], None] | None = None,
        stream_factory: Callable[..., Any] | None = None,
        queue_seconds: float = 2.0,
        stall_timeout: float = 2.0,
        name: str | None = None,
    ):
        self.clock = clock or Clock()
        self._listeners: list[Callable[[AudioChunk], None]] = [on_chunk] if on_chunk else []
        self.stall_timeout = float(stall_timeout)
        self.spec = spec
        device = None
        self.hostapi = None
        if stream_factory is None:
            from emotiond.capture.devices import import_sounddevice, resolve_microphone

            sd = import_sounddevice()
            dev = resolve_microphone(spec)
            device, self.name, self.hostapi = dev.index, dev.name, dev.hostapi
            rate = int(rate or dev.default_rate or 48000)
            channels = self._check_settings(sd, dev, rate, channels)
            stream_factory = sd.InputStream
        else:
            self.name = name or f"microphone {spec if spec is not None else 'default'}"
            rate = int(rate or 48000)
        self.rate = rate
        self.channels = int(channels)
        self.blocksize = int(blocksize or max(64, rate // 100))  # 10 ms blocks
        self.timeline = AudioTimeline(rate)
        self._q: queue.Queue = queue.Queue(maxsize=max(4, int(queue_seconds * rate / self.blocksize)))
        self.overflows = 0  # PortAudio input overflows (samples lost before they reached us)
        self.queue_drops = 0  # blocks dropped because the pump fell behind (queue full)
        self.chunks = 0
        self.samples = 0
        self.state = "idle"  # idle → running → stopped | lost
        self.error: DeviceError | None = None
        self.last_block_mono: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drops_seen = 0
        self._end = -np.inf  # session time just after the last sample delivered
        try:
            self.stream = stream_factory(
                device=device,
                samplerate=rate,
                channels=self.channels,
                dtype="float32",
                blocksize=self.blocksize,
                callback=self._callback,
                finished_callback=self._finished,
            )
        except DeviceError:
            raise
        except Exception as exc:  # sounddevice.PortAudioError and friends
            raise DeviceError(
                f"cannot open {self.name} at {rate} Hz: {exc}",
                "pick another microphone (`emotiond devices`), close programs holding it, or use --no-voice",
            ) from None
        self.latency = float(getattr(self.stream, "latency", 0.0) or 0.0)

    @staticmethod
    def _check_settings(sd, dev, rate: int, channels: int) -> int:
        for ch in dict.fromkeys((channels, min(2, dev.channels), dev.channels)):
            try:
                sd.check_input_settings(device=dev.index, samplerate=rate, channels=ch, dtype="float32")
                return ch
            except Exception:
                continue
        raise DeviceError(
            f"{dev.name} refuses {rate} Hz input",
            f"set capture.audio_rate to a rate it supports (its default is {dev.default_rate} Hz) or pick another microphone",
        )

    # -- the PortAudio callback: copy, count, nothing else ----------------------------------
    def _callback(self, indata, frames, time_info, status) -> None:
        arrival = time.monotonic_ns()
        overflow = bool(status) and bool(status.input_overflow)
        if overflow:
            self.overflows += 1
        try:
            age = time_info.currentTime - time_info.inputBufferAdcTime
        except Exception:
            age = None
        try:
            self._q.put_nowait((arrival, age, overflow, indata.copy()))
        except queue.Full:
            self.queue_drops += 1

    def _finished(self) -> None:
        if not self._stop.is_set() and self.state == "running":
            self._lost(f"{self.name} stopped (unplugged, or the sound server went away?)")

    # -- the pump thread ------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[AudioChunk], None]) -> None:
        self._listeners.append(fn)

    def start(self) -> None:
        if self._thread is not None:
            return
        self.state = "running"
        self.last_block_mono = time.monotonic()
        self._thread = threading.Thread(target=self._pump, name="emotiond-microphone", daemon=True)
        self._thread.start()
        try:
            self.stream.start()
        except Exception as exc:
            self._stop.set()
            self.state = "lost"
            self.error = DeviceError(f"cannot start {self.name}: {exc}", "close programs holding it, or use --no-voice")
            raise self.error from None

    def _pump(self) -> None:
        grace = max(self.stall_timeout, 2.0)  # the first block may take a while
        try:
            while not self._stop.is_set():
                try:
                    arrival_ns, age, overflow, data = self._q.get(timeout=0.05)
                except queue.Empty:
                    idle = time.monotonic() - (self.last_block_mono or time.monotonic())
                    if idle > (grace if self.chunks == 0 else self.stall_timeout):
                        self._lost(f"{self.name} delivered no audio for {idle:.1f} s (unplugged?)")
                        return
                    continue
                self.last_block_mono = time.monotonic()
                if self.queue_drops != self._drops_seen:  # blocks are missing: the timeline must re-anchor
                    self._drops_seen = self.queue_drops
                    overflow = True
                frames = data.shape[0]
                t = self.timeline.stamp(self.clock.from_ns(arrival_ns), frames, age, overflow)
                samples = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
                if t < self._end - 0.5 / self.rate:  # a re-anchor stepped back: keep time non-decreasing
                    cut = int(round((self._end - t) * self.rate))
                    if cut >= frames:
                        continue
                    samples, t = samples[cut:], t + cut / self.rate
                self._end = t + samples.shape[0] / self.rate
                chunk = AudioChunk(t=t, samples=np.ascontiguousarray(samples, dtype=np.float32), rate=self.rate)
                self.chunks += 1
                self.samples += frames
                for fn in self._listeners:
                    fn(chunk)
        except Exception as exc:
            self._lost(f"{self.name} failed: {exc.__class__.__name__}: {exc}")

    def _lost(self, message: str) -> None:
        if self.state in ("running", "idle"):
            self.error = DeviceError(message, "reconnect the microphone and start again, or use --no-voice")
            self.state = "lost"
        self._stop.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        for op in ("stop", "close"):
            try:
                getattr(self.stream, op)()
            except Exception:
                pass
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout)
        if self.state in ("running", "idle"):
            self.state = "stopped"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "spec": None if self.spec is None else str(self.spec),
            "hostapi": self.hostapi,
            "rate": self.rate,
            "channels": self.channels,
            "blocksize": self.blocksize,
            "latency": self.latency,
        }

    def counters(self) -> dict:
        return {
            "audio_overflows": self.overflows,
            "audio_queue_drops": self.queue_drops,
            "audio_resyncs": self.timeline.resyncs,
            "audio_chunks": self.chunks,
            "audio_samples": self.samples,
            "audio_adc_timestamps": self.timeline.adc_times_used,
        }
