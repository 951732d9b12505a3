"""A synchronized ring buffer: the last N seconds of video frames and audio on one timeline.

Capture threads push; any number of readers read what is new since their
:class:`Cursor`, or look up by time: :meth:`SyncRingBuffer.audio_window` gives
the audio belonging to any frame time, :meth:`SyncRingBuffer.frame_at` the
frame shown at any audio time.  Memory is bounded three ways: by time (audio
``seconds``, video ``video_seconds`` — frames are large), by a frame byte budget
and by hard item caps that hold even when timestamps misbehave.  Everything
evicted or skipped is counted.  Thread-safe; pure Python + numpy, no devices.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from emotiond.types import AudioChunk, VideoFrame


@dataclass
class Cursor:
    """A reader's position: the next sequence numbers it has not seen, and what it missed."""

    frame: int = 0
    chunk: int = 0
    frames_missed: int = 0  # evicted before this reader read them
    chunks_missed: int = 0
    samples_missed: int = 0  # audio samples in the missed chunks (known only approximately: counted at eviction)


@dataclass
class RingStats:
    frames_pushed: int = 0
    frames_evicted: int = 0
    frames_in_buffer: int = 0
    frame_bytes: int = 0
    chunks_pushed: int = 0
    chunks_evicted: int = 0
    samples_pushed: int = 0
    samples_in_buffer: int = 0
    video_span: float = 0.0  # seconds between the oldest and newest frame held
    audio_span: float = 0.0
    extra: dict = field(default_factory=dict)


class SyncRingBuffer:
    def __init__(
        self,
        seconds: float = 10.0,
        *,
        video_seconds: float | None = None,
        max_frame_bytes: int = 512 << 20,
        max_frames: int = 1200,
        max_chunks: int = 20000,
    ):
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.seconds = float(seconds)
        self.video_seconds = float(min(video_seconds, seconds) if video_seconds else seconds)
        self.max_frame_bytes = int(max_frame_bytes)
        self.max_frames = int(max_frames)
        self.max_chunks = int(max_chunks)
        self._cond = threading.Condition()
        self._frames: deque[tuple[int, VideoFrame]] = deque()
        self._chunks: deque[tuple[int, AudioChunk]] = deque()
        self._next_frame = 0
        self._next_chunk = 0
        self._frame_bytes = 0
        self._samples = 0
        self._rate: int | None = None
        self._closed = False
        self.frames_evicted = 0
        self.chunks_evicted = 0
        self._samples_pushed = 0
        self._evicted_chunk_samples: deque[tuple[int, int]] = deque(maxlen=4096)  # (seq, samples) of recent evictions

    # -- writers ----------------------------------------------------------------
    def push_frame(self, frame: VideoFrame) -> None:
        with self._cond:
            self._frames.append((self._next_frame, frame))
            self._next_frame += 1
            self._frame_bytes += frame.image.nbytes
            self._evict_frames()
            self._cond.notify_all()

    def push_audio(self, chunk: AudioChunk) -> None:
        n = int(chunk.samples.shape[0])
        if n == 0:
            return
        with self._cond:
            if self._rate is not None and chunk.rate != self._rate:
                # a new rate (device re-opened): the old samples cannot share a window with the new ones
                while self._chunks:
                    self._evict_chunk()
            self._rate = chunk.rate
            self._chunks.append((self._next_chunk, chunk))
            self._next_chunk += 1
            self._samples += n
            self._samples_pushed += n
            self._evict_audio()
            self._cond.notify_all()

    def _evict_frames(self) -> None:
        fr = self._frames
        newest = fr[-1][1].t
        while len(fr) > 1 and (
            newest - fr[0][1].t > self.video_seconds
            or self._frame_bytes > self.max_frame_bytes
            or len(fr) > self.max_frames
        ):
            _, old = fr.popleft()
            self._frame_bytes -= old.image.nbytes
            self.frames_evicted += 1

    def _evict_chunk(self) -> None:
        seq, old = self._chunks.popleft()
        n = int(old.samples.shape[0])
        self._samples -= n
        self.chunks_evicted += 1
        self._evicted_chunk_samples.append((seq, n))

    def _evict_audio(self) -> None:
        ch = self._chunks
        last = ch[-1][1]
        end = last.t + last.duration
        cap = int(self.seconds * last.rate * 1.5) + last.samples.shape[0]
        while len(ch) > 1 and (
            end - (ch[0][1].t + ch[0][1].duration) > self.seconds
            or self._samples > cap
            or len(ch) > self.max_chunks
        ):
            self._evict_chunk()

    def close(self) -> None:
        """Wake every waiting reader; pushes still work (they are harmless)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- readers: streaming -------------------------------------------------------
    def wait(self, cursor: Cursor, timeout: float | None = None) -> bool:
        """Block until there is something new for ``cursor`` (True), or timeout / close (False)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._closed or self._next_frame > cursor.frame or self._next_chunk > cursor.chunk,
                timeout,
            ) and (self._next_frame > cursor.frame or self._next_chunk > cursor.chunk)

    def read_new(self, cursor: Cursor) -> tuple[list[VideoFrame], list[AudioChunk]]:
        """Frames and audio chunks pushed since ``cursor`` (each in push order); advances it.

        Items evicted before this reader got to them are counted in the cursor.
        """
        with self._cond:
            frames = [f for seq, f in self._frames if seq >= cursor.frame]
            first_f = self._frames[0][0] if self._frames else self._next_frame
            if first_f > cursor.frame:
                cursor.frames_missed += first_f - cursor.frame
            chunks = [c for seq, c in self._chunks if seq >= cursor.chunk]
            first_c = self._chunks[0][0] if self._chunks else self._next_chunk
            if first_c > cursor.chunk:
                cursor.chunks_missed += first_c - cursor.chunk
                cursor.samples_missed += sum(n for seq, n in self._evicted_chunk_samples if cursor.chunk <= seq < first_c)
            cursor.frame = self._next_frame
            cursor.chunk = self._next_chunk
            return frames, chunks

    def cursor_at_end(self) -> Cursor:
        """A cursor that sees only what is pushed from now on."""
        with self._cond:
            return Cursor(frame=self._next_frame, chunk=self._next_chunk)

    # -- readers: by time ---------------------------------------------------------
    def latest_frame(self) -> VideoFrame | None:
        with self._cond:
            return self._frames[-1][1] if self._frames else None

    def frame_at(self, t: float) -> VideoFrame | None:
        """The frame on screen at time ``t``: the newest one with ``frame.t <= t`` (None if older than the buffer)."""
        with self._cond:
            best = None
            for _, f in reversed(self._frames):
                if f.t <= t:
                    best = f
                    break
            return best

    def audio_window(self, t0: float, t1: float) -> AudioChunk | None:
        """The audio of ``[t0, t1)`` at the buffer's native rate.

        The result always spans exactly ``round((t1 - t0) * rate)`` samples
        starting at ``t0``; parts not held (not yet captured, evicted, or lost
        to an overflow) are zeros — see :meth:`audio_coverage`.  ``None`` when
        no held audio overlaps the window.
        """
        if t1 <= t0:
            return None
        with self._cond:
            if not self._chunks or self._rate is None:
                return None
            rate = self._rate
            n = int(round((t1 - t0) * rate))
            first = self._chunks[0][1]
            shape = (n,) + first.samples.shape[1:]
            out = None
            for _, c in self._chunks:
                c_n = c.samples.shape[0]
                start = int(round((c.t - t0) * rate))  # offset of the chunk's first sample in the window
                if start >= n or start + c_n <= 0:
                    continue
                if c.samples.shape[1:] != shape[1:]:
                    continue
                if out is None:
                    out = np.zeros(shape, dtype=np.float32)
                a, b = max(start, 0), min(start + c_n, n)
                out[a:b] = c.samples[a - start : b - start]
            if out is None:
                return None
            return AudioChunk(t=float(t0), samples=out, rate=rate)

    def audio_coverage(self, t0: float, t1: float) -> float:
        """Fraction of ``[t0, t1)`` for which audio is held (0..1)."""
        if t1 <= t0:
            return 0.0
        with self._cond:
            covered = 0.0
            for _, c in self._chunks:
                a, b = max(c.t, t0), min(c.t + c.duration, t1)
                if b > a:
                    covered += b - a
            return min(1.0, covered / (t1 - t0))

    def audio_span(self) -> tuple[float, float] | None:
        """(start, end) of the audio held."""
        with self._cond:
            if not self._chunks:
                return None
            last = self._chunks[-1][1]
            return self._chunks[0][1].t, last.t + last.duration

    # -- counters -------------------------------------------------------------------
    def stats(self) -> RingStats:
        with self._cond:
            fr, ch = self._frames, self._chunks
            return RingStats(
                frames_pushed=self._next_frame,
                frames_evicted=self.frames_evicted,
                frames_in_buffer=len(fr),
                frame_bytes=self._frame_bytes,
                chunks_pushed=self._next_chunk,
                chunks_evicted=self.chunks_evicted,
                samples_pushed=self._samples_pushed,
                samples_in_buffer=self._samples,
                video_span=(fr[-1][1].t - fr[0][1].t) if fr else 0.0,
                audio_span=((ch[-1][1].t + ch[-1][1].duration) - ch[0][1].t) if ch else 0.0,
            )


def merge_chunks(chunks: list[AudioChunk], tolerance: float = 0.002) -> list[AudioChunk]:
    """Join consecutive chunks that are contiguous in time (same rate and channels) into one."""
    out: list[AudioChunk] = []
    run: list[AudioChunk] = []

    def flush() -> None:
        if not run:
            return
        if len(run) == 1:
            out.append(run[0])
        else:
            out.append(AudioChunk(t=run[0].t, samples=np.concatenate([c.samples for c in run]), rate=run[0].rate))
        run.clear()

    for c in chunks:
        if run:
            prev = run[-1]
            if (
                c.rate != prev.rate
                or c.samples.shape[1:] != prev.samples.shape[1:]
                or abs(c.t - (prev.t + prev.duration)) > tolerance
            ):
                flush()
        run.append(c)
    flush()
    return out
