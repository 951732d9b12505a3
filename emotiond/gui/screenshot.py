"""Screenshots of the real window, driven as a user would: ``python -m emotiond.gui.screenshot``.

    scripts/screenshot.sh [--out docs/screenshots] [--multi IMAGE] [--sizes 1600x1000,800x600]

Under Xvfb (scripts/screenshot.sh) it goes through the real X11 platform plugin and fonts,
and menus are captured from the screen; with ``QT_QPA_PLATFORM=offscreen`` it works
without a display server (menus are then grabbed on their own).  For each window size it
plays the demo clip at media time, records a few seconds (so the session browser has a
session), and saves:

* ``main-WxH.png``      the window on the demo clip;
* ``multiface-WxH.png`` a group photo with one face selected (``--multi``; by default the
  product owner's ``../shared/media/multi_face.jpg`` beside the repo, skipped if absent);
* ``menu-WxH.png``      the File menu open;
* ``settings.png``, ``sessions.png``, ``summary.png`` (once, at the first size): the
  Settings dialog, the session browser and the end-of-run summary (after a seek near the
  end of the clip).

PNGs are palette-quantised (256 colours) to stay a few hundred kB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _save(image, path: Path) -> int:
    """Save ``image`` (QImage) as a 256-colour PNG; returns its size in bytes."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage

    small = image.convertToFormat(QImage.Format.Format_Indexed8, Qt.ImageConversionFlag.DiffuseDither)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not small.save(str(path), "PNG", 0):  # 0: smallest file
        raise SystemExit(f"screenshot: could not write {path}")
    return path.stat().st_size


class Tour:
    """Steps run one after the other from the event loop; each waits for a condition."""

    def __init__(self, app, timeout: float):
        self.app = app
        self.steps: list[tuple[str, object, object]] = []
        self.timeout = timeout
        self.failed: str | None = None

    def add(self, name: str, until, then) -> None:
        self.steps.append((name, until, then))

    def run(self) -> None:
        from PySide6.QtCore import QTimer

        state = {"i": 0, "t0": time.monotonic()}

        def tick() -> None:
            if state["i"] >= len(self.steps):
                timer.stop()
                self.app.quit()
                return
            name, until, then = self.steps[state["i"]]
            try:
                ready = until()
            except Exception as exc:  # noqa: BLE001
                ready, self.failed = False, f"{name}: {exc!r}"
            if self.failed:
                timer.stop()
                self.app.quit()
                return
            if ready:
                then()
                state["i"] += 1
                state["t0"] = time.monotonic()
            elif time.monotonic() - state["t0"] > self.timeout:
                self.failed = f"timed out waiting for: {name}"
                timer.stop()
                self.app.quit()

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(50)
        self.app.exec()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emotiond.gui.screenshot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshots"), help="folder for the PNGs")
    ap.add_argument("--clip", default="demo", help="the clip of the main view (default: the demo clip)")
    ap.add_argument("--multi", default=str(REPO.parent / "shared" / "media" / "multi_face.jpg"),
                    help="a group photo for the multi-face view")
    ap.add_argument("--sizes", default="1600x1000,800x600", help="window sizes, comma-separated")
    ap.add_argument("--at", type=float, default=9.0, help="media time (s) of the main view")
    ap.add_argument("--timeout", type=float, default=120.0, help="give up a step after this many seconds")
    args = ap.parse_args(argv)

    from emotiond.gui.app import create_application

    app = create_application()
    from PySide6.QtCore import QPoint

    from emotiond.config import load_config
    from emotiond.gui.main_window import MainWindow

    out = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="emotiond-shots-"))
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    config = load_config(overrides={"record.folder": str(work / "sessions")})
    window = MainWindow(config, state_dir=work / "state")
    window.show()
    on_screen = app.platformName() not in ("offscreen", "minimal")
    tour = Tour(app, args.timeout)
    written: list[str] = []

    def shot(name: str, widget=None) -> None:
        app.processEvents()
        target = widget or window
        if on_screen:  # the screen: includes popups (menus) over the window
            geo = target.frameGeometry()
            image = app.primaryScreen().grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height()).toImage()
        else:
            image = target.grab().toImage()
        size = _save(image, out / name)
        written.append(f"{name} ({image.width()}x{image.height()}, {size // 1024} kB)")

    def reached(t: float):
        def ok() -> bool:
            up = window.last_update
            return up is not None and up.result is not None and up.result.t - window._origin >= t
        return ok

    def menu_shot(name: str) -> None:
        menu = window.menuBar().actions()[0].menu()
        pos = window.menuBar().mapToGlobal(QPoint(0, window.menuBar().height()))
        menu.popup(pos)
        app.processEvents()
        time.sleep(0.3)
        app.processEvents()
        if on_screen:
            shot(name)
        else:
            size = _save(menu.grab().toImage(), out / name)
            written.append(f"{name} (menu alone, {size // 1024} kB)")
        menu.hide()

    tour_state: dict = {}  # the dialogs the tour opened
    first = True
    for w, h in sizes:
        tag = f"{w}x{h}"

        def start(w=w, h=h) -> None:
            window.showNormal()
            window.resize(w, h)
            window.move(0, 0)
            window.open_spec(args.clip)

        tour.add(f"resize to {tag}", lambda: True, start)
        if first:
            tour.add("3 s of the clip, then record", reached(3.0), lambda: window.record_button.click())
            tour.add("6 s, stop recording", reached(6.0), lambda: window.record_button.click())
        tour.add(f"{args.at} s of the clip", reached(args.at), window.banner.hide)
        tour.add("main view", lambda: True, lambda tag=tag: shot(f"main-{tag}.png"))
        tour.add("the File menu", lambda: True, lambda tag=tag: menu_shot(f"menu-{tag}.png"))
        if first:
            def settings() -> None:
                d = window.settings_dialog(path=work / "config.toml")
                d.resize(560, d.sizeHint().height())
                tour_state["settings"] = d

            tour.add("settings", lambda: True, settings)
            tour.add("settings shown", lambda: tour_state["settings"].isVisible(),
                     lambda: (shot("settings.png", tour_state["settings"]), tour_state["settings"].reject()))
            tour.add("a saved session", lambda: bool(window.saved_sessions),
                     lambda: tour_state.__setitem__("browser", window.open_session_browser()))
            tour.add("session browser shown", lambda: tour_state["browser"].isVisible(),
                     lambda: (shot("sessions.png", tour_state["browser"]), tour_state["browser"].reject()))
            tour.add("seek near the end", lambda: True, lambda: window.seek(window._origin + (window._duration or 20) - 3.0))
            tour.add("the end of the clip", lambda: window.last_update is not None and window.last_update.state == "ended",
                     lambda: tour_state.__setitem__("summary", window.show_summary()))
            tour.add("summary shown", lambda: tour_state["summary"] is not None and tour_state["summary"].isVisible(),
                     lambda: (shot("summary.png", tour_state["summary"]), tour_state["summary"].close()))
        if Path(args.multi).is_file():
            def multi() -> None:
                window.open_spec(args.multi)

            def select() -> None:
                faces = sorted(window.video.faces(), key=lambda b: b.bbox[0])
                others = [b for b in faces if not b.primary]
                if others:
                    window.select_face(others[len(others) // 2].track_id)

            tour.add("the group photo", lambda: True, multi)
            tour.add("faces found", lambda: window.last_update is not None and window.last_update.state == "ended"
                     and len(window.video.faces()) > 1, select)
            tour.add("hide the banner", lambda: True, window.banner.hide)
            tour.add("multi-face view", lambda: True, lambda tag=tag: shot(f"multiface-{tag}.png"))
            tour.add("back to the fused result", lambda: True, lambda: window.select_face(-1))
        first = False

    t0 = time.monotonic()
    tour.run()
    window.shutdown()
    for line in written:
        print(f"screenshot: {out / line}")
    if tour.failed:
        print(f"screenshot: {tour.failed}", file=sys.stderr)
        return 1
    print(f"screenshot: {len(written)} images in {time.monotonic() - t0:.0f} s (platform {app.platformName()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
