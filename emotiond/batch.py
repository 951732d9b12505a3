"""``emotiond batch``: many recordings → one log each + a summary, on this machine or a Ray cluster.

* Inputs: files, folders (searched recursively for media files and recorded sessions), globs,
  session folders, and ``@LIST`` files (one input per line, ``#`` comments; relative paths are
  relative to the list file).
* Outputs in ``DIR``: one JSONL log per input (the same records as ``emotiond run INPUT --clock
  deterministic``), named after the input (``clip.mp4.jsonl``; parent folders are prefixed —
  ``a__clip.mp4.jsonl`` — only where two inputs share a name), plus ``summary.jsonl`` and
  ``summary.csv`` with one row per input (:data:`emotiond.summary.COLUMNS`).
* A log is written under a temporary name (``.part-NAME``) and renamed when its input is
  complete, so the presence of ``NAME`` means "done": a batch run again over the same ``DIR``
  skips finished inputs (``--redo`` analyses them again) and retries the others.  One bad input
  is an ``error`` row, never the end of the batch; the summary is rewritten (atomically) after
  every input, so it is always readable.
* Local: ``workers`` processes (default: one per core), each loading the models once and
  analysing many inputs, with ``cores // workers`` landmark threads each so the machine is not
  oversubscribed.  Ray (``--ray [ADDRESS]``, extra ``cluster``): the same :class:`Worker` as a pool
  of Ray actors (``ray.util.ActorPool``), one task per input, writing to ``DIR`` (a path every
  node must see).
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotiond.errors import EmotiondError, SourceError
from emotiond.summary import SUMMARY_CSV, SUMMARY_JSONL, read_log, read_summary, rows_in_order, summarize, write_summary
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .avi .webm .mpg .mpeg .ts .mts .wmv .flv .3gp .ogv "
    ".wav .flac .mp3 .m4a .aac .ogg .oga .opus .wma .aiff .aif "
    ".jpg .jpeg .png .bmp .webp .tif .tiff".split()
)
_GLOB_CHARS = set("*?[")
_UNSAFE = set('/\\:*?"<>|')


@dataclass
class Job:
    input: str          # absolute path (file or session folder), or what the user typed when it is not found
    log: str = ""       # the log's file name in the output folder
    problem: str | None = None  # found while expanding (no such file, glob matches nothing)
    attempts: int = 0   # how many analysis processes died while on it


@dataclass
class BatchResult:
    rows: list[dict[str, Any]]
    out: Path
    skipped: int = 0
    interrupted: bool = False
    wall: float = 0.0
    workers: int = 0
    landmark_workers: int = 0

    @property
    def ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "error"]


# -- inputs ---------------------------------------------------------------------------------------
def expand_inputs(specs: Iterable[str], exclude: Path | None = None) -> list[Job]:
    """Every input the user named, in order, without duplicates.  What cannot be found becomes a
    job with a ``problem`` (an error row), never an exception.  ``exclude``: a folder not to search
    (the output folder)."""
    from emotiond.sources.session import is_session

    jobs: list[Job] = []
    seen: set[str] = set()
    excluded = exclude.resolve() if exclude is not None else None

    def add(path: Path) -> None:
        key = str(path.resolve())
        if key not in seen:
            seen.add(key)
            jobs.append(Job(key))

    def problem(spec: str, why: str) -> None:
        if spec not in seen:
            seen.add(spec)
            jobs.append(Job(spec, problem=why))

    def walk(folder: Path) -> int:
        found = 0
        for root, dirs, files in os.walk(folder, followlinks=False):
            rootp = Path(root)
            if excluded is not None and rootp.resolve() == excluded:
                dirs[:] = []
                continue
            if is_session(rootp):
                add(rootp)
                found += 1
                dirs[:] = []
                continue
            dirs.sort()
            for name in sorted(files):
                if Path(name).suffix.lower() in MEDIA_EXTENSIONS and not name.startswith("."):
                    add(rootp / name)
                    found += 1
        return found

    def one(spec: str, base: Path | None, depth: int = 0) -> None:
        if spec.startswith("@") and depth < 4:
            lst = Path(spec[1:]).expanduser()
            if base is not None and not lst.is_absolute():
                lst = base / lst
            try:
                lines = lst.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                problem(spec, f"cannot read the list file {lst}: {getattr(exc, 'strerror', None) or exc}")
                return
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    one(line, lst.parent, depth + 1)
            return
        path = Path(spec).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if path.is_dir():
            if is_session(path):
                add(path)
            elif walk(path) == 0:
                problem(str(path), "the folder holds no media files or recorded sessions")
        elif path.exists():
            add(path)
        elif _GLOB_CHARS & set(spec):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                problem(spec, "the pattern matches no file")
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    if is_session(mp):
                        add(mp)
                    else:
                        walk(mp)
                elif not mp.name.startswith("."):
                    add(mp)
        else:
            problem(str(path), "no such file or folder")

    for s in specs:
        one(str(s), None)
    return jobs


def _safe(name: str) -> str:
    return "".join("_" if (c in _UNSAFE or ord(c) < 32) else c for c in name) or "_"


def assign_logs(jobs: list[Job], previous: dict[str, str] | None = None) -> None:
    """Give each job a log name: the input's file name + ``.jsonl``; where names collide, parent
    folders are prefixed (``a__clip.mp4.jsonl``) until they do not.  Names already given by a
    previous run into the same folder (``previous``: input → log) are kept."""
    previous = previous or {}
    taken: set[str] = {SUMMARY_JSONL.lower(), SUMMARY_CSV.lower()}
    for j in jobs:
        if j.input in previous:
            j.log = previous[j.input]
            taken.add(j.log.lower())
    todo = [j for j in jobs if not j.log]
    depth = {id(j): 1 for j in todo}

    def name(j: Job) -> str:
        parts = Path(j.input).parts[-depth[id(j)]:]
        return "__".join(_safe(p) for p in parts) + ".jsonl"

    while todo:
        groups: dict[str, list[Job]] = {}
        for j in todo:
            groups.setdefault(name(j).lower(), []).append(j)
        rest = []
        for key, group in groups.items():
            if len(group) == 1 and key not in taken:
                group[0].log = name(group[0])
                taken.add(key)
                continue
            for j in group:
                if depth[id(j)] < len(Path(j.input).parts):
                    depth[id(j)] += 1
                    rest.append(j)
                else:  # nothing left to prefix: number it
                    k = 2
                    while f"{name(j)[:-6]}-{k}.jsonl".lower() in taken:
                        k += 1
                    j.log = f"{name(j)[:-6]}-{k}.jsonl"
                    taken.add(j.log.lower())
        todo = rest


# -- the worker -----------------------------------------------------------------------------------
@dataclass
class Options:
    out: str
    clock: str = "deterministic"
    face_features: bool = False
    landmark_workers: int = 1


def analyse(spec: str, log_path: Path, config, *, models=None, clock: str = "deterministic",
            face_features: bool = False, stop: threading.Event | None = None,
            on_frame: Callable[[int], None] | None = None):
    """One input → one JSONL log, through the app layer exactly as ``emotiond run SPEC --clock CLOCK
    --log LOG`` does, on shared ``models`` (:class:`emotiond.models.Models`; None: loaded for this
    input).  Returns the runner's statistics; raises :class:`EmotiondError` for a bad input."""
    from emotiond.app import Analysis

    frames = [0]

    def counted(res, frame):
        if frame is not None:
            frames[0] += 1
            if on_frame is not None:
                on_frame(frames[0])

    an = Analysis.open(spec, config, clock=clock, models=models, stop=stop)
    try:
        an.load()
        an.open_log(log_path, "overwrite", face_features=face_features)
        return an.run(on_result=counted, progress=False)
    finally:
        an.close()


class _Fatal(Exception):
    """A worker cannot analyse anything (its models do not load): the batch stops with that error."""


class Worker:
    """Analyses inputs one after another into the output folder; one per process (or Ray actor).

    The heavy imports (and, with the app layer's ``Models``, the models) happen once, here."""

    def __init__(self, config, options: Options, progress=None, stop_event=None):
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        from emotiond.models import Models

        self.options = options
        self.config = config.model_copy(deep=True)
        if not self.config.face.workers:
            self.config.face.workers = options.landmark_workers
        self.out = Path(options.out)
        self.progress = progress      # a multiprocessing queue for the progress display, or None
        self.stop_event = stop_event  # set by the parent on Ctrl-C
        self.models = None
        self.fatal: EmotiondError | None = None
        try:
            self.models = Models(self.config)  # once per worker; every input's engine leases from it
        except EmotiondError as exc:
            self.fatal = exc  # reported with the first input; the parent then stops the batch

    def _post(self, *msg) -> None:
        if self.progress is not None:
            try:
                self.progress.put_nowait((os.getpid(), *msg))
            except Exception:  # a full or closed queue only costs a progress update
                pass

    def process(self, job: Job) -> dict[str, Any]:
        final = self.out / job.log
        tmp = temp_name(self.out, job.log)
        row: dict[str, Any] = {"input": job.input, "log": job.log}
        if self.fatal is not None:
            row.update(status="error", error=str(self.fatal), log="",
                       fatal=[self.fatal.__class__.__name__, self.fatal.message, self.fatal.hint])
            return rows_in_order([row])[0]
        stop = threading.Event()
        done = threading.Event()
        if self.stop_event is not None:
            def watch():
                while not done.is_set():
                    if self.stop_event.wait(0.2):
                        stop.set()
                        return
            threading.Thread(target=watch, daemon=True, name="emotiond-batch-stop").start()
        t0 = time.perf_counter()
        last = [0.0]

        def on_frame(n: int) -> None:
            now = time.perf_counter()
            if now - last[0] > 0.25:
                last[0] = now
                self._post("frames", n)

        try:
            tmp.write_bytes(b"")  # marks the input as started (the parent's crash accounting)
            self._post("start", job.input, _frame_count_hint(job.input))
            stats = analyse(job.input, tmp, self.config, models=self.models, clock=self.options.clock,
                            face_features=self.options.face_features, stop=stop, on_frame=on_frame)
            if stats.stopped != "end":
                tmp.unlink(missing_ok=True)
                row.update(status="interrupted", error="stopped before the end; run the batch again to resume")
                return rows_in_order([row])[0]
            os.replace(tmp, final)
            partial_name(self.out, job.log).unlink(missing_ok=True)
            row.update(summarize(read_log(final)))
            row.update(status="ok", error=None, wall=round(stats.wall, 3), fps=round(stats.fps, 2),
                       warnings="; ".join(stats.warnings) or None)
        except EmotiondError as exc:
            row.update(status="error", error=str(exc), log=_keep_partial(tmp, self.out, job.log))
        except Exception as exc:  # a bug or a library failure on this input: reported, the batch goes on
            row.update(status="error", error=f"internal error: {exc.__class__.__name__}: {exc}",
                       log=_keep_partial(tmp, self.out, job.log))
        finally:
            done.set()
            self._post("end", job.input)
            _release_memory()
        row.setdefault("wall", round(time.perf_counter() - t0, 3))
        row["peak_rss_mb"] = _peak_rss_mb()
        return rows_in_order([row])[0]


def _release_memory() -> None:
    """Between inputs: collect the per-input objects' reference cycles and hand freed heap back to
    the OS (glibc).  Without it a worker's memory grew ~20 MB per input (measured: 295 → 487 MB
    over 10 inputs); with it, it stays flat (~250 MB)."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _peak_rss_mb() -> float | None:
    """The worker process's peak resident memory so far (MB): what one worker needs."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    except (ImportError, OSError):
        return None


def temp_name(out: Path, log: str) -> Path:
    """Where an input's log is written until it is complete (hidden; keeps the .jsonl suffix)."""
    return out / f".part-{log}"


def partial_name(out: Path, log: str) -> Path:
    return out / f"{log}.partial"


def _keep_partial(tmp: Path, out: Path, log: str) -> str:
    """What a failed input had logged is kept as ``NAME.partial`` (never taken for a finished log)."""
    try:
        if tmp.is_file() and tmp.stat().st_size > 0:
            os.replace(tmp, partial_name(out, log))
            return partial_name(out, log).name
        tmp.unlink(missing_ok=True)
    except OSError:
        pass
    return ""


def _frame_count_hint(spec: str) -> int | None:
    try:
        import av

        with av.open(spec) as c:
            return c.streams.video[0].frames or None if c.streams.video else None
    except Exception:
        return None


# -- local processes ------------------------------------------------------------------------------
_WORKER: Worker | None = None


def _init_worker(config, options, progress, stop_event) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it sets stop_event
    global _WORKER
    _WORKER = Worker(config, options, progress, stop_event)
    if _WORKER.models is not None:
        import atexit

        atexit.register(_WORKER.models.close)


def _work(job: Job) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER.process(job)


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def plan_workers(n_jobs: int, workers: int | None = None) -> tuple[int, int]:
    """(processes, landmark workers per process): one process per core (at most one per input), and
    the cores left over shared out as landmark threads — 2 cores, many files: 2 × 1."""
    n = cores()
    procs = max(1, min(workers or n, max(1, n_jobs)))
    return procs, max(1, n // procs)


def _run_local(jobs: list[Job], config, options: Options, procs: int, record: Callable, display) -> bool:
    """Runs ``jobs`` on ``procs`` worker processes; ``record(row)`` as each finishes.  Returns True
    when interrupted.  A process that dies (a crash in a native library) costs only the inputs it
    was on: they are retried once in a fresh pool, then reported as errors."""
    ctx = multiprocessing.get_context("spawn")
    stop_event = ctx.Event()
    queue = display.queue(ctx) if display is not None else None
    pending = list(jobs)
    interrupted = False
    while pending and not interrupted:
        futures = {}
        ex = ProcessPoolExecutor(max_workers=min(procs, len(pending)), mp_context=ctx, initializer=_init_worker,
                                 initargs=(config, options, queue, stop_event))
        broken = False
        try:
            futures = {ex.submit(_work, j): j for j in pending}
            pending = []
            todo = set(futures)
            while todo:
                done, todo = wait(todo, timeout=0.5, return_when=FIRST_COMPLETED)
                for f in done:
                    job = futures[f]
                    try:
                        record(f.result())
                    except BrokenProcessPool:
                        broken = True
                        pending.append(job)
        except _Fatal:
            stop_event.set()
            raise
        except KeyboardInterrupt:
            interrupted = True
            stop_event.set()
            for f in futures:
                f.cancel()
            # the running inputs stop at their next frame and report "interrupted"
            for f in futures:
                if f.cancelled():
                    continue
                try:
                    record(f.result(timeout=30))
                except Exception:
                    pass
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
        if broken:
            retry = []
            for job in pending:
                tmp = temp_name(Path(options.out), job.log)
                if tmp.exists():  # it was being analysed when its process died
                    tmp.unlink(missing_ok=True)
                    job.attempts += 1
                if job.attempts >= 2:
                    record(rows_in_order([{"input": job.input, "log": "", "status": "error",
                                           "error": "the analysis process crashed on this input (twice); "
                                                    "check that the file plays, or re-encode it"}])[0])
                else:
                    retry.append(job)
            pending = retry
    return interrupted


# -- Ray --------------------------------------------------------------------------------------------
def _run_ray(jobs: list[Job], config, options: Options, address: str | None, record: Callable,
             actors: int | None = None) -> bool:
    """The same :class:`Worker` as Ray actors (each loads the models once), one task per input,
    scheduled by Ray's :class:`ray.util.ActorPool`.  Returns True when interrupted."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        from ray.util import ActorPool
    except ImportError:
        raise EmotiondError("--ray needs Ray, which is not installed",
                            "install it with `pip install 'emotiond[cluster]'`") from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning",
                                  "runtime_env": {"env_vars": {"RAY_USAGE_STATS_ENABLED": "0",
                                                               "OPENBLAS_NUM_THREADS": "1"}}}
        if not address:
            # A local instance: our tasks pass only small rows, so a small object store; and a
            # patient raylet — on a loaded machine its agents took longer than Ray's default wait
            # to register, and the raylet aborted at start (seen at load average ~25 on 2 cores).
            kwargs["num_cpus"] = cores()
            kwargs["object_store_memory"] = 256 * 2**20
            os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
        for attempt in (1, 2):
            try:
                ray.init(address=address or None, **kwargs)
                break
            except Exception as exc:  # noqa: BLE001  (Ray raises several kinds at start)
                ray.shutdown()
                if attempt == 2 or address:
                    raise EmotiondError(f"cannot start or reach Ray at {address or 'a new local instance'}: {exc}",
                                        "check `ray status`; start a cluster with `ray start --head` and pass its "
                                        "address to --ray") from None
        started = True
    interrupted = False
    pool_actors = []
    try:
        n = actors or int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(n, len(jobs)))
        remote = ray.remote(num_cpus=1)(Worker)
        pool_actors = [remote.remote(config, options) for _ in range(n)]
        pool = ActorPool(pool_actors)
        try:
            for row in pool.map_unordered(lambda a, j: a.process.remote(j), jobs):
                record(row)
        except KeyboardInterrupt:
            interrupted = True
    finally:
        for a in pool_actors:
            try:
                ray.kill(a)
            except Exception:
                pass
        if started:
            ray.shutdown()
        for j in jobs:  # inputs the cluster did not finish leave no temporary file behind
            temp_name(Path(options.out), j.log).unlink(missing_ok=True)
    return interrupted


# -- the batch --------------------------------------------------------------------------------------
def run_batch(
    inputs: list[str],
    out: str | Path,
    config=None,
    *,
    workers: int | None = None,
    redo: bool = False,
    clock: str = "deterministic",
    face_features: bool = False,
    ray: str | bool | None = None,
    progress: bool | None = None,
) -> BatchResult:
    """Analyse every input into ``out``; see the module doc.  ``ray``: None/False = local processes,
    True = a new local Ray instance, a string = the address of a Ray cluster."""
    from emotiond.config import load_config

    config = config or load_config()
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise SourceError(f"{out} is a file", "pass a folder to --out (it is created when missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmotiondError(f"cannot create {out}: {exc.strerror}", "pass a writable folder to --out") from None
    t0 = time.perf_counter()
    jobs = expand_inputs(inputs, exclude=out)
    if not jobs:
        raise SourceError("no inputs", "name files, folders, globs, sessions or an @list file")
    previous = {r["input"]: r for r in read_summary(out)}
    assign_logs(jobs, {k: r["log"] for k, r in previous.items() if r.get("log", "").endswith(".jsonl")})
    rows: dict[str, dict[str, Any]] = {}
    todo: list[Job] = []
    skipped = 0
    for j in jobs:
        temp_name(out, j.log).unlink(missing_ok=True)  # left by an interrupted run: start that input again
        if j.problem:
            rows[j.input] = rows_in_order([{"input": j.input, "log": "", "status": "error",
                                            "error": f"{j.input}: {j.problem}"}])[0]
        elif not redo and (out / j.log).is_file():
            prev = previous.get(j.input)
            if prev is None or prev.get("status") != "ok":
                prev = rows_in_order([{"input": j.input, "log": j.log, "status": "ok",
                                       **summarize(read_log(out / j.log))}])[0]
            rows[j.input] = prev
            skipped += 1
        else:
            if redo:
                (out / j.log).unlink(missing_ok=True)
            rows[j.input] = rows_in_order([{"input": j.input, "log": j.log, "status": "pending"}])[0]
            todo.append(j)
    order = [j.input for j in jobs]

    def current() -> list[dict[str, Any]]:
        return [rows[i] for i in order]

    lock = threading.Lock()
    display = None

    fatal: list[EmotiondError] = []

    def record(row: dict[str, Any]) -> None:
        with lock:
            problem = row.pop("fatal", None)
            rows[row["input"]] = row
            write_summary(out, current())
            if display is not None:
                display.finished(row)
        if problem is not None and not fatal:
            import emotiond.errors as errors

            cls = getattr(errors, problem[0], EmotiondError)
            fatal.append(cls(problem[1], problem[2]) if isinstance(cls, type) and issubclass(cls, EmotiondError)
                         else EmotiondError(problem[1], problem[2]))
            raise _Fatal

    write_summary(out, current())
    procs, lw = plan_workers(len(todo), workers)
    options = Options(out=str(out), clock=clock, face_features=face_features, landmark_workers=lw)
    interrupted = False
    if todo:
        if progress is None:
            progress = sys.stderr.isatty()
        old_term = _sigterm_as_interrupt()
        try:
            if ray:
                display = _Display(len(todo), 0) if progress else None
                interrupted = _run_ray(todo, config, options, ray if isinstance(ray, str) else None, record, workers)
            else:
                display = _Display(len(todo), procs) if progress else None
                interrupted = _run_local(todo, config, options, procs, record, display)
        except KeyboardInterrupt:
            interrupted = True
        except _Fatal:
            pass
        finally:
            if display is not None:
                display.close()
            signal.signal(signal.SIGTERM, old_term)
            for j in todo:
                if rows[j.input]["status"] == "pending":
                    rows[j.input] = rows_in_order([{"input": j.input, "log": j.log, "status": "interrupted",
                                                    "error": "not analysed; run the batch again to resume"}])[0]
                temp_name(out, j.log).unlink(missing_ok=True)
            write_summary(out, current())
    if fatal:
        raise fatal[0]
    return BatchResult(current(), out, skipped=skipped, interrupted=interrupted, wall=time.perf_counter() - t0,
                       workers=procs, landmark_workers=lw)


def _sigterm_as_interrupt():
    """SIGTERM (a job scheduler's stop) ends the batch like Ctrl-C: finished logs and the summary stay."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return signal.getsignal(signal.SIGTERM)


# -- progress ----------------------------------------------------------------------------------------
@dataclass
class _Display:
    """On a terminal: an overall bar (files, frames, frames/s, ETA) and one status line per worker."""

    total: int
    procs: int
    _q: Any = None
    _bars: dict = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _frames: dict = field(default_factory=dict)
    _done_frames: int = 0

    def __post_init__(self):
        from tqdm import tqdm

        self._tqdm = tqdm
        self._overall = tqdm(total=self.total, unit="file", desc="batch", dynamic_ncols=True, file=sys.stderr,
                             position=0)
        self._t0 = time.perf_counter()
        self._lock = threading.Lock()

    def queue(self, ctx):
        self._q = ctx.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._pump, daemon=True, name="emotiond-batch-progress")
        self._thread.start()
        return self._q

    def _pump(self) -> None:
        import queue as _queue

        while True:
            try:
                msg = self._q.get(timeout=0.5)
            except _queue.Empty:
                continue
            except (EOFError, OSError, ValueError):
                return
            if msg is None:
                return
            pid, kind, *rest = msg
            with self._lock:
                bar = self._bars.get(pid)
                if bar is None:
                    bar = self._tqdm(total=None, unit="frame", position=len(self._bars) + 1, dynamic_ncols=True,
                                     file=sys.stderr, leave=False, desc=f"worker {len(self._bars) + 1}")
                    self._bars[pid] = bar
                if kind == "start":
                    bar.reset(total=rest[1])
                    bar.set_description_str(f"worker {list(self._bars).index(pid) + 1}: {Path(rest[0]).name[-30:]}")
                    self._frames[pid] = 0
                elif kind == "frames":
                    bar.update(rest[0] - bar.n)
                    self._frames[pid] = rest[0]
                    self._postfix()
                elif kind == "end":
                    self._done_frames += self._frames.pop(pid, 0)
                    bar.set_description_str(f"worker {list(self._bars).index(pid) + 1}: idle")

    def _postfix(self) -> None:
        frames = self._done_frames + sum(self._frames.values())
        wall = time.perf_counter() - self._t0
        self._overall.set_postfix_str(f"{frames} frames, {frames / wall:.1f} frames/s" if wall > 0 else "")

    def finished(self, row: dict[str, Any]) -> None:
        with self._lock:
            if row.get("status") in ("ok", "error"):
                self._overall.update(1)
            if row.get("status") == "error":
                self._overall.write(f"emotiond: {Path(row['input']).name}: {row.get('error')}", file=sys.stderr)
            if not self._q:
                self._done_frames += row.get("frames") or 0
            self._postfix()

    def close(self) -> None:
        if self._q is not None:
            try:
                self._q.put_nowait(None)
            except Exception:
                pass
            if self._thread is not None:
                self._thread.join(timeout=2)
        for bar in self._bars.values():
            bar.close()
        self._overall.close()
