"""Recording a session: one folder with the media, the prediction log and metadata.

Layout of a session folder::

    media.mp4          H.264 video + AAC audio, fragmented MP4 (plays in ordinary players)
    predictions.jsonl  the engine's log (written by the recording span, :mod:`emotiond.recording.span`; same schema as --log)
    metadata.json      devices, sizes and rates, config, model hashes, counters, start/stop times

:class:`SessionRecorder` takes items from any thread with :meth:`~SessionRecorder.write`:
a bounded queue (``record.queue_seconds`` of backlog) feeds one writer thread that owns
the PyAV container.  Live capture never waits: when the encoder falls behind, frames are
dropped and counted.  A file source waits for room instead (``write(item, block=True)``,
back-pressure), so a recording of a file loses nothing.

Timestamps are the real ones (variable frame rate): media time 0 is the first
video frame (``media.t0`` in the metadata, also in the container's comment), a
frame's pts is ``t − t0`` at 1/90000 s; audio is written contiguous from 0 —
gaps (overflows) are filled with silence and overlaps cut, so its samples stay
on the same timeline within 20 ms.

Crash safety (``kill -9``: what the process handed to the recorder but the OS does not
have yet).  Every stage between ``write()`` and the file is bounded in *media time*:

* the queue: a file source (``block=True``) waits while more than ``BLOCK_SECONDS``
  (0.05 s) of media is queued (live capture is bounded by ``record.queue_seconds`` and
  drops instead; normally its queue is empty);
* the encoders: x264 with ``tune=zerolatency`` holds no frame; AAC ~2 frames (~45 ms);
* the muxer's interleaving queue: ``max_interleave_delta`` = ``INTERLEAVE_SECONDS`` (0.05 s);
* the fragment being built: the MP4 is fragmented (``frag_keyframe+delay_moov``,
  ``frag_duration``) every ``record.fragment_seconds`` (0.2 s); a fragment is written
  (``flush_packets``) as soon as the next packet arrives past its end.

So ``kill -9`` loses ≤ 0.05 + 0.05 + 0.05 + 0.2 + a frame or two ≈ 0.4 s of a file recording
(``tests/test_crash.py`` kills ``emotiond run`` at random instants and checks 0.5 s).
Written is enough: the page cache outlives the process, so no fsync is needed for a
process crash (power loss is another matter: the OS flushes within ~30 s).  A forced
keyframe every second lets a decoder resume after a damaged fragment.  The header
follows the first fragment, so a session killed in its first 0.2 s has no
media.  ``EMOTIOND_RECORD_TRACE=1`` prints each item handed over (``emotiond-record:
video|audio T``, T = its end on the source clock) to stderr: the ground truth of that test.
``metadata.json`` is replaced atomically at the start, every second and at the
end; a session whose status is still ``recording`` after its process died
reads as interrupted (see :mod:`emotiond.sources.session`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from emotiond.errors import SinkError
from emotiond.sources.base import Item, SourceInfo
from emotiond.types import AudioChunk, VideoFrame

try:
    import cv2 as _cv2
except ImportError:  # pragma: no cover - cv2 comes with mediapipe
    _cv2 = None  # type: ignore[assignment]

from emotiond.session_layout import (  # noqa: E402 (the names a session folder uses)
    FRAMES_FILE,
    MEDIA_FILE,
    METADATA_FILE,
    PREDICTIONS_FILE,
    SCHEMA,
    session_folder,
)

VIDEO_TIME_BASE = Fraction(1, 90000)
MOVFLAGS = "+frag_keyframe+delay_moov+default_base_moof"
KEYFRAME_SECONDS = 1.0  # a keyframe (and a fragment) at least this often: seeking, and decoding after a loss
BLOCK_SECONDS = 0.05  # a blocking writer (a file source) waits while more media than this is queued
INTERLEAVE_SECONDS = 0.05  # the most the muxer holds one stream's packets waiting for the other's
TRACE_ENV = "EMOTIOND_RECORD_TRACE"
_GAP_TOLERANCE = 0.005  # seconds of audio timestamp disagreement absorbed without padding/cutting


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return _dt.datetime.fromtimestamp(wall, _dt.timezone.utc).astimezone().isoformat(timespec="milliseconds")


def default_models() -> dict[str, dict[str, str]]:
    """Name → file and sha256 of every model card (cheap: reads the cards, hashes nothing)."""
    try:
        from emotiond import registry

        return {c.name: {"file": c.path.name, "sha256": c.sha256} for c in registry.cards()}
    except Exception:
        return {}


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def check_record_settings(config) -> None:
    """Open the configured encoders once (tiny, nothing written): an unknown codec or preset is
    a clear error naming the setting, before any session folder exists."""
    import av

    rc = config.record
    for key, name, kind in (("record.video_codec", rc.video_codec, "video"), ("record.audio_codec", rc.audio_codec, "audio")):
        try:
            codec = av.codec.Codec(name, "w")
        except Exception:
            codec = None
        if codec is None or codec.type != kind:
            default = "libx264" if kind == "video" else "aac"
            raise SinkError(f"{key} = {name!r} is not a {kind} encoder in this FFmpeg",
                            f"set {key} to {default!r} (the default) in the config file or EMOTIOND_{key.upper().replace('.', '__')}")
    if rc.video_codec in ("libx264", "libx265") and rc.preset not in X264_PRESETS:
        raise SinkError(f"record.preset = {rc.preset!r} is not an x264 preset",
                        f"set record.preset to one of {', '.join(X264_PRESETS)} (default superfast)")
    try:
        ctx = av.CodecContext.create(rc.video_codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
        ctx.time_base = Fraction(1, 90000)
        ctx.framerate = Fraction(30, 1)
        ctx.options = {"preset": rc.preset, "crf": str(rc.crf)} if rc.video_codec in ("libx264", "libx265") else {}
        ctx.open()
    except Exception as exc:
        raise SinkError(f"the recording encoder {rc.video_codec} does not start with these settings "
                        f"(preset {rc.preset!r}, crf {rc.crf}): {exc}",
                        "check record.video_codec / record.preset / record.crf (`emotiond config`)") from None


def check_record_target(target: str | Path, config) -> Path:
    """Where ``--record TARGET`` would record, after checking it can (folder writable, encoders
    start); nothing is created.  Raises SinkError otherwise."""
    path = session_folder(target)
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise SinkError(f"cannot record into {path}: {probe} is a file", "pass a folder to --record")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SinkError(f"cannot record into {path}: {probe} is not writable", "record into a folder you may write to")
    check_record_settings(config)
    return path


class SessionRecorder:
    """Writes one session folder.  ``path``: see :func:`session_folder`."""

    def __init__(
        self,
        path: str | Path,
        config=None,
        *,
        models: dict[str, Any] | None = None,
        queue_seconds: float | None = None,
        fragment_seconds: float | None = None,
    ):
        if config is None:
            from emotiond.config import load_config

            config = load_config()
        self.config = config
        rc = config.record
        self.target = Path(path)
        self.path: Path | None = None
        self.models = models
        self.queue_seconds = float(queue_seconds or rc.queue_seconds)
        self.fragment_seconds = float(fragment_seconds or rc.fragment_seconds)
        self._trace = os.environ.get(TRACE_ENV, "") not in ("", "0")
        self.info: SourceInfo | None = None
        self.stats_provider: Callable[[], dict] | None = None
        self.error: SinkError | None = None
        self.status = "idle"  # idle → recording → complete | failed
        self.end_reason: str | None = None
        # queue (writer side reads, any thread writes)
        self._cond = threading.Condition()
        self._q: deque[Item] = deque()
        self._q_frames = 0
        self._q_samples = 0
        self._stopping = False
        self._accepting = False
        self._thread: threading.Thread | None = None
        self._meta_lock = threading.Lock()
        self._closed = False
        # counters
        self.frames_offered = 0
        self.frames_written = 0
        self.frames_dropped = 0  # queue full (encoder behind)
        self.frames_resized = 0
        self.audio_chunks_offered = 0
        self.audio_samples_offered = 0
        self.audio_samples_dropped = 0  # queue full
        self.audio_samples_written = 0
        self.audio_gap_samples = 0  # silence written where capture had gaps
        self.audio_cut_samples = 0  # overlapping samples not written
        self.items_ignored = 0  # a stream the container has no track for
        self.queue_peak = 0
        self._accepted: dict[bool, list[float | None]] = {True: [None, None], False: [None, None]}  # video? -> first, last t
        # media state (writer thread only)
        self._container: Any = None  # av.container.OutputContainer
        self._v: Any = None
        self._a: Any = None
        self.t0: float | None = None
        self._pending: list[Item] = []
        self._last_pts = -1
        self._last_key_t = -np.inf
        self._a_next = 0  # next audio sample index in the file
        self._fifo: list[np.ndarray] = []
        self._fifo_n = 0
        self._a_pts = 0
        self._frame_size = 1024
        self.media: dict[str, Any] = {"file": MEDIA_FILE, "container": "mp4", "t0": None, "video": None, "audio": None}
        self._frames_fh: Any = None
        self.started_wall: float | None = None
        self.stopped_wall: float | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, info: SourceInfo, stats: Callable[[], dict] | None = None) -> Path:
        """Create the folder, write the first metadata and start the writer thread."""
        if self._thread is not None and self.path is not None:
            return self.path
        self.info = info
        self.stats_provider = stats
        self.path = session_folder(self.target)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if (self.path / METADATA_FILE).exists():
                raise SinkError(f"{self.path} already holds a session", "record into a new or empty folder")
            probe = self.path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise SinkError(f"cannot record into {self.path}: {exc.strerror}", "check the folder is writable") from None
        if self.models is None:
            self.models = default_models()
        rate = info.fps or self.config.capture.fps
        self._max_frames = max(4, int(self.queue_seconds * rate) + 1)
        self._max_samples = int(self.queue_seconds * (info.audio_rate or 48000)) * 2
        self.started_wall = time.time()
        self.status = "recording"
        self._accepting = True
        self.write_metadata()
        self._thread = threading.Thread(target=self._run, name="emotiond-recorder", daemon=True)
        self._thread.start()
        return self.path

    def write(self, item: Item, block: bool = False) -> bool:
        """Queue one item for the writer.  Live capture (``block=False``) never waits: when the
        encoder is behind, the item is dropped and counted (False).  A file source, which can
        wait, passes ``block=True``: the call waits for room, so nothing is dropped; an item
        still waiting when the recording stops is not part of the session (False, not counted)."""
        video = isinstance(item, VideoFrame)
        n = int(item.samples.shape[0]) if isinstance(item, AudioChunk) else 0
        with self._cond:
            end = item.t + n / item.rate if isinstance(item, AudioChunk) else item.t

            def full() -> bool:
                if video:
                    return self._q_frames >= self._max_frames
                return self._q_samples > 0 and self._q_samples + n > self._max_samples

            def backlog() -> bool:  # what a crash could lose: the queue's media span, bounded
                return bool(self._q) and end - self._q[0].t > BLOCK_SECONDS

            if block:
                while self._accepting and (full() or backlog()):
                    self._cond.wait(0.5)
            if not self._accepting:
                return False  # not started yet, or already stopped: not part of the session
            if video:
                self.frames_offered += 1
            else:
                self.audio_chunks_offered += 1
                self.audio_samples_offered += n
            if full():
                if video:
                    self.frames_dropped += 1
                else:
                    self.audio_samples_dropped += n
                return False
            if self._trace:  # before it is queued: the trace never claims less than was handed over
                os.write(2, f"emotiond-record: {'video' if video else 'audio'} {end:.6f}\n".encode())
            self._q.append(item)
            span = self._accepted[video]
            if span[0] is None:
                span[0] = item.t
            span[1] = item.t
            if video:
                self._q_frames += 1
                self.queue_peak = max(self.queue_peak, self._q_frames)
            else:
                self._q_samples += n
            self._cond.notify_all()
        return True

    def accepted(self, video: bool = True) -> tuple[float | None, float | None]:
        """Source times of the first and last video frame (``video``) or audio chunk queued for
        the media so far; fixed once the recording stopped accepting (:meth:`stop_accepting`)."""
        with self._cond:
            first, last = self._accepted[bool(video)]
        return first, last

    def stop_accepting(self, reason: str | None = None) -> None:
        """Take no more items (returns at once; :meth:`close` finalizes).  From here on
        :meth:`accepted` says exactly what the media holds."""
        with self._cond:
            if reason and not self.end_reason:
                self.end_reason = reason
            self._accepting = False
            self._cond.notify_all()

    def close(self, reason: str | None = None) -> None:
        """Finish: drain the queue, finalize the container, write the final metadata.
        Safe twice and from any thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if reason and not self.end_reason:
                self.end_reason = reason
            self._accepting = False
            self._stopping = True
            self._cond.notify_all()
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join()
        if self.path is not None and th is None:
            self.write_metadata()

    stop = close

    # -- writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        if self.info is None or self.info.live:
            # live: capture and analysis win the CPU, the queue absorbs the encoder's lag.  A file
            # source waits for the writer instead (back-pressure, a small crash window), so a niced
            # writer on a busy machine would only slow the whole run down
            _lower_thread_priority()
        next_meta = time.monotonic() + 1.0
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._q or self._stopping, timeout=max(0.0, next_meta - time.monotonic()))
                    # one item at a time: what is taken out is encoded at once, so the queue's
                    # span (bounded for blocking writers) is all that waits for the encoder
                    item = self._q.popleft() if self._q else None
                    if isinstance(item, VideoFrame):
                        self._q_frames -= 1
                    elif item is not None:
                        self._q_samples -= int(item.samples.shape[0])
                    stopping = self._stopping
                    self._cond.notify_all()  # room again for a writer waiting (file sources)
                if item is not None and self.error is None:
                    self._handle(item)
                if time.monotonic() >= next_meta:
                    self.write_metadata()
                    next_meta = time.monotonic() + 1.0
                if stopping and item is None:
                    with self._cond:
                        if not self._q:
                            break
        except Exception as exc:  # encoding / disk failure: keep what is on disk
            self._fail(exc)
        finally:
            self._finish()

    def fail(self, exc: BaseException) -> None:
        """Mark the recording failed from outside (e.g. its predictions log could not be written):
        the session's metadata says so and why, whatever the writer thread saw."""
        if self.error is not None:
            return
        self._fail(exc)
        if self.status != "recording":  # already finalised as complete: say what happened after all
            self.status = "failed"
            self.end_reason = self._end_reason()
            self.write_metadata()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self._accepting = False
        if isinstance(exc, SinkError):
            self.error = exc
            return
        import errno

        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            self.error = SinkError(f"the disk is full while recording to {self.path}",
                                   "free space or record elsewhere; what was written so far plays and replays")
        elif isinstance(exc, OSError):
            self.error = SinkError(f"recording to {self.path} failed: {exc.strerror or exc}",
                                   "check the folder is still there and writable; what was written so far replays")
        else:  # the encoder refused (settings, a frame it cannot take)
            self.error = SinkError(f"recording to {self.path} failed: {exc.__class__.__name__}: {exc}",
                                   "check the record settings (`emotiond config`: record.video_codec, record.preset)")

    def _finish(self) -> None:
        try:
            if self._container is None and self._pending and self.error is None and self._open(force=True):
                pending, self._pending = self._pending, []
                for it in pending:
                    self._encode(it)
            if self._container is not None:
                if self.error is None:
                    self._flush_audio(final=True)
                    for st in (self._v, self._a):
                        if st is not None:
                            for p in st.encode(None):
                                self._container.mux(p)
                self._container.close()
        except Exception as exc:
            if self.error is None:
                self._fail(exc)
            try:
                self._container.close()
            except Exception:
                pass
        if self._frames_fh is not None:
            try:
                self._frames_fh.close()
            except OSError:
                pass
        self.stopped_wall = time.time()
        self.status = "failed" if self.error is not None else "complete"
        self.end_reason = self._end_reason()
        self.write_metadata()

    def _end_reason(self) -> str:
        """A write failure is why a recording ended, whichever way the caller then stopped it."""
        if self.error is not None and self.end_reason in (None, "stopped", "source ended"):
            return str(self.error)
        return self.end_reason or "stopped"

    # -- media --------------------------------------------------------------------------------
    def _handle(self, item: Item) -> None:
        if self._container is None:
            self._pending.append(item)
            if not self._open():
                if self.info is not None and self.info.has_video:  # waiting for the first frame: keep ≤ 1 s of audio
                    while len(self._pending) > 1 and self._pending[-1].t - self._pending[0].t > 1.0:
                        self._pending.pop(0)
                return
            pending, self._pending = self._pending, []
            for it in pending:
                self._encode(it)
            return
        self._encode(item)

    def _open(self, force: bool = False) -> bool:
        info, folder = self.info, self.path
        if info is None or folder is None:  # not started (the writer runs only after start())
            return False
        frames = [it for it in self._pending if isinstance(it, VideoFrame)]
        chunks = [it for it in self._pending if isinstance(it, AudioChunk)]
        want_video = info.has_video
        if want_video and not frames and not force:
            return False
        if not want_video and not chunks and not force:
            return False
        if not frames and not chunks:
            return False
        import av

        self.t0 = frames[0].t if frames else chunks[0].t
        self.media["t0"] = self.t0
        if frames:
            self._frames_fh = open(folder / FRAMES_FILE, "w", encoding="utf-8")
            self.media["frame_index"] = FRAMES_FILE
        rc = self.config.record
        path = folder / MEDIA_FILE
        frag = int(self.fragment_seconds * 1_000_000)
        c = av.open(
            str(path), "w", format="mp4",
            options={"movflags": MOVFLAGS, "frag_duration": str(frag), "flush_packets": "1",
                     "max_interleave_delta": str(int(INTERLEAVE_SECONDS * 1_000_000))},
        )
        self._container = c
        c.metadata["comment"] = f"emotiond session t0={self.t0!r}"
        c.metadata["encoder"] = "emotiond"
        if frames:
            h, w = frames[0].image.shape[:2]
            w, h = w - (w % 2), h - (h % 2)
            fps = float(info.fps or self.config.capture.fps)
            v = c.add_stream(rc.video_codec, rate=Fraction(int(round(fps * 1000)), 1000))
            v.width, v.height, v.pix_fmt = w, h, "yuv420p"
            v.time_base = VIDEO_TIME_BASE
            v.codec_context.time_base = VIDEO_TIME_BASE
            v.codec_context.gop_size = max(1, int(round(fps * KEYFRAME_SECONDS * 2)))  # forced keyframes come first
            if rc.video_codec in ("libx264", "h264"):
                # zerolatency: no lookahead, no B-frames, so a fragment is complete as soon as its
                # last frame is in; one thread (niced with a live writer), so analysis keeps the CPU
                v.codec_context.options = {
                    "preset": rc.preset, "tune": "zerolatency", "crf": str(rc.crf), "threads": "1",
                }
            self._v = v
            self.media["video"] = {
                "codec": rc.video_codec, "width": w, "height": h, "pix_fmt": "yuv420p",
                "time_base": "1/90000", "nominal_fps": fps, "first_t": None, "last_t": None,
            }
        if info.has_audio or chunks:
            rate = chunks[0].rate if chunks else info.audio_rate
            channels = (chunks[0].samples.shape[1] if chunks and chunks[0].samples.ndim == 2 else 1) if chunks else (info.audio_channels or 1)
            if rate:
                channels = 1 if channels == 1 else 2
                a = c.add_stream(rc.audio_codec, rate=int(rate), layout="mono" if channels == 1 else "stereo")
                a.codec_context.time_base = Fraction(1, int(rate))
                if rc.audio_codec == "aac":
                    a.codec_context.bit_rate = 96_000 * channels
                a.codec_context.open()
                self._frame_size = a.codec_context.frame_size or 1024
                self._a = a
                self._channels = channels
                self.media["audio"] = {
                    "codec": rc.audio_codec, "rate": int(rate), "channels": channels,
                    "bit_rate": a.codec_context.bit_rate or None, "first_t": None, "last_t": None,
                }
        self.media["container"] = f"mp4, fragmented every {self.fragment_seconds:g} s ({MOVFLAGS})"
        self.media["fragment_seconds"] = self.fragment_seconds
        self.media["keyframe_seconds"] = KEYFRAME_SECONDS
        self.write_metadata()
        return True

    @property
    def _origin(self) -> float:
        """Media time 0 on the source clock (``t0``: set by :meth:`_open` before anything is encoded)."""
        return self.t0 if self.t0 is not None else 0.0

    def _encode(self, item: Item) -> None:
        if isinstance(item, VideoFrame):
            self._encode_video(item)
        else:
            self._encode_audio(item)

    def _encode_video(self, frame: VideoFrame) -> None:
        import av

        v = self._v
        if v is None:
            self.items_ignored += 1
            return
        img = frame.image
        if img.shape[0] != v.height or img.shape[1] != v.width:
            if img.shape[0] >= v.height and img.shape[1] >= v.width and img.shape[0] - v.height <= 1 and img.shape[1] - v.width <= 1:
                img = np.ascontiguousarray(img[: v.height, : v.width])  # odd size cropped to even
            else:
                import cv2

                img = cv2.resize(img, (v.width, v.height), interpolation=cv2.INTER_AREA)
                self.frames_resized += 1
        pts = int(round((frame.t - self._origin) * 90000))
        if pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        if _cv2 is not None:  # RGB → I420 in OpenCV (BT.601, as swscale would) is ~1 ms cheaper a frame
            i420 = _cv2.cvtColor(np.ascontiguousarray(img), _cv2.COLOR_RGB2YUV_I420)
            vf = av.VideoFrame.from_ndarray(i420, format="yuv420p")  # type: ignore[arg-type]  # cv2's stubs: MatLike
        else:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img, dtype=np.uint8), format="rgb24")
        vf.pts = pts
        vf.time_base = VIDEO_TIME_BASE
        if frame.t - self._last_key_t >= KEYFRAME_SECONDS - 1e-3:
            vf.pict_type = av.video.frame.PictureType.I
            self._last_key_t = frame.t
        for p in v.encode(vf):
            self._container.mux(p)
        self.frames_written += 1
        if self._frames_fh is not None:
            try:
                self._frames_fh.write(f"{frame.index}\n")
                self._frames_fh.flush()
            except OSError:
                pass  # the media is what matters; the index falls back to counting
        mv = self.media["video"]
        if mv["first_t"] is None:
            mv["first_t"] = frame.t
        mv["last_t"] = frame.t

    def _encode_audio(self, chunk: AudioChunk) -> None:
        a = self._a
        if a is None or chunk.rate != a.codec_context.sample_rate:
            self.items_ignored += 1
            return
        x = chunk.samples
        if self._channels == 1 and x.ndim == 2:
            x = x.mean(axis=1)
        elif self._channels == 2:
            x = np.repeat(x[:, None], 2, axis=1) if x.ndim == 1 else x[:, :2]
        rate = chunk.rate
        start = int(round((chunk.t - self._origin) * rate))
        delta = start - self._a_next
        tol = int(_GAP_TOLERANCE * rate) if self._a_next else 0  # the first samples go exactly where they belong
        if delta > tol:  # a gap in capture: silence keeps later audio in sync
            self._push_audio(np.zeros((delta,) + x.shape[1:], np.float32))
            self.audio_gap_samples += delta
        elif delta < -tol:  # overlaps what is written (or precedes t0): cut
            cut = min(-delta, x.shape[0])
            x = x[cut:]
            self.audio_cut_samples += cut
        if x.shape[0]:
            self._push_audio(np.asarray(x, np.float32))
            ma = self.media["audio"]
            if ma["first_t"] is None:
                ma["first_t"] = self._origin + (self._a_next - x.shape[0]) / rate
            ma["last_t"] = self._origin + self._a_next / rate
        self._flush_audio()

    def _push_audio(self, x: np.ndarray) -> None:
        self._fifo.append(x)
        self._fifo_n += x.shape[0]
        self._a_next += x.shape[0]

    def _flush_audio(self, final: bool = False) -> None:
        import av

        fs = self._frame_size
        if self._a is None or (self._fifo_n < fs and not (final and self._fifo_n)):
            return
        buf = np.concatenate(self._fifo) if len(self._fifo) > 1 else self._fifo[0]
        n_full = (buf.shape[0] // fs) * fs
        cut = buf.shape[0] if final else n_full
        layout = "mono" if self._channels == 1 else "stereo"
        for i in range(0, cut, fs):
            part = buf[i : min(i + fs, cut)]
            planar = part[None, :] if part.ndim == 1 else part.T
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar, np.float32), format="fltp", layout=layout)
            af.sample_rate = self._a.codec_context.sample_rate
            af.pts = self._a_pts
            af.time_base = Fraction(1, af.sample_rate)
            self._a_pts += part.shape[0]
            for p in self._a.encode(af):
                self._container.mux(p)
            self.audio_samples_written += part.shape[0]
        rest = buf[cut:]
        self._fifo = [rest] if rest.shape[0] else []
        self._fifo_n = rest.shape[0]

    # -- metadata -------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        return {
            "frames_offered": self.frames_offered,
            "frames_written": self.frames_written,
            "frames_dropped": self.frames_dropped,
            "frames_resized": self.frames_resized,
            "audio_chunks_offered": self.audio_chunks_offered,
            "audio_samples_offered": self.audio_samples_offered,
            "audio_samples_written": self.audio_samples_written,
            "audio_samples_dropped": self.audio_samples_dropped,
            "audio_gap_samples_filled": self.audio_gap_samples,
            "audio_overlap_samples_cut": self.audio_cut_samples,
            "items_ignored": self.items_ignored,
            "queue_peak_frames": self.queue_peak,
        }

    def metadata(self) -> dict[str, Any]:
        from emotiond import __version__

        info = self.info
        capture = None
        if self.stats_provider is not None:
            try:
                capture = self.stats_provider()
            except Exception as exc:  # never let a stats bug stop a recording
                capture = {"error": repr(exc)}
        source = None
        if info is not None:
            source = asdict(info)
            source["extra"] = {k: v for k, v in source["extra"].items() if _jsonable(v)}
        extra = (info.extra if info is not None else {}) or {}
        now = time.time()
        return {
            "schema": SCHEMA,
            "status": self.status,
            "end_reason": self.end_reason,
            "emotiond_version": __version__,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _iso(self.started_wall),
            "stopped": _iso(self.stopped_wall),
            "updated": _iso(now),
            "updated_unix": now,
            "started_unix": self.started_wall,
            "stopped_unix": self.stopped_wall,
            "clock": {
                "kind": "monotonic seconds since the session epoch" if info is not None and info.live else "source media time",
                "epoch_wall": extra.get("clock_epoch_wall"),
                "epoch_iso": _iso(extra.get("clock_epoch_wall")),
            },
            "source": source,
            "devices": {"camera": extra.get("camera"), "microphone": extra.get("microphone")},
            "media": self.media,
            "predictions": PREDICTIONS_FILE,
            "counters": self.counters(),
            "capture": capture,
            "config": self.config.model_dump(mode="json") if hasattr(self.config, "model_dump") else None,
            "models": self.models or {},
        }

    def write_metadata(self) -> None:
        """Replace metadata.json atomically (temp file + os.replace)."""
        if self.path is None:
            return
        with self._meta_lock:
            doc = self.metadata()
            tmp = self.path / f".{METADATA_FILE}.tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(doc, fh, indent=2, default=_default)
                    fh.write("\n")
                    fh.flush()
                    os.fsync(fh.fileno())  # the rename must never expose an empty file after a crash
                os.replace(tmp, self.path / METADATA_FILE)
            except OSError as exc:
                try:  # e.g. a full disk: the previous metadata.json stays; no half-written temp file
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
                if self.error is None:
                    self._fail(exc)
                    doc = self.metadata()
                    doc["status"] = {"recording": "failing", "complete": "failed"}.get(self.status, self.status)
                    doc["end_reason"] = self._end_reason()
                self._rewrite_in_place(doc)

    def _rewrite_in_place(self, doc: dict) -> None:
        """A full disk has no room for a new file, but the blocks of the existing metadata.json
        are ours: write the (compact, shorter) document over it, padded with spaces, so the
        session says what happened instead of staying "recording"."""
        if self.path is None:
            return
        path = self.path / METADATA_FILE
        doc = dict(doc, status="failed" if doc.get("status") in ("recording", "failing") else doc.get("status"))
        if self.error is not None and not doc.get("end_reason"):
            doc["end_reason"] = str(self.error)
        data = json.dumps(doc, separators=(",", ":"), default=_default).encode()
        try:
            size = path.stat().st_size
            if len(data) + 1 > size:
                doc.pop("config", None)
                doc.pop("capture", None)
                data = json.dumps(doc, separators=(",", ":"), default=_default).encode()
            if len(data) + 1 > size:
                return
            with open(path, "r+b") as fh:
                fh.write(data + b"\n" + b" " * (size - len(data) - 1))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            pass


def _lower_thread_priority(nice: int = 5) -> None:
    """Linux: nice this thread (and the encoder threads it starts) so that capture and
    analysis win the CPU; the queue absorbs the encoder's lag, drops are counted."""
    if sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            pass


def _jsonable(v) -> bool:
    try:
        json.dumps(v, default=_default)
        return True
    except (TypeError, ValueError):
        return False


def _default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, Fraction):
        return str(o)
    raise TypeError(type(o).__name__)
