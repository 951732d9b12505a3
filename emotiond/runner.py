"""Runs a source through the engine into sinks, overlapping the stages.

Threads connected by small bounded queues that keep source order:

    reader      : source.items() (decode, or the live devices)
    main        : hands frame k to landmark worker k mod N, and notes the order
    workers 0‥N : Engine.detect (mediapipe; the C code releases the GIL), one
                  landmarker each, so N frames are in the landmark stage at once
    post        : in source order: Engine.analyse (track ids, emotion, voice,
                  fusion) / insert_audio → sinks → callbacks

The landmark stage is single-threaded inside mediapipe; two workers use both
cores of a 2-core machine, and decoding, the emotion model and logging fit in
between.  The fixed frame → worker assignment keeps results deterministic.  Clocks: ``fast`` (as fast as possible; deterministic for files
and sessions) and ``realtime`` (items released at their media time by the one pacing policy,
:mod:`emotiond.pacer`).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from emotiond.engine import Engine
from emotiond.errors import EmotiondError
from emotiond.pacer import Pacer
from emotiond.sinks import Sink
from emotiond.sources.base import Source
from emotiond.types import AudioChunk, FrameResult, VideoFrame

log = logging.getLogger(__name__)

_END = object()
JOIN_TIMEOUT = 15.0  # seconds all the run's threads together get to stop (a recording's finalisation runs in the reader)


@dataclass
class RunStats:
    frames: int = 0
    results: int = 0
    frames_with_face: int = 0
    wall: float = 0.0
    first_result: float | None = None  # seconds from run() start to the first result
    stage_seconds: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "landmarks": 0.0, "analyse": 0.0, "sinks": 0.0})
    warnings: list[str] = field(default_factory=list)
    stopped: str = "end"  # "end", "interrupted", "stopped", "error"
    unjoined: list[str] = field(default_factory=list)  # threads that did not stop in time (a bug or a hung device)
    error: EmotiondError | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall > 0 else 0.0


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def run(
    source: Source,
    engine: Engine,
    sinks: Sequence[Sink] = (),
    *,
    clock: str = "fast",
    progress: bool | None = None,
    on_result: Callable[[FrameResult, VideoFrame | None], None] | None = None,
    stop: threading.Event | None = None,
    queue_size: int = 8,
    pacer: Pacer | None = None,
    stats: RunStats | None = None,
) -> RunStats:
    """Process ``source`` to the end (or until ``stop`` is set).  Returns statistics.

    ``clock="realtime"`` releases items at their media time through a
    :class:`~emotiond.pacer.Pacer` (``pacer``, or one with the standard policy); a ``pacer``
    given with ``fast`` is used too (e.g. an untimed one that only holds a paused file).

    An :class:`EmotiondError` from any stage ends the run and is raised once the
    threads have stopped; every record written before it stays on disk (sinks flush
    each record; closing them is the caller's job).
    """
    stop = stop or threading.Event()
    stats = stats if stats is not None else RunStats()  # the caller's: readable even when the run raises
    if source.info.live:
        pacer = None  # live items come at their own pace
    elif pacer is None and clock == "realtime":
        pacer = Pacer(video=source.info.has_video)
    if pacer is not None:
        pacer.stop = stop
    stats_lock = threading.Lock()  # stage_seconds is added to from every thread

    def add_time(stage: str, seconds: float) -> None:
        with stats_lock:
            stats.stage_seconds[stage] += seconds

    if source.info.live:
        # Live: a deep queue is only latency; the live source skips stale frames itself.
        queue_size = min(queue_size, 2)
    q_in: queue.Queue = queue.Queue(maxsize=queue_size)
    t_start = time.perf_counter()
    total = source.info.frame_count if source.info.has_video else None
    bar = _progress(progress, total, source.info)

    def put(q: queue.Queue, item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        it = None
        try:
            it = iter(source.items())
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                add_time("decode", time.perf_counter() - t0)
                if pacer is not None and not pacer.wait(item):
                    if stop.is_set():
                        break
                    continue  # too late: dropped by the pacer's policy
                if not put(q_in, item):
                    break
        except BaseException as exc:  # handed to the main thread
            put(q_in, _Failure(exc))
        finally:
            if it is not None and hasattr(it, "close"):
                it.close()  # finish the source's generator here, on the thread that ran it
            put(q_in, _END)

    def get(q: queue.Queue):
        """Next item of ``q``; None once the run is stopping."""
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return None

    def landmark_worker(k: int) -> None:
        try:
            while True:
                frame = get(w_in[k])
                if frame is None or frame is _END:
                    return
                t0 = time.perf_counter()
                faces = engine.detect(frame, k)
                add_time("landmarks", time.perf_counter() - t0)
                if not put(w_out[k], (frame, faces)):
                    return
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    def post() -> None:
        try:
            while True:
                item = get(q_order)
                if item is None:
                    return
                if item is _END:
                    break
                if isinstance(item, AudioChunk):
                    for res in engine.insert_audio(item):
                        emit(res, None)
                    continue
                got = get(w_out[item])  # the frame handed to worker `item`, in source order
                if got is None:
                    return
                frame, faces = got
                t0 = time.perf_counter()
                res = engine.analyse(frame, faces)
                add_time("analyse", time.perf_counter() - t0)
                stats.frames += 1
                stats.frames_with_face += bool(faces)
                emit(res, frame)
                if bar is not None:
                    bar.update(1)
            for res in engine.finish():
                emit(res, None)
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    def emit(res: FrameResult, frame: VideoFrame | None) -> None:
        t0 = time.perf_counter()
        for s in sinks:
            s.write(res)
        add_time("sinks", time.perf_counter() - t0)
        stats.results += 1
        if stats.first_result is None:
            stats.first_result = time.perf_counter() - t_start
        if on_result is not None:
            on_result(res, frame)

    failures: list[BaseException] = []
    n_workers = engine.workers
    # Live: every queue slot is latency behind the camera, so keep one frame per worker.
    depth = 1 if source.info.live else 2
    w_in: list[queue.Queue] = [queue.Queue(maxsize=depth) for _ in range(n_workers)]
    w_out: list[queue.Queue] = [queue.Queue(maxsize=depth) for _ in range(n_workers)]
    q_order: queue.Queue = queue.Queue(maxsize=queue_size * (n_workers + 1))
    post_thread = threading.Thread(target=post, name="emotiond-post", daemon=True)
    threads = [threading.Thread(target=reader, name="emotiond-reader", daemon=True), post_thread]
    threads += [threading.Thread(target=landmark_worker, args=(k,), name=f"emotiond-landmarks-{k}", daemon=True)
                for k in range(n_workers)]
    for th in threads:
        th.start()
    try:
        n_frames = 0
        while True:
            try:
                item = q_in.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set() or failures:
                    break
                continue
            if item is _END:
                break
            if isinstance(item, _Failure):
                failures.append(item.exc)
                break
            if isinstance(item, VideoFrame):
                k = n_frames % n_workers  # fixed assignment: deterministic results
                n_frames += 1
                # the frame goes to its worker before its place in the order queue, so the
                # post thread never waits for a frame that was not handed out
                if not put(w_in[k], item) or not put(q_order, k):
                    break
            elif not put(q_order, item):
                break
        if not failures:
            for q in w_in:
                put(q, _END)
            put(q_order, _END)
            while post_thread.is_alive() and not failures:
                post_thread.join(timeout=0.1)
    except KeyboardInterrupt:
        stats.stopped = "interrupted"
    finally:
        if stats.stopped == "end" and (failures or stop.is_set()):
            stats.stopped = "error" if failures else "stopped"
        stop.set()
        source.close()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for th in threads:
            th.join(timeout=max(0.0, deadline - time.monotonic()))
        stats.unjoined = [th.name for th in threads if th.is_alive()]
        if stats.unjoined:  # a stage stuck in native code: the engine must not be closed under it
            log.warning("run: thread(s) did not stop within %.0f s: %s", JOIN_TIMEOUT, ", ".join(stats.unjoined))
        if bar is not None:
            bar.close()
        stats.wall = time.perf_counter() - t_start
        stats.warnings.extend(getattr(source, "warnings", []))
    if failures:
        exc = failures[0]
        if isinstance(exc, EmotiondError):
            stats.error = exc
            raise exc
        raise exc
    return stats


def _progress(enabled: bool | None, total: int | None, info):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc=info.uri[-40:], dynamic_ncols=True, leave=False, file=sys.stderr)
