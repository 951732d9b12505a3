"""One recording, the same way for every front end: :class:`RecordingSpan` and the
:class:`RecordingSource` that feeds it.  Qt-free.

A :class:`RecordingSpan` is one session folder being recorded: the
:class:`~emotiond.recording.recorder.SessionRecorder` (media + metadata) and the
``predictions.jsonl`` of the results that belong to it.  It owns

* **start** — the folder, the recorder's writer thread, the predictions log;
* **write(item)** — with the right back-pressure: a file source waits for the encoder
  (nothing is dropped), live capture never waits (dropped and counted);
* **which results belong to it** — by source time: from the first item recorded on and,
  once the recording was cut while the source goes on (the window's Stop), up to the last
  item recorded.  The recorder's queue says what is in the media (under its lock), so the
  predictions of a cut span are exactly those of its media;
* **stop(reason)** — returns at once and finalises on a thread (the window), or finalises
  the media before returning (``wait=True``: the command line).  The results of frames
  already recorded are still written as they come out of the pipeline; :attr:`done` is set
  once the media and the predictions are both on disk.

:class:`RecordingSource` wraps a source and hands what it delivers to its current span:
from the live source's capture threads (``add_tap``: every captured frame, also those the
analysis skips) or item by item.  ``emotiond run --record`` records the whole run (a span
attached before the run); the window attaches and detaches spans while the run goes on
(:meth:`emotiond.app.Analysis.start_recording`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emotiond.errors import EmotiondError
from emotiond.recording.recorder import SessionRecorder
from emotiond.session_layout import PREDICTIONS_FILE
from emotiond.sources.base import Item, SourceInfo
from emotiond.types import FrameResult

log = logging.getLogger(__name__)

_EPS = 1e-6  # seconds: a result's time equals its frame's
DRAIN_SECONDS = 10.0  # a stopped span waits this long for its last results (a stuck pipeline must not hold the log open)


class RecordingSpan:
    """One recording: see the module docstring.  ``recorder``: a recorder to use (default: one for
    ``target``); ``predictions``: also write ``predictions.jsonl`` (False: media and metadata only)."""

    def __init__(self, target: str | Path | None = None, config=None, *, models: dict | None = None,
                 recorder: SessionRecorder | None = None, predictions: bool = True):
        if recorder is None:
            if target is None:
                raise ValueError("a RecordingSpan needs a target folder or a recorder")
            recorder = SessionRecorder(target, config, models=models)
        self.recorder = recorder
        self.predictions = predictions
        self.path: Path | None = None
        self.live = False  # live capture never waits for the encoder; files do
        self.by_frame = True  # video: the frames define the span; audio-only: the chunks
        self.whole_run = False  # recorded from the start of the run to its end (`emotiond run --record`)
        self.started: float | None = None  # time.perf_counter() at start
        self.end_reason: str | None = None
        self.error: EmotiondError | None = None  # the predictions log failed
        self.done = threading.Event()  # media finalised and predictions written
        self._lock = threading.Lock()  # state
        self._sink_lock = threading.Lock()  # the predictions log
        self._sink: Any = None  # emotiond.sinks.JsonlSink of predictions.jsonl while it is open
        self._state = "idle"  # idle → recording → stopped
        self._cut = True  # stopped while the source goes on: later results are not ours
        self._finalising = False
        self._media_done = threading.Event()
        self._results_done = threading.Event()
        self._thread: threading.Thread | None = None

    # -- start ------------------------------------------------------------------------------
    def start(self, info: SourceInfo, stats: Callable[[], dict] | None = None) -> Path:
        """Create the session folder, start the recorder and open the predictions log."""
        with self._lock:
            if self._state != "idle":
                if self.path is None:
                    raise EmotiondError("this recording was stopped before it started", "start a new recording")
                return self.path
        from emotiond.sinks import JsonlSink

        path = self.recorder.start(info, stats=stats)
        sink = None
        if self.predictions:
            try:
                sink = JsonlSink(path / PREDICTIONS_FILE)
            except EmotiondError:
                self.recorder.close("the predictions log could not be created")
                raise
        else:
            self._results_done.set()
        with self._lock:
            self.live, self.by_frame = bool(info.live), bool(info.has_video)
            self.path, self._sink, self.started = path, sink, time.perf_counter()
            self._state = "recording"
        log.info("recording %s into %s", info.uri, path)
        return path

    # -- items ------------------------------------------------------------------------------
    def write(self, item: Item) -> bool:
        """Hand one item to the recorder (any thread).  A file source waits for room; live
        capture never waits (an item the encoder has no room for is dropped and counted)."""
        return self.recorder.write(item, block=not self.live)

    # -- results ----------------------------------------------------------------------------
    def holds(self, t: float) -> bool:
        """Whether the result at source time ``t`` belongs to this span."""
        if self.error is not None:
            return False
        with self._lock:
            stopped, cut = self._state == "stopped", self._cut
        first, last = self.recorder.accepted(video=self.by_frame)  # fixed once stopped: read after the state
        if first is None or t < first - _EPS:
            return False
        return not (stopped and cut) or (last is not None and t <= last + _EPS)

    def write_result(self, result: FrameResult) -> None:
        """A result of the run (its post thread): written to ``predictions.jsonl`` if it belongs
        to the span.  A cut span closes its log once a result reaches its last item.  A log that
        cannot be written stops the span (:attr:`error`); the analysis goes on."""
        t = float(result.t)
        failed = None
        if self.holds(t):
            with self._sink_lock:
                if self._sink is not None:
                    try:
                        self._sink.write(result)
                    except EmotiondError as exc:  # e.g. the disk is full
                        self.error = failed = exc
        if failed is not None:
            log.warning("recording %s: the predictions log failed: %s", self.path, failed.message)
            self.recorder.fail(failed)  # the session's metadata says it failed, and why
            self.stop(f"predictions log failed: {failed.message}")
            self.end_results()
            return
        with self._lock:
            stopped, cut = self._state == "stopped", self._cut
        if stopped and cut:
            last = self.recorder.accepted(video=self.by_frame)[1]
            if last is None or t >= last - _EPS:
                self.end_results()

    def end_results(self) -> None:
        """No more results will come for this span (the run ended, or its last one was written):
        close the predictions log."""
        with self._sink_lock:
            sink, self._sink = self._sink, None
            if sink is not None:
                try:
                    sink.close()
                except EmotiondError as exc:
                    self.error = self.error or exc
        self._results_done.set()
        self._maybe_done()

    # -- stop -------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped", *, wait: bool = False, cut: bool = True) -> None:
        """Record nothing more.  ``cut``: the source goes on (results after the last recorded
        item are not part of the span); False: the source itself ended, every result still to
        come belongs.  ``wait``: finalise the media before returning (the results still to come
        are written as they arrive; :meth:`end_results` or the last one closes the log);
        otherwise return at once and finalise on a thread, which also closes the predictions
        log :data:`DRAIN_SECONDS` after the media at the latest.  Safe twice, from any thread."""
        with self._lock:
            state = self._state
            if state == "idle":  # never started: nothing to finalise
                self._state = "stopped"
                self._media_done.set()
                self._results_done.set()
                self.done.set()
                return
            first = state == "recording"
            if first:
                self.end_reason = reason
                self._cut = cut
                self.recorder.stop_accepting(reason)  # from here on the recorder's range is final
                self._state = "stopped"
        if first and cut:
            last = self.recorder.accepted(video=self.by_frame)[1]
            if last is None:  # nothing recorded: no result can belong
                self.end_results()
        if wait:
            self._finalise_media()
        elif first:
            self._thread = threading.Thread(target=self._finalise, name="emotiond-recording-finalise", daemon=True)
            self._thread.start()

    def finish(self, reason: str = "stopped", timeout: float | None = DRAIN_SECONDS) -> bool:
        """Stop (the source ended), finalise synchronously, close the predictions log; True when
        :attr:`done` within ``timeout``."""
        self.stop(reason, wait=True, cut=False)
        self.end_results()
        return self.done.wait(timeout)

    def _finalise(self) -> None:
        self._finalise_media()
        if not self._results_done.wait(DRAIN_SECONDS):
            log.warning("recording %s: the last results did not come within %.0f s; predictions closed", self.path,
                        DRAIN_SECONDS)
        self.end_results()

    def _finalise_media(self) -> None:
        with self._lock:
            mine, self._finalising = not self._finalising, True
        if not mine:  # another thread is finalising: wait for it
            self._media_done.wait()
            return
        try:
            self.recorder.close(self.end_reason)
        finally:
            self._media_done.set()
            self._maybe_done()

    def _maybe_done(self) -> None:
        if self._media_done.is_set() and self._results_done.is_set():
            self.done.set()

    # -- state ------------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self._state == "stopped"

    @property
    def results_open(self) -> bool:
        """Whether results may still be written (the predictions log is open)."""
        return not self._results_done.is_set()

    @property
    def failure(self) -> EmotiondError | None:
        """Why the recording failed (writing the media or the predictions), if it did."""
        return self.recorder.error or self.error

    def counters(self) -> dict[str, int]:
        return self.recorder.counters()


class RecordingSource:
    """Wraps any source and feeds what it delivers to its current :class:`RecordingSpan`.

    Sources that offer ``add_tap`` (the live source) feed the span from their capture threads
    at full rate, so the recording keeps every captured frame even when analysis skips stale
    ones; other sources are teed item by item (waiting for the encoder: nothing dropped).
    ``span``: a span recorded for the whole run (a bare :class:`SessionRecorder` is recorded
    without predictions); None: spans are attached and detached later (:meth:`attach`).  A
    span still attached when the items end, fail or are abandoned is finalised then.
    ``stop``: the run's stop event (a run stopped on purpose records "stopped", not "source ended").
    """

    def __init__(self, inner, span: RecordingSpan | SessionRecorder | None = None, *,
                 stop: threading.Event | None = None):
        self.inner = inner
        self.info = inner.info
        self._stop = stop
        self._lock = threading.Lock()
        self._tapped = False
        self._span: RecordingSpan | None = None
        self.last: RecordingSpan | None = None  # the span attached last (kept after it stopped)
        if isinstance(span, SessionRecorder):
            span = RecordingSpan(recorder=span, predictions=False)
        self._pending = span  # started by start() / items()

    @property
    def warnings(self) -> list[str]:
        return getattr(self.inner, "warnings", [])

    @property
    def span(self) -> RecordingSpan | None:
        """The span being recorded (None between recordings)."""
        return self._span

    @property
    def recorder(self) -> SessionRecorder | None:
        span = self._span or self.last or self._pending
        return span.recorder if span is not None else None

    @property
    def path(self) -> Path | None:
        span = self._span or self.last
        return span.path if span is not None else None

    def start(self) -> Path | None:
        """Start the whole-run span given to the constructor (also done by :meth:`items`)."""
        span, self._pending = self._pending, None
        if span is not None:
            self.attach(span, whole_run=True)
        return self.path

    def attach(self, span: RecordingSpan, *, whole_run: bool = False) -> Path:
        """Start ``span`` on this source and feed it from now on (a span attached before stops, cut)."""
        self.detach()
        span.whole_run = whole_run
        path = span.start(self.inner.info, stats=getattr(self.inner, "stats", None))
        with self._lock:
            self._span = self.last = span
        if whole_run:
            self.info.extra["recording"] = str(path)
        return path

    def detach(self, reason: str = "stopped") -> RecordingSpan | None:
        """Stop feeding the current span and stop it (cut; returns at once, finalises on a thread)."""
        with self._lock:
            span, self._span = self._span, None
        if span is not None:
            span.stop(reason)
        return span

    def _feed(self, item: Item) -> None:
        span = self._span
        if span is not None:
            span.write(item)

    def items(self) -> Iterator[Item]:
        self.start()
        tap = getattr(self.inner, "add_tap", None)
        if tap is not None and not self._tapped:
            self._tapped = True
            tap(self._feed)
        tee = tap is None
        reason = "source ended"
        try:
            for item in self.inner.items():
                if tee:
                    self._feed(item)
                yield item
                span = self._span
                if span is not None and span.whole_run and span.recorder.error is not None:
                    raise span.recorder.error  # the command line stops when its recording fails
        except GeneratorExit:
            reason = "stopped"
            raise
        except EmotiondError as exc:
            reason = f"{exc.__class__.__name__}: {exc.message}"
            raise
        except BaseException as exc:
            reason = f"error: {exc.__class__.__name__}"
            raise
        finally:
            if reason == "source ended" and self._stop is not None and self._stop.is_set():
                reason = "stopped"
            self._end(reason)

    def _end(self, reason: str) -> None:
        """The source ended: finalise the current span's media here (results of what it recorded
        still come, so its predictions stay open until the run's end)."""
        with self._lock:
            span, self._span = self._span, None
        if span is not None:
            span.stop(reason, wait=True, cut=False)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self._pending = None
            self._end("stopped")

    def stats(self) -> dict:
        inner = getattr(self.inner, "stats", None)
        out = dict(inner()) if inner else {}
        rec = self.recorder
        if rec is not None:
            out.update({f"record_{k}": v for k, v in rec.counters().items()})
        return out

    def __getattr__(self, name):  # status, error, ring, … of the wrapped source
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
