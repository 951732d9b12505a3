"""A screenshot of the window on a real clip: ``python -m emotiond.gui.screenshot``.

    scripts/screenshot.sh [CLIP] [--at SECONDS] [--out docs/screenshot.png]

The window runs as a user sees it (1280x720, the clip played at media time) until
the clip reaches ``--at`` seconds, then the window is saved as PNG.  Under Xvfb
(scripts/screenshot.sh) it goes through the real X11 platform plugin; with
``QT_QPA_PLATFORM=offscreen`` it works without any display server.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emotiond.gui.screenshot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", nargs="?", default="demo", help="a media file or session (default: the demo clip)")
    ap.add_argument("--at", type=float, default=14.0, help="media time (s) at which to take it (default 14)")
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"), help="PNG to write")
    ap.add_argument("--size", default="1280x720", help="window size (default 1280x720)")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    args = ap.parse_args(argv)

    from emotiond.gui.app import create_application

    app = create_application()
    from PySide6.QtCore import QTimer

    from emotiond.config import load_config
    from emotiond.gui.main_window import MainWindow

    window = MainWindow(load_config())
    w, h = (int(v) for v in args.size.lower().split("x"))
    window.resize(w, h)
    window.show()
    window.open_spec(args.clip)
    t0 = time.monotonic()
    outcome: dict[str, object] = {}

    def check() -> None:
        up = window.last_update
        reached = up is not None and up.result is not None and up.result.t >= args.at
        finished = up is not None and up.state in ("ended", "error")
        if reached or finished or time.monotonic() - t0 > args.timeout:
            timer.stop()
            QTimer.singleShot(150, shoot)  # one more poll and paint
            outcome["state"] = up.state if up else None
            outcome["t"] = up.result.t if up is not None and up.result is not None else None

    def shoot() -> None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        outcome["saved"] = window.grab().save(str(out))
        app.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(50)
    app.exec()
    window.shutdown()
    if not outcome.get("saved"):
        print(f"screenshot: could not write {args.out}", file=sys.stderr)
        return 1
    print(f"screenshot: {args.out} ({w}x{h}, platform {app.platformName()}, clip at "
          f"{outcome.get('t') or 0:.1f} s, state {outcome.get('state')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
