"""What the user names → what to open; and the crash report every front end writes.  Qt-free."""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

from emotiond.errors import EmotiondError, SourceError

DEMO = "demo"


def demo_path() -> Path:
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "_assets" / "demo.mp4", here.parent / "assets" / "demo.mp4"):
        if candidate.is_file():
            return candidate
    raise SourceError("the bundled demo clip assets/demo.mp4 is missing", "restore it with `git checkout -- assets/`")


def resolve_source_spec(spec: str | None, config) -> str:
    """``auto`` (default): the camera when one is present, else the demo clip; ``demo``: the demo clip."""
    if spec in (None, "auto"):
        try:
            from emotiond.capture.devices import camera_present

            if camera_present(config.capture.camera):
                return "camera"
        except (ImportError, EmotiondError):
            pass
        return str(demo_path())
    if spec == DEMO:
        return str(demo_path())
    return spec


def crash_report(exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected exception (a bug) where the user can attach it."""
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emotiond"
        base.mkdir(parents=True, exist_ok=True)
        path = base / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        return path
    except OSError:
        return None


def internal_error(exc: BaseException) -> EmotiondError:
    """An unexpected exception as something a window can show: where the report is."""
    report = crash_report(exc)
    where = f"details are in {report}" if report else "no crash report could be written"
    return EmotiondError(
        f"internal error: {exc.__class__.__name__}: {exc}",
        f"this is a bug in emotiond; {where} — please attach it to a bug report",
    )
