"""Time from launching `emotiond gui CLIP` to the first displayed frame (target: at most 2 s).

    python benchmarks/gui_startup.py [CLIP] [--repeat N] [--xvfb] [--baseline CHECKOUT]

Each run spawns a fresh interpreter that goes through the real launch path
(`emotiond.cli.main(["gui", CLIP])`), with the video widget's paint event
instrumented: it reports, on the system-wide monotonic clock, when the window first
painted (placeholder), when the first video frame was painted, and when the first frame
with an analysis result (face boxes) was painted, then exits.  The time counts from just
before the process is spawned, so interpreter start-up and every import are included.
Default platform: Qt's offscreen one (no display server); --xvfb runs it on an Xvfb
server started beforehand (as a desktop's X server is), through the X11 plugin.  Shared 2-core machines are noisy: the median
of several runs is reported, with the worst.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO / "assets" / "demo.mp4"
EVENTS = ("window", "first_frame", "first_result")


def child(clip: str) -> None:
    """Runs in the spawned process: instrument the video widget, then launch as a user would."""
    from emotiond.gui import widgets

    seen: set[str] = set()
    paint = widgets.VideoView.paintEvent

    def report(name: str) -> None:
        if name not in seen:
            seen.add(name)
            print(f"{name} {time.monotonic():.6f}", flush=True)

    def instrumented(self, event):
        paint(self, event)
        report("window")
        if self.has_frame():
            report("first_frame")
        if self.faces():
            report("first_result")
            os._exit(0)

    widgets.VideoView.paintEvent = instrumented
    from emotiond.cli import main

    sys.exit(main(["gui", clip]))


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """One X server for all runs (a desktop has its server running already)."""
    for n in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    server = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("Xvfb did not start (apt-get install xvfb)")
        time.sleep(0.05)
    return server, f":{n}"


def measure(clip: Path, display: str | None, timeout: float = 60.0, repo: Path = REPO) -> dict[str, float]:
    """One launch of the checkout ``repo`` (its own emotiond and its own copy of this script)."""
    cmd = [sys.executable, str(repo / "benchmarks" / "gui_startup.py"), "--child", str(clip)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo)
    if display:
        env.pop("QT_QPA_PLATFORM", None)
        env["DISPLAY"] = display
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=repo)
    out: dict[str, float] = {}
    try:
        for line in proc.stdout:
            name, _, stamp = line.strip().partition(" ")
            if name in EVENTS:
                out[name] = float(stamp) - t0
            if "first_result" in out or time.monotonic() - t0 > timeout:
                break
    finally:
        proc.kill()
        proc.wait()
    if "first_frame" not in out:
        raise SystemExit(f"no frame was displayed; stderr:\n{proc.stderr.read()[-2000:]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", nargs="?", default=str(DEFAULT_CLIP))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--xvfb", action="store_true", help="run under Xvfb (X11 platform plugin)")
    ap.add_argument("--baseline", metavar="CHECKOUT", type=Path,
                    help="another checkout (e.g. `git archive REV | tar -x -C DIR`): launched alternately with "
                    "this one, in the same run, and the ratios printed (a busy machine slows both alike)")
    ap.add_argument("--child", metavar="CLIP", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    clip = Path(args.clip)
    server, display = start_xvfb() if args.xvfb else (None, None)
    repos = {"this": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    runs: dict[str, list] = {k: [] for k in repos}
    try:
        measure(clip, display)  # warm the file cache; not counted
        for _ in range(args.repeat):
            for name, repo in repos.items():  # alternate: the same load for both
                runs[name].append(measure(clip, display, repo=repo))
    finally:
        if server is not None:
            server.terminate()
            server.wait()
    for label, rs in runs.items():
        where = f" — {repos[label]}" if args.baseline else ""
        print(f"emotiond gui {clip.name} ({'Xvfb' if args.xvfb else 'offscreen'}), {len(rs)} runs, {label}{where}, "
              "seconds from launch:")
        for name in EVENTS:
            vals = [r[name] for r in rs if name in r]
            if vals:
                print(f"  {name:<13} median {statistics.median(vals):5.2f}   worst {max(vals):5.2f}   "
                      f"({' '.join(f'{v:.2f}' for v in vals)})")
    this = runs["this"]
    worst = max(r["first_frame"] for r in this)
    print(f"first displayed frame: median {statistics.median(r['first_frame'] for r in this):.2f} s, worst {worst:.2f} s "
          f"(target ≤ 2 s: {'met' if worst <= 2.0 else 'NOT met'}{'; on a loaded machine see the ratio' if args.baseline else ''})")
    if args.baseline:
        for name in EVENTS:
            a = [r[name] for r in this if name in r]
            b = [r[name] for r in runs["baseline"] if name in r]
            if a and b:
                print(f"  {name:<13} this / baseline (medians): {statistics.median(a) / statistics.median(b):.2f}")


if __name__ == "__main__":
    main()
