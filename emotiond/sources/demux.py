"""The one PyAV demux/decode helper, shared by the file reader (:mod:`emotiond.sources.media`)
and the session reader (:mod:`emotiond.sources.session`).

:class:`Demuxer` owns one input container and what is easy to get wrong around it:

* ``read()`` demuxes and decodes the chosen streams (from ``seek_to`` when set: the
  keyframe at or before it); a damaged packet is skipped and
  counted per stream type (``damaged``), a decoder flush packet's error is ignored, an
  end-of-file from a decoder ends the reading;
* closing is safe from any thread and at any time: before the first read (nothing is read
  then), while another thread reads (that thread closes the container at its next packet,
  because closing it under a running decoder crashes FFmpeg), or twice;
* :func:`audio_samples` turns a decoded audio frame into float32 ``[n]`` (mono) or
  ``[n, channels]``.

The sources keep their own timestamp rules (media time vs. recorded time).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emotiond.errors import SourceError


def open_container(path: Path, *, what: str = "media file"):
    """``av.open`` with one-line errors naming the file."""
    import av

    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError:
        if _mp4_without_index(path):
            raise SourceError(f"{path} is an MP4/MOV file cut off before its index (no moov box): it was not "
                              "written completely", "use a complete copy, or re-export it from the program that "
                              "wrote it (a file recorded by emotiond is fragmented and never lacks one)") from None
        raise SourceError(f"{path} is not a {what} FFmpeg can read (invalid data)",
                          "pass a video, audio or image file") from None
    except av.error.FFmpegError as exc:
        raise SourceError(f"{path} cannot be opened: {exc.strerror or exc}",
                          "the file may be truncated or damaged; try re-exporting it") from None


def _mp4_without_index(path: Path) -> bool:
    """An ISO-BMFF file (``ftyp`` first) whose top-level boxes hold no ``moov``: truncated."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8 or head[4:8] != b"ftyp":
                return False
            fh.seek(0)
            while True:
                box = fh.read(8)
                if len(box) < 8:
                    return True
                size, kind = int.from_bytes(box[:4], "big"), box[4:8]
                if kind == b"moov":
                    return False
                if size == 1:
                    size = int.from_bytes(fh.read(8), "big") - 8
                elif size == 0:
                    return True
                fh.seek(size - 8, 1)
    except OSError:
        return False


class Demuxer:
    def __init__(self, container, streams: list):
        self.container = container
        self.streams = [s for s in streams if s is not None]
        self.stop = threading.Event()
        self.damaged: dict[str, tuple[int, str]] = {}  # stream type -> (count, first error)
        self._lock = threading.Lock()
        self._reading = False
        self._closed = False
        self.seek_to: float | None = None  # container time (s) the next read() starts at (a seek)

    def read(self) -> Iterator:
        """Decoded frames (``av.VideoFrame`` / ``av.AudioFrame``) in demux order, until the
        end, :meth:`close`, or a fatal FFmpeg error (raised: the caller says where it stopped).
        The container is closed when the reading ends."""
        import av

        with self._lock:
            if self.stop.is_set() or self._closed:
                return
            self._reading = True
        try:
            if self.seek_to:  # from the keyframe at or before it; the caller drops what precedes the target
                self.container.seek(int(self.seek_to * av.time_base), backward=True)
            for packet in self.container.demux(self.streams):
                if self.stop.is_set():
                    return
                try:
                    frames = packet.decode()
                except av.error.EOFError:
                    return
                except av.error.FFmpegError as exc:
                    if packet.pts is None and packet.size == 0:
                        continue  # the decoder's flush packet
                    kind = packet.stream.type
                    n, first = self.damaged.get(kind, (0, exc.strerror or str(exc)))
                    self.damaged[kind] = (n + 1, first)
                    continue
                yield from frames
        finally:
            with self._lock:
                self._reading = False
            self._close_container()

    def close(self) -> None:
        """Stop reading; safe twice, before the first read and from another thread."""
        with self._lock:
            self.stop.set()
            reading = self._reading
        if not reading:
            self._close_container()

    def _close_container(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.container.close()
        except Exception:  # already closed by FFmpeg on a fatal error
            pass


def to_float32(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.float32:
        return samples
    if samples.dtype == np.float64:
        return samples.astype(np.float32)
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        return (samples.astype(np.float32) / float(max(abs(info.min), info.max))).astype(np.float32)
    return samples.astype(np.float32)


def audio_samples(frame) -> np.ndarray:
    """A decoded audio frame as float32 ``[n]`` (mono) or ``[n, channels]`` in [-1, 1]."""
    x = frame.to_ndarray()
    if x.ndim == 2 and frame.format.is_planar:
        x = x[0] if x.shape[0] == 1 else x.T  # [channels, n] -> [n, channels]
    elif x.ndim == 2:
        ch = len(frame.layout.channels)
        x = x.reshape(-1) if ch == 1 else x.reshape(-1, ch)
    if x.dtype != np.float32:
        x = to_float32(x)
    return np.ascontiguousarray(x)
