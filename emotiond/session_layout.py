"""The one place that knows what a recorded session folder looks like.  Pure, tiny.

Used by the recorder (:mod:`emotiond.recording`), the session reader
(:mod:`emotiond.sources.session`), the CLI and the GUI.  See docs/recording.md.

    <session>/media.mp4          fragmented MP4: the video and audio as captured
    <session>/frames.txt         the source's index of each frame in media.mp4, one per line
    <session>/predictions.jsonl  the log of the run that recorded it (docs/log-format.md)
    <session>/metadata.json      schema emotiond.session/1: source, devices, models, counters, status
"""

from __future__ import annotations

import time
from pathlib import Path

from emotiond.errors import SinkError

SCHEMA = "emotiond.session/1"
MEDIA_FILE = "media.mp4"
METADATA_FILE = "metadata.json"
PREDICTIONS_FILE = "predictions.jsonl"
FRAMES_FILE = "frames.txt"
FOLDER_PREFIX = "session-"


def is_session(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / METADATA_FILE).is_file()


def new_session_folder(parent: str | Path) -> Path:
    """A free, time-stamped ``session-YYYYmmdd-HHMMSS[-n]`` folder name inside ``parent``
    (not created)."""
    parent = Path(parent).expanduser()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        cand = parent / (f"{FOLDER_PREFIX}{stamp}" + (f"-{n}" if n else ""))
        if not cand.exists():
            return cand
    raise SinkError(f"cannot find a free session name in {parent}", "clean up the folder")


def session_folder(target: str | Path) -> Path:
    """Where a new session goes for ``--record TARGET``: TARGET itself when it does not
    exist or is an empty folder, else a new time-stamped folder inside it."""
    target = Path(target).expanduser()
    if target.exists() and not target.is_dir():
        raise SinkError(f"{target} is a file", "pass a folder to --record (it is created when missing)")
    if not target.exists() or not any(target.iterdir()):
        return target
    return new_session_folder(target)
