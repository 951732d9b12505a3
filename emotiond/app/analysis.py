"""One way to analyse a source, used by every front end (CLI ``run``/``replay``, the GUI
worker, and batch runs).  Qt-free.

:class:`Analysis` owns, for one source: the source, the engine (per-source state built
from shared :class:`~emotiond.models.Models`), the pacer (the clock policy), the sinks
and, optionally, the session recording.  The steps are always the same::

    an = Analysis.open(spec, config, clock=..., models=...)   # or Analysis(source, config, ...)
    an.load()                                # models first: a model problem costs no log
    an.open_log(path, mode)                  # the one place logs are opened
    an.record(folder)                        # optional: media + predictions + metadata
    stats = an.run(on_result=..., progress=...)
    an.close()                               # sinks, source, engine (after the run's threads)

A recording is a :class:`~emotiond.recording.RecordingSpan`: :meth:`Analysis.record` records
the whole run (the command line); an ``Analysis(..., recordable=True)`` can start and stop
spans while it runs (:meth:`Analysis.start_recording`, the window).  Either way the source is
wrapped in a :class:`~emotiond.recording.RecordingSource` that feeds the span, and one sink
of the run hands every result to the spans it belongs to.

The clock policy lives in :func:`runner_clock` and :mod:`emotiond.pacer`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emotiond.config import Config
from emotiond.engine import Engine
from emotiond.errors import EmotiondError, ModelError
from emotiond.models import Models
from emotiond.pacer import Pacer
from emotiond.runner import RunStats, run
from emotiond.sinks import JsonlSink, Sink, check_not_source, open_log
from emotiond.sources.base import Source, SourceInfo
from emotiond.types import FrameResult, VideoFrame

log = logging.getLogger(__name__)

CLOCKS = ("fast", "realtime", "deterministic")


def runner_clock(info: SourceInfo, clock: str | None) -> str:
    """How the runner releases items: ``realtime`` (paced by :class:`~emotiond.pacer.Pacer`) or
    ``fast``.  Live sources come at their own pace; a session opened with its own realtime
    clock paces itself (dropping late frames like the live run did); ``deterministic`` is fast."""
    if info.live:
        return "fast"
    if info.kind == "session" and info.extra.get("clock") == "realtime":
        return "fast"
    return "realtime" if clock == "realtime" else "fast"


def watched(info: SourceInfo, clock: str | None) -> bool:
    """Whether results are watched as they happen (warm the voice features up in advance)."""
    return info.live or clock == "realtime" or (info.kind == "session" and info.extra.get("clock") == "realtime")


class Analysis:
    """One source analysed: see the module docstring."""

    def __init__(self, source: Source, config: Config, *, models: Models | None = None, clock: str | None = None,
                 pacer: Pacer | None = None, stop: threading.Event | None = None, watched_live: bool | None = None,
                 recordable: bool = False):
        """``models``: shared loaded models (not closed here); None: the engine loads its own.
        ``clock``: fast / realtime / deterministic (default: fast).  ``pacer``: a pacer to use
        (e.g. one the GUI pauses); default: one made when the clock is realtime.  ``stop``: an
        event that ends the run.  ``watched_live``: override :func:`watched`.  ``recordable``:
        recordings may be started and stopped while the source runs (:meth:`start_recording`)."""
        if clock is not None and clock not in CLOCKS:
            raise EmotiondError(f"unknown clock {clock!r}", f"use one of: {', '.join(CLOCKS)}")
        self.source = source
        self.config = config
        self.models = models
        self.clock = clock or "fast"
        self.stop_event = stop or threading.Event()
        info = source.info
        self.runner_clock = runner_clock(info, self.clock)
        if pacer is None and self.runner_clock == "realtime":
            pacer = Pacer(video=info.has_video)
        self.pacer = pacer
        self.watched = watched(info, self.clock) if watched_live is None else watched_live
        log.info("source %s (%s): clock %s, runner %s%s", info.uri, info.kind, self.clock, self.runner_clock,
                 ", watched live" if self.watched else "")
        self.engine: Engine | None = None
        self.sinks: list[Sink] = []
        self.recording = None  # the emotiond.recording.RecordingSpan started last
        self._feed = None  # emotiond.recording.RecordingSource: the source, feeding the current span
        self._spans: list = []  # spans whose predictions are still open
        self._spans_lock = threading.Lock()
        self.voice_disabled: EmotiondError | None = None  # why the voice path is off, if it is
        self.stats: RunStats | None = None
        self._executor: Any = None  # live sources: where the voice model runs (a ThreadPoolExecutor owned here)
        self._closed = False
        if recordable:
            try:
                self._recordable()
            except ImportError as exc:  # a build without emotiond.recording analyses all the same
                log.warning("recording unavailable: %s", exc)

    @classmethod
    def open(cls, spec: str | Path | None, config: Config, *, clock: str | None = None, **kw) -> Analysis:
        """Open what the user named (see :func:`emotiond.app.resolve_source_spec`)."""
        from emotiond.app.specs import resolve_source_spec
        from emotiond.sources import open_source

        source = open_source(resolve_source_spec(None if spec is None else str(spec), config), config,
                             clock=clock or "fast")
        try:
            return cls(source, config, clock=clock, **kw)
        except BaseException:
            source.close()
            raise

    # -- steps -------------------------------------------------------------------------------
    def load(self, *, voice_optional: bool = False) -> Engine:
        """Build the engine for this source.  ``voice_optional``: when only the voice model cannot
        be loaded, go on face-only and say why in ``voice_disabled`` (the GUI)."""
        info = self.source.info
        if info.live and self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(1, thread_name_prefix="emotiond-voice")
        try:
            self.engine = Engine(self.config, source_info=info, paced=self.watched, models=self.models,
                                 executor=self._executor)
        except (ModelError, ImportError) as exc:
            if not (voice_optional and self.config.voice.enabled and info.has_audio and info.has_video):
                raise
            cfg = self.config.model_copy(deep=True)
            cfg.voice.enabled = False
            models = self.models
            if models is not None and models.voice_model is None:
                models = None  # the shared set lacks the voice; a face-only engine of its own
            self.engine = Engine(cfg, source_info=info, paced=self.watched, models=models,
                                 executor=self._executor)  # raises a face problem
            self.voice_disabled = exc if isinstance(exc, EmotiondError) else ModelError(
                f"the voice model cannot be loaded ({exc})", "reinstall emotiond; the face path works without it")
            log.warning("voice analysis off: %s", self.voice_disabled.message)
        log.info("engine ready: %s (%s models, %d landmark workers)", ", ".join(m.name for m in self.engine.models),
                 "shared" if self.models is not None else "own", self.engine.workers)
        return self.engine

    def open_log(self, path: str | Path, mode: str = "new", *, face_features: bool = False) -> Sink:
        """Open the results log (JSONL or CSV by its suffix; ``mode`` new / append / overwrite).
        A log that is the source (or inside the source folder) is refused; what opening repaired
        (a partial last line cut before appending) is in the sink's ``notes``."""
        if not self.source.info.live:
            check_not_source(path, self.source.info.uri)
        sink = open_log(path, mode)
        if isinstance(sink, JsonlSink):
            sink.face_features = face_features
        self.sinks.append(sink)
        return sink

    def add_sink(self, sink: Sink) -> Sink:
        self.sinks.append(sink)
        return sink

    def check_record(self, target: str | Path) -> None:
        """Refuse a recording that could not be made (folder not writable, a file, unknown codec or
        preset) before anything is written: call before :meth:`open_log`."""
        from emotiond.recording import check_record_target

        check_record_target(target, self.config)

    def record(self, target: str | Path) -> Path:
        """Record the whole run into ``target`` (a new folder inside it when it is not empty);
        the predictions go beside the media.  Call after :meth:`load`, before :meth:`run`."""
        span = self._new_span(target)
        path = self._recordable().attach(span, whole_run=True)
        self._track(span)
        return path

    def start_recording(self, target: str | Path):
        """Record from now on into ``target`` (any thread, while the run goes on; needs
        ``recordable=True``); a recording already running is stopped first.  Returns the
        :class:`~emotiond.recording.RecordingSpan`."""
        if self._feed is None or self._closed:
            raise EmotiondError("this analysis cannot start a recording while it runs",
                                "open it with recordable=True, or record the whole run with record()")
        self.stop_recording()
        span = self._new_span(target)
        self._feed.attach(span)
        self._track(span)
        return span

    def stop_recording(self, reason: str = "stopped"):
        """Stop the current recording (returns at once: the media is finalised on a thread, the
        predictions of what was recorded are still written as they come; ``span.done``)."""
        return self._feed.detach(reason) if self._feed is not None else None

    @property
    def recording_span(self):
        """The span being recorded now (None when nothing is)."""
        span = self._feed.span if self._feed is not None else None
        return span if span is not None and not span.stopped else None

    def _new_span(self, target: str | Path):
        from emotiond.recording import RecordingSpan

        engine = self._engine()
        models = {m.name: {"file": m.file, "sha256": m.sha256, "provider": m.provider} for m in engine.models}
        return RecordingSpan(target, self.config, models=models)

    def _recordable(self):
        """Wrap the source in the recording feed, and give the run the sink that hands results to
        the spans (once)."""
        if self._feed is None:
            from emotiond.recording import RecordingSource

            self._feed = RecordingSource(self.source, stop=self.stop_event)
            self.source = self._feed
            self.sinks.append(_SpanResults(self))
        return self._feed

    def _track(self, span) -> None:
        with self._spans_lock:
            self._spans.append(span)
        self.recording = span

    def _end_spans(self, wait: bool) -> None:
        """No more results will come: finalise a span still recording and close every span's
        predictions."""
        if self._feed is not None:
            span = self._feed.span
            if span is not None and not wait:
                self._feed.detach("stopped")  # a run whose reader did not stop: never block here
        with self._spans_lock:
            spans, self._spans = self._spans, []
        for span in spans:
            if wait:
                span.stop("stopped", wait=True, cut=False)
            span.end_results()

    def run(self, *, on_result: Callable[[FrameResult, VideoFrame | None], None] | None = None,
            progress: bool | None = False) -> RunStats:
        """Run the source to its end (or :meth:`stop`).  Raises the run's EmotiondError after its
        threads stopped; everything written before it stays on disk."""
        engine = self._engine()
        self.stats = stats = RunStats()
        try:
            run(self.source, engine, self.sinks, clock=self.runner_clock, progress=progress,
                on_result=on_result, stop=self.stop_event, pacer=self.pacer, stats=stats)
        finally:
            if self._feed is not None:  # every result is out (or its thread is named in stats.unjoined)
                self._end_spans(wait=not stats.unjoined)
            log.info("run %s: %d frames, %d results in %.1f s; stage seconds %s", stats.stopped, stats.frames,
                     stats.results, stats.wall, {k: round(v, 2) for k, v in stats.stage_seconds.items()})
            if self.pacer is not None and (self.pacer.slid or self.pacer.dropped):
                log.info("pacing: %.1f s slower than the media, %d late frames dropped", self.pacer.slid, self.pacer.dropped)
        span = self.recording
        if span is not None and span.whole_run and span.failure is not None:
            stats.error = span.failure  # a recording of the whole run that failed (a full disk) fails the run
            raise span.failure
        return stats

    # -- control (any thread) ------------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()

    def set_paused(self, paused: bool) -> None:
        if self.pacer is not None:
            self.pacer.set_paused(paused)

    @property
    def provider(self) -> str:
        return self.engine.provider if self.engine is not None else "none"

    @property
    def recorder(self):
        """The recorder of the last recording (its counters, after the run too)."""
        return self.recording.recorder if self.recording is not None else None

    def _engine(self) -> Engine:
        return self.engine if self.engine is not None else self.load()

    def close(self) -> None:
        """Close the sinks, the source (which finalizes a recording) and the engine.  The engine is
        left open (and a warning logged) if a thread of the run did not stop: closing mediapipe
        under a running landmark worker crashes the process."""
        if self._closed:
            return
        self._closed = True
        if self._feed is not None:
            self._end_spans(wait=self.stats is None or not self.stats.unjoined)
        for s in self.sinks:
            try:
                s.close()
            except EmotiondError:
                log.warning("closing a log failed", exc_info=True)
        self.source.close()
        if self.engine is not None:
            if self.stats is not None and self.stats.unjoined:
                log.warning("engine left open: thread(s) still running: %s", ", ".join(self.stats.unjoined))
            else:
                self.engine.close()
        self.release_executor()

    @property
    def executor(self):
        """Where a live source's voice model runs (owned here); None once released."""
        return self._executor

    def release_executor(self) -> None:
        """Shut down the voice executor of a live source; after the engine closed (it waited for its
        evaluation).  For front ends that close the engine themselves (the GUI worker)."""
        ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Analysis:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _SpanResults:
    """The run's sink that hands each result to the recordings it belongs to (the current span
    and stopped ones still waiting for the results of their last frames)."""

    def __init__(self, analysis: Analysis):
        self._an = analysis

    def write(self, result: FrameResult) -> None:
        an = self._an
        with an._spans_lock:
            spans = list(an._spans)
        for span in spans:
            span.write_result(result)
            if not span.results_open:
                with an._spans_lock:
                    if span in an._spans:
                        an._spans.remove(span)
            if span.whole_run and span.failure is not None:
                raise span.failure  # the command line stops when its recording cannot be written

    def close(self) -> None:
        pass  # Analysis.close() ends the spans
