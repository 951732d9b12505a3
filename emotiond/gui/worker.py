"""The GUI's analysis worker: ``runner.run`` on a Python thread, results in a slot.

Qt-free on purpose (testable without a display).  The GUI never waits on it: it
calls :meth:`AnalysisWorker.poll` from a ~30 Hz timer and gets the newest frame and
result (intermediate frames are simply not drawn), every timeline point since the
last poll, and the audio levels.  Nothing here blocks the source: the slot is
overwritten, the point and level queues are bounded deques that drop their oldest.

The run itself goes through :class:`emotiond.app.Analysis` (the same way as the CLI).
The source is wrapped in a :class:`Tap` (the engine is untouched):

* it shows the first frame while the models are still loading (``prime``);
* live sources keep capturing while paused and their items are discarded (files
  and sessions are paced, and held while paused, by the run's
  :class:`~emotiond.pacer.Pacer`: the one pacing policy);
* it measures the audio level (RMS dBFS) of every AudioChunk as it passes and when
  each frame entered the pipeline (for the latency in the status bar).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emotiond.app.specs import internal_error  # noqa: F401 (the window's name for it)
from emotiond.errors import EmotiondError
from emotiond.sources.base import Item, Source
from emotiond.types import AudioChunk, FrameResult, VideoFrame

if TYPE_CHECKING:
    from emotiond.recording import RecordingSpan

MAX_POINTS = 8192  # timeline points kept between two polls (a poll normally takes ~30)


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    t: float
    probs: np.ndarray | None  # fused distribution over EMOTIONS, None when there was no evidence
    valence: float
    arousal: float
    faces: dict[int, np.ndarray] | None = None  # each analysed face's own distribution, by track id


@dataclass
class Update:
    """What one :meth:`AnalysisWorker.poll` hands the GUI."""

    state: str
    seq: int  # increases with every new result or preview frame
    frame: VideoFrame | None  # the frame that goes with ``result`` (or a preview)
    result: FrameResult | None  # None while only a preview frame exists
    points: list[TimelinePoint] = field(default_factory=list)
    levels: list[tuple[float, float]] = field(default_factory=list)  # (t, dBFS) since the last poll
    results: int = 0  # results so far
    latency: float | None = None  # seconds from a frame entering the pipeline to its result (smoothed)
    warnings: list[str] = field(default_factory=list)  # new since the last poll


class Tap:
    """A source wrapper (a Source itself) between the real source and the runner."""

    def __init__(self, source: Source, worker: AnalysisWorker):
        self.source = source
        self.info = source.info
        self._w = worker
        self._it: Iterator[Item] | None = None
        self._primed: list[Item] = []
        self._released: dict[int, float] = {}  # frame index -> perf_counter when it left the tap
        self._lock = threading.Lock()
        # Files and sessions: close() waits until no item is being decoded.  Closing a PyAV
        # container while another thread demuxes it crashes the process (MediaFileSource.close
        # is not safe against a concurrent items()); live sources close from any thread.
        self._reading = threading.Lock()
        self._closed = False
        if callable(getattr(source, "add_tap", None)):  # live: a recording is fed from the capture threads
            self.add_tap = source.add_tap

    @property
    def warnings(self) -> list[str]:  # read by runner.run at the end
        return getattr(self.source, "warnings", [])

    def _iter(self) -> Iterator[Item]:
        if self._it is None:
            self._it = iter(self.source.items())
        if self.info.live:
            return self._it
        return self._guarded(self._it)

    def _guarded(self, it: Iterator[Item]) -> Iterator[Item]:
        while True:
            with self._reading:
                if self._closed:
                    return
                item = next(it, None)
            if item is None:
                return
            yield item

    def prime(self, models_ready: threading.Event) -> None:
        """Show video before the engine exists.  Files: decode up to the first frame and
        keep what was read for the run.  Live: preview until the models are loaded."""
        if not self.info.has_video:
            return
        live = self.info.live
        stop = self._w._stop
        for item in self._iter():
            self._observe(item)
            if isinstance(item, VideoFrame):
                self._w._publish_preview(item)
            if not live:
                self._primed.append(item)
                if isinstance(item, VideoFrame):
                    return
            elif models_ready.is_set() or stop.is_set():
                return
            if stop.is_set():
                return

    def items(self) -> Iterator[Item]:
        w = self._w
        for item in itertools.chain(self._primed, self._iter()):
            if w._stop.is_set():
                return
            if self.info.live and w._paused.is_set():
                continue  # keep draining the devices; nothing is analysed while paused
            self._observe(item)
            yield item
        self._primed = []

    def _observe(self, item: Item) -> None:
        if isinstance(item, AudioChunk):
            self._w._levels.append((item.t, _dbfs(item.samples)))
        elif isinstance(item, VideoFrame):
            with self._lock:
                self._released[item.index] = time.perf_counter()

    def released(self, index: int) -> float | None:
        """When frame ``index`` left the tap; forgets it and every earlier frame."""
        with self._lock:
            t = self._released.pop(index, None)
            if len(self._released) > 64:
                self._released = {k: v for k, v in self._released.items() if k > index}
        return t

    def close(self) -> None:
        if self.info.live:
            self.source.close()
            return
        with self._reading:  # one packet's decode at most
            self._closed = True
            self.source.close()


def _dbfs(samples: np.ndarray) -> float:
    from emotiond.audio.features import rms_dbfs

    return max(-120.0, rms_dbfs(samples))


class RunLog:
    """Every result of what the window played since a source was opened (seeks included):
    the records ``emotiond run`` logs (:func:`emotiond.sinks.to_record`), kept as JSON
    lines (~0.5 kB per frame), for Export and the end-of-run summary; with ``path``, also
    appended to that log as they come (``emotiond gui --log FILE``: never truncated).
    A sink of the runner, written from its post thread."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path else None
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._file = None
        self.error: EmotiondError | None = None
        # the summary, kept up to date
        self._last: tuple[float, str] | None = None
        self.seconds: dict[str, float] = {}  # fused label ("none": no evidence) -> seconds
        self._va = np.zeros(2)
        self._n_va = 0
        self.faces_seen: set[int] = set()
        self.frames_with_face = 0
        self.span: tuple[float, float] | None = None

    def open_file(self, source: str | Path | None = None) -> None:
        """Open the user's log (append; raises a SinkError the window shows), never the source
        file ``source`` or a file inside it (the session being replayed)."""
        from emotiond.sinks import check_not_source, open_log

        if self.path is not None and self._file is None:
            if source is not None:
                check_not_source(self.path, source)
            self._file = open_log(self.path, "append")

    def write(self, result: FrameResult) -> None:
        import json

        from emotiond.sinks import to_record

        record = to_record(result)
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            self._lines.append(line)
            self._count(result, record)
        if self._file is not None and self.error is None:
            try:
                self._file.write(result)
            except EmotiondError as exc:  # e.g. the disk is full: keep analysing, say so
                self.error = exc

    def _count(self, result: FrameResult, record: dict) -> None:
        t = float(result.t)
        label = record["label"] or "none"
        if self._last is not None and t > self._last[0]:
            dt = min(t - self._last[0], 1.0)  # a gap (a seek) does not count as time watched
            self.seconds[self._last[1]] = self.seconds.get(self._last[1], 0.0) + dt
        self._last = (t, label)
        self.span = (t, t) if self.span is None else (min(self.span[0], t), max(self.span[1], t))
        if record["valence"] is not None:
            self._va += (record["valence"], record["arousal"])
            self._n_va += 1
        if result.faces:
            self.frames_with_face += 1
        self.faces_seen.update(f.track_id for f in result.faces if f.track_id >= 0)

    def close(self) -> None:  # the runner does not close its sinks; the window does, once
        if self._file is not None:
            self._file.close()
            self._file = None

    def __len__(self) -> int:
        return len(self._lines)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def export(self, path: str | Path) -> int:
        """Write the log as JSONL or CSV (by the suffix), exactly as ``emotiond run --log``
        writes it; returns the number of records.  The file dialog asked before replacing."""
        import json

        from emotiond.sinks import CSV_COLUMNS, _open_log, _write_error, csv_rows

        path = Path(path)
        lines = self.lines()
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".ndjson", ".json", ".csv"):
            raise EmotiondError(f"unknown log format {suffix or '(no extension)'} for {path}", "name the log *.jsonl or *.csv")
        fh = _open_log(path, "overwrite", newline="" if suffix == ".csv" else None)
        try:
            if suffix == ".csv":
                import csv

                w = csv.writer(fh)
                w.writerow(CSV_COLUMNS)
                for line in lines:
                    w.writerows([["" if v is None else v for v in row] for row in csv_rows(json.loads(line))])
            else:
                fh.writelines(line + "\n" for line in lines)
        except OSError as exc:
            raise _write_error(path, exc) from None
        finally:
            fh.close()
        return len(lines)

    def summary(self) -> dict:
        """Time per emotion, mean valence/arousal, faces seen (the end-of-run summary)."""
        with self._lock:
            seconds = dict(self.seconds)
            total = sum(seconds.values())
            return {
                "results": len(self._lines),
                "span": self.span,
                "seconds": seconds,
                "share": {k: (v / total if total else 0.0) for k, v in seconds.items()},
                "dominant": max((k for k in seconds if k != "none"), key=seconds.get, default=None),
                "valence": float(self._va[0] / self._n_va) if self._n_va else None,
                "arousal": float(self._va[1] / self._n_va) if self._n_va else None,
                "faces_seen": sorted(self.faces_seen),
                "frames_with_face": self.frames_with_face,
            }


class AnalysisWorker:
    """Open a source, load the engine and run it, on a daemon thread.

    ``opener`` returns the source (it runs on the worker thread: opening a camera or a
    damaged file must not block the window).  ``pace``: play files at media time (the
    GUI) or as fast as possible.
    """

    def __init__(self, opener: Callable[[], Source], config, *, pace: bool = True, models=None, sinks=(),
                 start: float | None = None, log: RunLog | None = None):
        """``models``: shared :class:`emotiond.models.Models` (kept open), or a function returning
        them (called on the loader thread); ``sinks``: extra sinks the run writes to (closed by
        their owner); ``start``: seek the source to this media time first; ``log``: the
        :class:`RunLog` to add every result to (shared by the runs of one opened source)."""
        from emotiond.pacer import Pacer

        self.opener = opener
        self.config = config
        self.pace = pace
        self.models = models
        self.extra_sinks = list(sinks)
        self.start_at = start  # seek the source here first (files and sessions)
        self.log = log if log is not None else RunLog()  # every result of this run (export, summary, --log)
        # files and sessions: paced at media time (or not, pace=False) and held while paused
        self.pacer = Pacer(realtime=pace)
        self.analysis = None
        self.state = "idle"  # idle → opening → loading → running ⇄ paused → ended | stopped | error
        self.error: EmotiondError | None = None
        self.source: Source | None = None
        self.engine = None
        self.provider: str | None = None
        self.stats = None
        self.voice_disabled: EmotiondError | None = None  # why the voice path is off, if it is
        self._smoothing: float = float(config.fusion.smoothing_tau)
        self._focus: int | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._resumed = threading.Event()
        self._resumed.set()
        self._models_ready = threading.Event()
        self._finished = False  # the run is over and has closed what it had
        self._lock = threading.Lock()
        self._seq = 0
        self._frame: VideoFrame | None = None
        self._result: FrameResult | None = None
        self._results = 0
        self._latency: float | None = None
        self._points: deque[TimelinePoint] = deque(maxlen=MAX_POINTS)
        self._levels: deque[tuple[float, float]] = deque(maxlen=MAX_POINTS)
        self._warnings: list[str] = []
        self._warned = 0
        self._tap: Tap | None = None
        self._thread = threading.Thread(target=self._main, name="emotiond-gui-worker", daemon=True)

    # -- control (any thread) -------------------------------------------------------
    def start(self) -> AnalysisWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to end; returns at once (the thread closes the source and engine)."""
        self._stop.set()
        self._resumed.set()
        self._paused.clear()
        self.pacer.set_paused(False)
        source = self.source
        if source is not None and source.info.live:
            # unblocks a live source that delivers nothing; on its own thread, because closing a
            # hung camera or PortAudio stream can take seconds and stop() is called from the GUI
            threading.Thread(target=source.close, name="emotiond-close-source", daemon=True).start()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._resumed.clear()
            self._paused.set()
        else:
            self._paused.clear()
            self._resumed.set()
        self.pacer.set_paused(paused)

    def set_focus(self, track_id: int | None) -> None:
        """The face the user clicked (None: back to the largest); kept for an engine still loading."""
        self._focus = track_id
        engine = self.engine
        if engine is not None:
            engine.set_focus(track_id)

    def set_smoothing(self, tau: float) -> None:
        self._smoothing = float(tau)
        engine = self.engine
        if engine is not None:
            engine.set_smoothing(tau)  # one float assignment: safe while the post thread runs

    # -- recording ------------------------------------------------------------------------
    def can_record(self) -> bool:
        return self.state in ("running", "paused") and self.source is not None and self.engine is not None

    def start_recording(self, target) -> RecordingSpan:
        """Record from now on into the session folder ``target`` (media, predictions.jsonl,
        metadata.json): a :class:`~emotiond.recording.RecordingSpan` of the run's
        :class:`~emotiond.app.Analysis`, fed from the live source's capture tap (every captured
        frame) or, for files and sessions, as they are read (waiting for the encoder: nothing
        is dropped)."""
        analysis = self.analysis
        if not self.can_record() or analysis is None:
            raise EmotiondError("nothing is being analysed to record", "wait until the source runs")
        return analysis.start_recording(target)

    def stop_recording(self, reason: str = "stopped") -> RecordingSpan | None:
        """Stop recording now; returns at once.  The media is finalized on a thread of its
        own and the predictions of the frames already recorded are still written as they
        come out of the pipeline; ``span.done`` is set when both are on disk."""
        analysis = self.analysis
        return analysis.stop_recording(reason) if analysis is not None else None

    @property
    def recording(self) -> RecordingSpan | None:
        """The span being recorded (None once it stopped, by itself too: the source ended, or
        writing failed)."""
        analysis = self.analysis
        return analysis.recording_span if analysis is not None else None

    # -- what the GUI reads -----------------------------------------------------------
    def poll(self) -> Update:
        points = _drain(self._points)
        levels = _drain(self._levels)
        with self._lock:
            warnings = self._warnings[self._warned :]
            self._warned = len(self._warnings)
            state = self.state
            if state == "running" and self._paused.is_set():
                state = "paused"
            return Update(
                state=state,
                seq=self._seq,
                frame=self._frame,
                result=self._result,
                points=points,
                levels=levels,
                results=self._results,
                latency=self._latency,
                warnings=warnings,
            )

    # -- the thread ---------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        with self._lock:
            self.state = state

    def _warn(self, text: str) -> None:
        with self._lock:
            if text not in self._warnings:
                self._warnings.append(text)

    def _publish_preview(self, frame: VideoFrame) -> None:
        with self._lock:
            if self._result is None:  # once results flow, frames come with their result
                self._frame = frame
                self._seq += 1

    def _on_result(self, result: FrameResult, frame: VideoFrame | None) -> None:
        latency = None
        if frame is not None and self._tap is not None:
            released = self._tap.released(frame.index)
            if released is not None:
                latency = time.perf_counter() - released
        fused = result.fused
        point = TimelinePoint(
            t=result.t,
            probs=None if fused is None else np.array(fused.probs, dtype=np.float32),
            valence=np.nan if fused is None else float(fused.valence),
            arousal=np.nan if fused is None else float(fused.arousal),
            faces=_face_points(result),
        )
        self._points.append(point)
        with self._lock:
            self._result = result
            if frame is not None:
                self._frame = frame
            self._results += 1
            self._seq += 1
            if latency is not None:
                self._latency = latency if self._latency is None else 0.8 * self._latency + 0.2 * latency

    def _main(self) -> None:
        from emotiond.app import Analysis

        source = engine = None
        loaded: list = []  # the loader's Engine or exception
        try:
            self._set_state("opening")
            source = self.opener()
            self.source = source
            for w in getattr(source, "warnings", []):
                self._warn(w)
            if self.start_at is not None and not source.info.live:
                seek = getattr(source, "seek", None)
                if seek is None:
                    self._warn(f"{source.info.kind} sources cannot seek; playing from the start")
                else:
                    seek(self.start_at)
            tap = self._tap = Tap(source, self)
            self.pacer.video = source.info.has_video
            analysis = self.analysis = Analysis(tap, self.config, models=self.models, pacer=self.pacer,
                                                clock="realtime" if self.pace else "fast", stop=self._stop,
                                                watched_live=True, recordable=True)  # watched live: warm the voice up
            for s in self.extra_sinks:
                analysis.add_sink(s)
            self.log.open_file(None if source.info.live else source.info.uri)
            analysis.add_sink(self.log)
            loader = threading.Thread(target=self._load_engine, args=(analysis, loaded), name="emotiond-gui-models", daemon=True)
            self._set_state("loading")
            if source.info.live:  # preview the camera until the models are loaded
                loader.start()
                tap.prime(self._models_ready)
            else:  # the first frame first (~20 ms), then the models (seconds)
                tap.prime(self._models_ready)
                loader.start()
            while loader.is_alive() and not self._stop.is_set():
                loader.join(0.05)
            if self._stop.is_set():
                self._set_state("stopped")
                return
            if isinstance(loaded[0], BaseException):
                raise loaded[0]
            engine = self.engine = loaded[0]
            self._set_state("running")
            self.stats = analysis.run(on_result=self._on_result, progress=False)
            for w in self.stats.warnings:
                self._warn(w)
            self._set_state("ended" if self.stats.stopped == "end" else "stopped")
        except EmotiondError as exc:
            self.error = exc
            self._set_state("error")
        except Exception as exc:  # a bug: keep the evidence, tell the user where it is
            self.error = internal_error(exc)
            self._set_state("error")
        finally:
            self._stop.set()
            if self.analysis is not None:  # a recording started on a run that failed before its end
                self.analysis.stop_recording("source ended" if self.state == "ended" else self.state)
            with self._lock:  # an engine that finished loading after a stop
                if engine is None and loaded and not isinstance(loaded[0], BaseException):
                    engine = loaded[0]
                self._finished = True  # an engine loaded from now on closes itself
            unjoined = self.stats is not None and self.stats.unjoined
            if engine is not None and not unjoined:
                engine.close()
            if self.analysis is not None:
                self.analysis.release_executor()
            if self._tap is not None:
                self._tap.close()
            elif source is not None:
                source.close()

    def _load_engine(self, analysis, out: list) -> None:
        """On its own thread, so the first frame can be decoded and shown meanwhile.  When
        only the voice path cannot load (its model missing), the run goes on face-only and
        the window says why."""
        try:
            if callable(analysis.models):  # the window's shared Models, loaded on first use (here, off the GUI thread)
                analysis.models = analysis.models()
            engine = analysis.load(voice_optional=True)
            if analysis.voice_disabled is not None:
                self.voice_disabled = vd = analysis.voice_disabled
                self._warn(f"voice analysis is off: {vd.message} — {vd.hint or ''}".rstrip(" —"))
            engine.set_smoothing(self._smoothing)
            engine.set_focus(self._focus)
            self.provider = engine.provider
            with self._lock:
                abandoned = self._finished
                if not abandoned:
                    out.append(engine)
            if abandoned:  # nobody will run or close it
                engine.close()
        except BaseException as exc:
            out.append(exc)
        finally:
            self._models_ready.set()


def _face_points(result: FrameResult) -> dict[int, np.ndarray] | None:
    """Each face track's distribution for the timeline: its fused result (face with the
    voice, smoothed) where the engine gives one, else its face model's own."""
    out = {}
    by_track = getattr(result, "fused_by_track", None) or {}
    for f in result.faces:
        fused = by_track.get(f.track_id)
        if fused is not None:
            out[f.track_id] = np.asarray(fused.probs, dtype=np.float32)
        elif f.emotion is not None:
            out[f.track_id] = np.asarray(f.emotion, dtype=np.float32)
    return out or None


def _drain(q: deque) -> list:
    out = []
    try:
        while True:
            out.append(q.popleft())
    except IndexError:
        return out
