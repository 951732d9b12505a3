"""Files as sources: video (with or without audio), audio-only files, images, image folders.

Decoding is FFmpeg through PyAV for video and audio (any container/codec the
FFmpeg build reads: mp4, mkv, mov/HEVC, webm, wav, flac, mp3, …) and OpenCV for
still images.  Timestamps are the media's own presentation times, so variable
frame rate is preserved; a rotation in the container's display matrix (phone
video) is applied so faces are upright.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emotiond.errors import SourceError
from emotiond.sources.base import Item, SourceInfo
from emotiond.sources.demux import Demuxer, audio_samples, open_container, to_float32  # noqa: F401 (to_float32: public)
from emotiond.types import AudioChunk, VideoFrame

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def check_not_special(path: Path) -> None:
    """Refuse a FIFO, device or socket before anything opens it (opening a FIFO with no writer
    would wait forever; a device is endless)."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if stat.S_ISFIFO(mode):
        raise SourceError(f"{path} is a FIFO (named pipe), not a media file",
                          "emotiond needs a file it can seek in: save the stream to a file first "
                          "(e.g. `cat PIPE > clip.mp4`) and pass that")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise SourceError(f"{path} is a device, not a media file",
                          "for a camera use `camera` or `camera:N` (see `emotiond devices`); otherwise pass a media file")
    if stat.S_ISSOCK(mode):
        raise SourceError(f"{path} is a socket, not a media file", "pass a media file")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"{path}: no such file", "check the path")
    check_not_special(path)
    if path.is_dir():
        raise SourceError(f"{path} is a folder without images or a recorded session", "pass a media file, an image folder or a session folder")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})", "check the file's permissions") from None
    if size == 0:
        raise SourceError(f"{path} is empty (0 bytes)", "the file was not written completely; use another copy")


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it)."""
    quarter = int(round(degrees / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k=quarter)) if quarter else image


class MediaFileSource:
    """A video or audio file read with PyAV; yields frames and audio chunks in demux order."""

    def __init__(self, path: str | Path, *, video: bool = True, audio: bool = True):

        self.path = Path(path)
        _check_file(self.path)
        self._container = open_container(self.path)
        c = self._container
        self._v = c.streams.video[0] if (video and c.streams.video) else None
        self._a = c.streams.audio[0] if (audio and c.streams.audio) else None
        if self._v is None and self._a is None:
            c.close()
            raise SourceError(f"{self.path} has no video or audio stream", "pass a video, audio or image file")
        if self._v is not None:
            self._v.thread_type = "AUTO"  # frame/slice threads in FFmpeg
        duration = float(c.duration / 1_000_000) if c.duration else None
        v = self._v
        fps = float(v.average_rate) if v is not None and v.average_rate else None
        frames = v.frames if v is not None and v.frames else (int(duration * fps) if duration and fps else None)
        self.info = SourceInfo(
            kind="video" if v is not None else "audio",
            uri=str(self.path),
            has_video=v is not None,
            has_audio=self._a is not None,
            width=v.codec_context.width if v is not None else None,
            height=v.codec_context.height if v is not None else None,
            fps=fps,
            duration=duration,
            frame_count=frames,
            audio_rate=self._a.codec_context.sample_rate if self._a is not None else None,
            audio_channels=self._a.codec_context.channels if self._a is not None else None,
            extra={
                "video_codec": v.codec_context.name if v is not None else None,
                "audio_codec": self._a.codec_context.name if self._a is not None else None,
            },
        )
        self._notes: list[str] = []
        self._demux = Demuxer(c, [self._v, self._a])
        self._damaged = self._demux.damaged  # stream type -> (count, first error)
        self._start: float | None = None

    def seek(self, t: float) -> None:
        """Start :meth:`items` at media time ``t`` (seconds): the first video frame is the one
        shown at ``t`` (decoded from the keyframe before it, earlier frames dropped), audio
        from the chunk that contains ``t``.  Call before reading."""
        self._start = max(0.0, float(t))
        self._demux.seek_to = self._start

    @property
    def warnings(self) -> list[str]:
        """What went wrong while reading, one line per kind of problem."""
        out = []
        for kind, (n, first) in self._damaged.items():
            line = f"skipped {n} damaged {kind} packet{'s' if n > 1 else ''} ({first}); the rest was analysed"
            if kind == "audio":
                line += "; no voice evidence from the unreadable parts of the audio"
            out.append(line)
        return out + self._notes

    def items(self) -> Iterator[Item]:
        import av

        index = 0
        last_t = -np.inf
        audio_next = 0.0
        start = self._start or 0.0
        rate = (self._v.guessed_rate or self._v.average_rate) if self._v is not None else None
        fps = float(rate) if rate else (self.info.fps or 30.0)
        seeking = bool(start)
        try:
            for frame in self._demux.read():
                if isinstance(frame, av.VideoFrame):
                    # no timestamp: one nominal frame after the previous one
                    t = frame.time if frame.time is not None else max(0.0, last_t) + 1.0 / (self.info.fps or 30.0)
                    if t <= last_t:  # a broken or duplicated timestamp: keep time monotonic
                        t = last_t + 1e-3
                    if seeking:
                        if t + 1.0 / fps <= start + 1e-3:
                            continue  # before the seek target: the frame shown at `start` comes later
                        seeking = False
                        index = int(round(t * fps))  # frame numbers as from the start (nominal rate)
                    last_t = t
                    image = frame.to_ndarray(format="rgb24")
                    rot = getattr(frame, "rotation", 0) or 0
                    yield VideoFrame(index=index, t=float(t), image=_rotate(image, rot))
                    index += 1
                else:
                    samples = audio_samples(frame)
                    t = frame.time if frame.time is not None else audio_next  # no timestamp: contiguous
                    audio_next = t + samples.shape[0] / frame.sample_rate
                    if start and audio_next <= start:
                        continue
                    yield AudioChunk(t=float(t), samples=samples, rate=frame.sample_rate)
            self._check_complete(index, last_t)
        except av.error.EOFError:
            self._check_complete(index, last_t)
        except av.error.FFmpegError as exc:
            # Truncated or damaged tail: what was decoded stands; say where it stopped.
            self._notes.append(f"stopped reading after frame {index}: {exc.strerror or exc} (file truncated?)")

    def _check_complete(self, frames: int, last_t: float) -> None:
        """A file cut short (its index still promising more) ends without an error from
        FFmpeg: compare with what the container announced and say so."""
        if self._demux.stop.is_set() or self._v is None or self._start:
            return
        expected, duration = self.info.frame_count, self.info.duration
        short_frames = expected is not None and frames < 0.9 * expected - 1
        short_time = duration is not None and last_t < duration - 1.0
        if frames == 0:
            self._notes.append("the video stream gave no frames (damaged or truncated file?)")
        elif short_frames and short_time:
            self._notes.append(
                f"the file ends early: {frames} of {expected} frames ({last_t:.1f} of {duration:.1f} s) "
                "could be read (truncated file?); the frames read were analysed"
            )

    def close(self) -> None:
        """Stop reading; safe twice, before the first read and from another thread (see
        :class:`~emotiond.sources.demux.Demuxer`)."""
        self._demux.close()


def read_image(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)  # handles non-ASCII paths
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        media = _sniff_media(path) if data.size else None
        if media is not None:
            raise SourceError(f"{path} is named as an image but holds {media}",
                              f"rename it with the extension of what it holds (e.g. {path.stem}.mp4) and pass it again")
        raise SourceError(f"{path} is not an image OpenCV can read", "pass a JPEG, PNG, BMP, WebP or TIFF file")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _sniff_media(path: Path) -> str | None:
    """'a video (mov,mp4,…)' / 'audio (…)' when PyAV reads streams from ``path``, else None."""
    try:
        with open_container(path) as c:
            kinds = {s.type for s in c.streams}
            fmt = c.format.name
    except SourceError:  # not media either: the image message stands
        return None
    if fmt.startswith("image2") or fmt.endswith("_pipe"):
        return None  # FFmpeg's still-image readers: an image after all, just not one OpenCV can read
    if "video" in kinds:
        return f"a video ({fmt})"
    if "audio" in kinds:
        return f"audio ({fmt})"
    return None


class ImageSource:
    """One still image or a folder of them; frame i has t = i seconds."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not self.files:
                raise SourceError(
                    f"{self.path} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})",
                    "pass a folder of images, a video file or a recorded session",
                )
            kind = "images"
        else:
            _check_file(self.path)
            self.files = [self.path]
            kind = "image"
        self._stop = threading.Event()
        self.info = SourceInfo(kind=kind, uri=str(self.path), frame_count=len(self.files), fps=1.0)
        self.warnings: list[str] = []
        if kind == "image":  # fail now, not in the middle of a run
            self._first = read_image(self.path)
            self.info.height, self.info.width = self._first.shape[:2]

    def items(self) -> Iterator[Item]:
        yielded = 0
        for i, f in enumerate(self.files):
            if self._stop.is_set():
                return
            try:
                image = self._first if self.info.kind == "image" else read_image(f)
            except SourceError as exc:
                if self.info.kind == "image":
                    raise
                self.warnings.append(str(exc))
                continue
            yielded += 1
            yield VideoFrame(index=i, t=float(i), image=image)
        if not yielded:
            raise SourceError(f"none of the {len(self.files)} images in {self.path} could be read",
                              "check the files: they are not images OpenCV can decode")

    def close(self) -> None:
        self._stop.set()
