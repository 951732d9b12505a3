"""Recorded sessions as sources: replay what :mod:`emotiond.recording` saved.

Items carry the recorded timestamps (``media.t0`` + presentation time), so a
replay sees the frames and audio at the same times, with the same frame
indices, as the live run did (when the recorder dropped nothing).  Audio and
video are merged into one time-ordered stream (audio first on ties).

Clocks:

* ``fast`` — as fast as decoding goes (FFmpeg threads on);
* ``realtime`` — paced at the recorded times, like the live run; video frames
  more than ``late_drop`` seconds behind schedule are skipped and counted;
* ``deterministic`` — as fast as possible, single-threaded decoding, strict
  order; ``info.extra["deterministic"]`` tells the run to keep wall-clock
  measurements out of its output.  Two runs give identical items.

``frames="analysed"`` replays only the frames the live run analysed (the
others were skipped live because analysis was busy), so a replay reproduces the
recorded predictions as closely as the re-encoded media allows.

A session cut short by a crash (``kill -9``, power loss of the process) opens
normally: ``status`` still says ``recording`` but its process is gone, so it
reads as interrupted; the media ends at its last complete fragment and reading
stops cleanly at the damaged tail (a warning says where).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emotiond.errors import SourceError
from emotiond.session_layout import FRAMES_FILE, MEDIA_FILE, METADATA_FILE, PREDICTIONS_FILE, is_session  # noqa: F401
from emotiond.sources.demux import Demuxer, audio_samples
from emotiond.sources.base import Item, SourceInfo
from emotiond.types import AudioChunk, VideoFrame

CLOCKS = ("fast", "realtime", "deterministic")
_MAX_LAG = 3.0  # seconds one stream may run ahead in the merge before the other is presumed over


def read_metadata(path: str | Path) -> dict:
    p = Path(path)
    meta = p / METADATA_FILE
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{p} is not a recorded session (no {METADATA_FILE})", "pass a folder made by `emotiond run camera --record DIR`") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SourceError(f"{meta} is unreadable ({exc.__class__.__name__})", "the session's metadata is damaged; the media file plays in any player") from None
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("emotiond.session/"):
        raise SourceError(f"{meta} is not emotiond session metadata", "pass a folder made by `emotiond run camera --record DIR`")
    return doc


def read_predictions(path: str | Path) -> list[dict]:
    """The records of a session's ``predictions.jsonl`` (or any JSONL log); an
    incomplete last line (a crash while writing it) is skipped."""
    p = Path(path)
    if p.is_dir():
        p = p / PREDICTIONS_FILE
    out: list[dict] = []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out


def _process_gone(doc: dict) -> bool:
    """Whether the process that was recording this session is no longer running."""
    pid, host = doc.get("pid"), doc.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and pid > 0:
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        try:  # a killed child nobody has waited for yet is a zombie: gone, too
            stat = Path(f"/proc/{pid}/stat").read_text()
            return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except (OSError, IndexError):
            return False
    # another machine: trust the heartbeat (metadata is rewritten every second while recording)
    updated = doc.get("updated_unix") or doc.get("started_unix")
    return not isinstance(updated, (int, float)) or time.time() - updated > 10.0


class SessionSource:
    def __init__(
        self,
        path: str | Path,
        clock: str = "fast",
        *,
        frames: str = "all",
        late_drop: float = 0.25,
        video: bool = True,
        audio: bool = True,
    ):
        """``frames``: "all" recorded frames, or only those "analysed" live (the frame
        indices in the session's predictions.jsonl), to reproduce the live run exactly."""
        import av

        if clock not in CLOCKS:
            raise SourceError(f"unknown replay clock {clock!r}", f"use one of: {', '.join(CLOCKS)}")
        self.path = Path(path)
        self.clock = clock
        self.late_drop = float(late_drop)
        self.metadata = md = read_metadata(self.path)
        self.warnings: list[str] = []
        status = md.get("status")
        self.interrupted = status == "recording" and _process_gone(md)
        self.in_progress = status == "recording" and not self.interrupted
        media_md = md.get("media") or {}
        self.media_path = self.path / (media_md.get("file") or MEDIA_FILE)
        if self.interrupted:
            self.warnings.append(f"{self.path.name}: the recording was interrupted (its process died); replaying what was saved")
        if not self.media_path.is_file() or self.media_path.stat().st_size == 0:
            raise self._no_media("is missing or empty")
        try:
            self._container = av.open(str(self.media_path), mode="r", metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise self._no_media(f"cannot be opened ({exc.strerror or exc})") from None
        c = self._container
        self._v = c.streams.video[0] if (video and c.streams.video) else None
        self._a = c.streams.audio[0] if (audio and c.streams.audio) else None
        if self._v is None and self._a is None:
            c.close()
            raise self._no_media("holds no audio or video")
        if self._v is not None:
            if clock == "deterministic":
                self._v.codec_context.thread_count = 1  # one decoding path, every run
            else:
                self._v.thread_type = "AUTO"
        self.t0 = self._t0(media_md, c)
        mv, ma = media_md.get("video") or {}, media_md.get("audio") or {}
        counters = md.get("counters") or {}
        last = max((x for x in (mv.get("last_t"), ma.get("last_t")) if isinstance(x, (int, float))), default=None)
        duration = (last - self.t0) if last is not None else (c.duration / 1e6 if c.duration else None)
        src = md.get("source") or {}
        v, a = self._v, self._a
        self.info = SourceInfo(
            kind="session",
            uri=str(self.path),
            live=False,
            has_video=v is not None,
            has_audio=a is not None,
            width=v.codec_context.width if v is not None else None,
            height=v.codec_context.height if v is not None else None,
            fps=mv.get("nominal_fps") or src.get("fps") or (float(v.average_rate) if v is not None and v.average_rate else None),
            duration=duration,
            frame_count=(counters.get("frames_written") or None) if v is not None else None,
            audio_rate=a.codec_context.sample_rate if a is not None else None,
            audio_channels=a.codec_context.channels if a is not None else None,
            extra={
                "clock": clock,
                "deterministic": clock == "deterministic",
                "status": "interrupted" if self.interrupted else status,
                "interrupted": self.interrupted,
                "t0": self.t0,
                "recorded_source": src.get("kind"),
                "devices": md.get("devices"),
                "started": md.get("started"),
                "predictions": str(self.path / (md.get("predictions") or PREDICTIONS_FILE)),
            },
        )
        # the source's own frame numbers (a live run's camera indices, gaps and all), so that
        # a replay's log lines up with the live log; older sessions: counted from 0
        self.frame_index = _read_frame_index(self.path / FRAMES_FILE)
        self.only: set[int] | None = None
        if frames == "analysed":
            recs = read_predictions(self.path / (md.get("predictions") or PREDICTIONS_FILE))
            self.only = {r["frame"] for r in recs if isinstance(r.get("frame"), int) and r["frame"] >= 0}
            if not self.only:
                self.only = None
                self.warnings.append(f"{self.path.name} has no analysed frames in its predictions log: replaying all frames")
        elif frames != "all":
            raise SourceError(f"unknown frame selection {frames!r}", "use 'all' or 'analysed'")
        if self.only is not None:
            self.info.frame_count = len(self.only)
        self.frames_read = 0
        self.frames_dropped = 0  # realtime clock only: too late to show
        self.truncated = False
        self._demux = Demuxer(c, [self._v, self._a])
        self._stop = self._demux.stop
        self._damaged = self._demux.damaged  # stream type -> (count, first error)
        self._start: float | None = None

    def seek(self, t: float) -> None:
        """Start :meth:`items` at session time ``t`` (the items' clock, from ``t0``): the
        video frame shown at ``t`` first, earlier items dropped.  Call before reading."""
        self._start = max(self.t0, float(t))
        self._demux.seek_to = self._start - self.t0

    def _no_media(self, what: str) -> SourceError:
        if self.interrupted or self.in_progress:
            return SourceError(
                f"{self.media_path} {what}: the recording stopped before its first fragment (~0.2 s) was saved",
                "nothing to replay; record again",
            )
        return SourceError(f"{self.media_path} {what}", "the session folder is incomplete; restore media.mp4 from a backup")

    @staticmethod
    def _t0(media_md: dict, container) -> float:
        t0 = media_md.get("t0")
        if isinstance(t0, (int, float)):
            return float(t0)
        comment = (container.metadata or {}).get("comment", "")
        if "t0=" in comment:  # metadata.json lagged behind a crash: the container knows
            try:
                return float(comment.split("t0=", 1)[1].split()[0])
            except ValueError:
                pass
        return 0.0

    @property
    def predictions_path(self) -> Path:
        return Path(self.info.extra["predictions"])

    # -- decoding ----------------------------------------------------------------------------
    def _decoded(self) -> Iterator[Item]:
        import av

        t0 = self.t0
        index = 0
        last_vt = -np.inf
        start = self._start if self._start is not None and self._start > t0 else None
        fps = self.info.fps or 30.0
        try:
            for fr in self._demux.read():
                if fr.pts is None:
                    continue
                t = t0 + float(fr.pts * fr.time_base)
                if isinstance(fr, av.VideoFrame):
                    if t <= last_vt:
                        t = last_vt + 1e-6
                    if start is not None and last_vt == -np.inf:
                        if t + 1.0 / fps <= start + 1e-3:
                            continue  # before the seek target: the frame shown at `start` comes later
                        index = int(round((t - t0) * fps))  # the recorded frame count at t (nominal rate)
                    last_vt = t
                    yield VideoFrame(index=self._original_index(index), t=t, image=fr.to_ndarray(format="rgb24"))
                    index += 1
                else:
                    samples = audio_samples(fr)
                    if start is not None and t + samples.shape[0] / fr.sample_rate <= start:
                        continue
                    yield AudioChunk(t=t, samples=samples, rate=fr.sample_rate)
            self._check_complete(index)
        except av.error.EOFError:
            self._check_complete(index)
        except av.error.FFmpegError as exc:
            self.truncated = True
            self.warnings.append(
                f"stopped at {max(last_vt, t0) - t0:.2f} s of media: {exc.strerror or exc} "
                f"({'the recording was interrupted' if self.interrupted else 'damaged file'})"
            )

    def _check_complete(self, frames: int) -> None:
        """Damaged packets and a media file shorter than its metadata say are reported once."""
        for kind, (n, first) in self._damaged.items():
            self.warnings.append(f"skipped {n} damaged {kind} packet{'s' if n > 1 else ''} ({first})")
        self._damaged.clear()
        expected = self.info.frame_count if self.only is None and self._start is None else None
        if self._stop.is_set() or not expected or self._v is None or frames >= expected:
            return
        self.truncated = True
        why = "the recording was interrupted" if self.interrupted else "damaged or truncated media"
        self.warnings.append(f"the session's media ends early: {frames} of {expected} recorded frames could be read ({why})")

    def _original_index(self, k: int) -> int:
        idx = self.frame_index
        if k < len(idx):
            return idx[k]
        return idx[-1] + (k - len(idx) + 1) if idx else k

    def _merged(self) -> Iterator[Item]:
        vq: deque[Item] = deque()
        aq: deque[Item] = deque()
        both = self._v is not None and self._a is not None

        def ready() -> Item | None:
            if vq and aq:
                return aq.popleft() if aq[0].t <= vq[0].t else vq.popleft()
            if not both:
                return (vq or aq).popleft() if (vq or aq) else None
            q = vq or aq
            if q and q[-1].t - q[0].t > _MAX_LAG:  # the other stream is over (or lagging far): go on
                return q.popleft()
            return None

        only = self.only
        for item in self._decoded():
            if isinstance(item, VideoFrame):
                if only is not None and item.index not in only:
                    continue
                vq.append(item)
            else:
                aq.append(item)
            while (out := ready()) is not None:
                yield out
        while vq or aq:
            if vq and aq:
                yield aq.popleft() if aq[0].t <= vq[0].t else vq.popleft()
            else:
                yield (vq or aq).popleft()

    def items(self) -> Iterator[Item]:
        from emotiond.pacer import Pacer

        pacer = None
        if self.clock == "realtime":  # the one pacing policy, dropping late frames like the live run
            pacer = Pacer(video=self._v is not None, late_drop=self.late_drop, max_behind=None, stop=self._stop)
        for item in self._merged():
            if self._stop.is_set():
                return
            if pacer is not None and not pacer.wait(item):
                if self._stop.is_set():
                    return
                self.frames_dropped = pacer.dropped
                continue
            if isinstance(item, VideoFrame):
                self.frames_read += 1
            yield item

    def close(self) -> None:
        """Stop the replay; safe twice, before the first read and from another thread (the
        reading thread closes the file, see :class:`~emotiond.sources.demux.Demuxer`)."""
        self._demux.close()

    def stats(self) -> dict:
        return {
            "frames_read": self.frames_read,
            "frames_dropped": self.frames_dropped,
            "truncated": self.truncated,
            "interrupted": self.interrupted,
        }


def _read_frame_index(path: Path) -> list[int]:
    """frames.txt: one integer per line; a line cut short by a crash ends the list."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    out: list[int] = []
    for line in text.split("\n"):
        if not line.strip().isdigit():
            break
        out.append(int(line))
    if out and not text.endswith("\n"):
        out.pop()  # the last line may be incomplete
    return out
