"""`emotiond batch` (local worker processes) against a sequential loop of `emotiond run`, on 20 inputs.

    python benchmarks/batch.py [--inputs 20] [--workers N] [--keep DIR]

The inputs are copies of the product owner's short clips (single_face.mp4, no_face.mp4) and a
90-frame cut of the Pexels clip (with its audio), made here with PyAV.  Both ways analyse the
same files with the same models and clock; the logs are checked to be byte-identical.  Prints
frames/s of each, the ratio batch/sequential (goal ≥ 1.5 on a 2-core machine: model loading
amortised, both cores busy), and the peak resident memory of each batch worker (goal ≤ 400 MB)
and of one `emotiond run` process.  Timings on shared machines are noisy: compare the ratio from
one run, not absolute figures from different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"


def make_inputs(folder: Path, n: int) -> list[Path]:
    sys.path.insert(0, str(REPO))
    from tests.mediautil import transcode

    cut = folder / "_pexels_cut.mp4"
    transcode(MEDIA / "WolfgangLanger_Pexels.mp4", cut, max_frames=90)
    kinds = [MEDIA / "single_face.mp4", MEDIA / "no_face.mp4", cut]
    inputs = []
    for i in range(n):
        src = kinds[i % len(kinds)]
        dst = folder / f"in{i:02d}_{src.name.lstrip('_')}"
        shutil.copy(src, dst)
        inputs.append(dst)
    cut.unlink()
    return inputs


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MB) of the process and the descendants it waited for, stderr."""
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0,):
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return time.perf_counter() - t0, usage.ru_maxrss // 1024, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=None, help="batch worker processes (default: one per core)")
    ap.add_argument("--keep", type=Path, help="keep the inputs and outputs in this folder")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="emotiond-batch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        inp = work / "inputs"
        inp.mkdir(exist_ok=True)
        inputs = make_inputs(inp, args.inputs)
        py = sys.executable
        seq_out = work / "sequential"
        seq_out.mkdir(exist_ok=True)
        t_seq = 0.0
        rss_run = 0
        for f in inputs:
            wall, rss, _ = timed([py, "-m", "emotiond", "run", str(f), "--log", str(seq_out / f"{f.name}.jsonl"),
                                  "--overwrite", "--no-progress"])
            t_seq += wall
            rss_run = max(rss_run, rss)
        bout = work / "batch"
        shutil.rmtree(bout, ignore_errors=True)
        cmd = [py, "-m", "emotiond", "batch", str(inp), "--out", str(bout), "--no-progress"]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        t_batch, rss_all, err = timed(cmd)
        rows = [json.loads(x) for x in (bout / "summary.jsonl").read_text().splitlines()]
        frames = sum(r["frames"] for r in rows)
        same = all((bout / f"{f.name}.jsonl").read_bytes() == (seq_out / f"{f.name}.jsonl").read_bytes()
                   for f in inputs)
        worker_rss = sorted({r["peak_rss_mb"] for r in rows if r.get("peak_rss_mb")})
        line = err.strip().splitlines()[-1] if err.strip() else ""
        print(f"inputs: {len(inputs)} ({frames} frames), cores: {len(os.sched_getaffinity(0))}")
        print(f"sequential `emotiond run` loop: {t_seq:7.1f} s  {frames / t_seq:6.1f} frames/s  "
              f"peak RSS of one run {rss_run} MB")
        print(f"emotiond batch:                 {t_batch:7.1f} s  {frames / t_batch:6.1f} frames/s  "
              f"peak RSS per worker {max(worker_rss) if worker_rss else '?'} MB (all workers: {worker_rss}); "
              f"batch process tree max {rss_all} MB")
        print(f"  {line}")
        print(f"ratio batch / sequential: {t_seq / t_batch:.2f}x  (goal >= 1.5)   logs identical: {same}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
