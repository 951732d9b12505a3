"""Where results go: JSONL and CSV logs (schema in docs/log-format.md).

Every record is written and flushed as soon as it exists, so a crash loses at
most the line being written; an existing log is never truncated unless the
user asks for it (``--overwrite``) — ``--append`` adds to it instead.  A full
disk or a vanished folder becomes a :class:`~emotiond.errors.SinkError`.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emotiond.errors import SinkError
from emotiond.labels import EMOTIONS
from emotiond.types import FrameResult

SCHEMA = "emotiond.frame/1"
DIGITS = 4  # fixed rounding keeps logs small and byte-identical across replays


def _r(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, DIGITS) if math.isfinite(x) else None


def _dist(p: np.ndarray | None) -> dict[str, float | None] | None:
    if p is None:
        return None
    return {name: _r(v) for name, v in zip(EMOTIONS, p)}


def to_record(result: FrameResult, face_features: bool = False) -> dict[str, Any]:
    """The JSON-able record of one result (the JSONL line, the GUI's model).  With
    ``face_features`` each face also carries its 52 blendshapes and 478 landmarks."""
    from emotiond.face.aus import as_dict as action_units

    faces = []
    for f in result.faces:
        label = f.label
        if label is None and f.emotion is not None:
            label = EMOTIONS[int(np.argmax(f.emotion))]
        face = {
            "id": f.track_id,
            "bbox": [_r(v) for v in f.bbox],
            "quality": _r(f.quality),
            "reliability": _r(f.reliability),
            "pose": {k: round(float(v), 1) for k, v in zip(("yaw", "pitch", "roll"), f.pose)} if f.pose else None,
            "face": _dist(f.emotion),
            "label": label,
            "aus": {k: _r(v) for k, v in action_units(f.blendshapes).items()},
            "speaking": _r(f.speaking),
            **_person(result.fused_by_track.get(f.track_id)),
        }
        if face_features:
            from emotiond.face.landmarks import BLENDSHAPES

            face["blendshapes"] = {n: _r(v) for n, v in zip(BLENDSHAPES, f.blendshapes)}
            face["landmarks"] = np.round(f.landmarks.astype(np.float64), 2).tolist()
        faces.append(face)
    fused = result.fused
    off = result.offscreen
    return {
        "t": _r(result.t),
        "frame": result.frame,
        "faces": faces,
        "voice": _dist(result.voice),
        "speech": _r(result.speech),
        "voice_arousal": _r(result.voice_arousal),
        "primary": result.primary,
        "fused": _dist(fused.probs) if fused else None,
        "label": fused.label if fused else None,
        "confidence": _r(fused.confidence) if fused else None,
        "shares": {k: _r(v) for k, v in fused.shares.items()} if fused else None,
        "valence": _r(fused.valence) if fused else None,
        "arousal": _r(fused.arousal) if fused else None,
        "faces_unanalysed": result.faces_unanalysed,
        "offscreen": None if off is None else {
            "fused": _dist(off.probs), "label": off.label, "confidence": _r(off.confidence),
            "valence": _r(off.valence), "arousal": _r(off.arousal),
        },
    }


def _person(fused) -> dict[str, Any]:
    """One face's own fused result (its face, plus its voice while it is the speaker)."""
    if fused is None:
        return {"fused": None, "label_fused": None, "valence": None, "arousal": None, "shares": None}
    return {
        "fused": _dist(fused.probs),
        "label_fused": fused.label,
        "valence": _r(fused.valence),
        "arousal": _r(fused.arousal),
        "shares": {k: _r(v) for k, v in fused.shares.items()},
    }


class Sink(Protocol):
    def write(self, result: FrameResult) -> None: ...

    def close(self) -> None: ...


_TAIL = 1 << 16  # bytes read from the end of a log to find its last complete line


def _open_log(path: Path, mode: str, newline: str | None = None, kind: str = "jsonl", notes: list[str] | None = None):
    """Open a log for writing; mode: "new" (refuse an existing non-empty file), "append" or
    "overwrite".  Holds an exclusive advisory lock (``flock``) for as long as it is open, so a
    second emotiond writing the same file is refused before anything is changed; ``overwrite``
    truncates only once the lock is held.  ``append`` checks the file is a log of the same
    ``kind`` ("jsonl" or "csv": a CSV must have this version's header) and removes a partial last
    line left by an interrupted run (said in ``notes``).  FIFOs and devices (``/dev/stdout``) are
    written as they are, without checks; a FIFO with no reader is refused instead of waiting."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc.strerror}", "check the folder exists and is writable") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise SinkError(f"{path} is a folder", "pass a file name ending in .jsonl or .csv to --log")
    regular = st is None or stat.S_ISREG(st.st_mode)
    if mode == "new" and regular and st is not None and st.st_size > 0:
        raise SinkError(
            f"{path} already exists and is not empty",
            "pass --append to add to it, --overwrite to replace it, or choose another name",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        if not regular:
            flags |= os.O_NONBLOCK  # a FIFO without a reader: ENXIO now rather than a hang
        elif mode == "new":
            flags |= os.O_EXCL if st is None else 0  # of several runs creating the same log, one wins
        if mode == "append":
            flags |= os.O_APPEND
        fd = os.open(path, flags, 0o666)
    except FileExistsError:
        raise SinkError(f"{path} was just created by another run", "choose another log name") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise SinkError(f"{path} is a FIFO with no reader", "start the reader first, or log to a file") from None
        raise SinkError(f"cannot write {path}: {exc.strerror}", "check the folder exists and is writable") from None
    try:
        if not regular:
            os.set_blocking(fd, True)
        else:
            _lock(fd, path)
            size = os.fstat(fd).st_size
            if mode == "new" and size > 0:  # another run got here first and has written since
                raise SinkError(f"{path} already exists and is not empty",
                                "pass --append to add to it, --overwrite to replace it, or choose another name")
            if mode == "overwrite":
                os.ftruncate(fd, 0)
            elif mode == "append" and size > 0:
                _check_for_append(path, kind, notes)
        return os.fdopen(fd, "a" if mode == "append" else "w", encoding="utf-8", newline=newline)
    except BaseException:
        os.close(fd)
        raise


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SinkError(f"{path} is being written by another emotiond run",
                        "wait for that run to end, or choose another log name") from None
    except OSError:  # a file system without locks (some network mounts): carry on unlocked
        pass


def _check_for_append(path: Path, kind: str, notes: list[str] | None) -> None:
    """Refuse a file that is not an emotiond log of this kind; cut a partial last line."""
    with open(path, "rb+") as fh:
        head = fh.read(4096)
        first = head.split(b"\n", 1)[0]
        header = ",".join(CSV_COLUMNS).encode()
        if kind == "csv":
            if first.rstrip(b"\r") != header:
                what = "a JSONL log" if first.lstrip().startswith(b"{") else "a CSV with another header"
                raise SinkError(f"cannot append to {path}: it is {what}, not an emotiond CSV log of this version",
                                "choose another log name, or --overwrite to replace it")
        else:
            try:
                ok = isinstance(json.loads(first), dict)  # JSON lines (a note of the user's is fine)
            except ValueError:
                ok = b"\n" not in head and first.lstrip().startswith(b"{")  # one partial first line
            if not ok:
                what = "a CSV log" if first.startswith(b"t,frame,") else "not a JSON-lines file"
                raise SinkError(f"cannot append to {path}: it is {what}",
                                "choose another log name (.jsonl for JSON lines, .csv for CSV), or --overwrite to replace it")
        size = fh.seek(0, os.SEEK_END)
        start = max(0, size - _TAIL)
        fh.seek(start)
        tail = fh.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        if cut < 0 and start > 0:
            raise SinkError(f"cannot append to {path}: its last line is longer than {_TAIL} bytes and incomplete",
                            "repair the file by hand, or log to another file")
        keep = start + cut + 1 if cut >= 0 else 0
        fh.truncate(keep)
        if notes is not None:
            notes.append(f"{path}: removed an incomplete last line ({size - keep} bytes) left by an interrupted run "
                         "before appending")


def _write_error(path: Path, exc: OSError) -> SinkError:
    if exc.errno == errno.ENOSPC:
        return SinkError(f"the disk is full while writing {path}", "free space; everything logged so far was kept")
    return SinkError(f"cannot write {path}: {exc.strerror}", "everything logged so far was kept")


class JsonlSink:
    face_features = False  # also log blendshapes and landmarks per face (--face-features)

    def __init__(self, path: str | Path, mode: str = "new"):
        self.path = Path(path)
        self.notes: list[str] = []  # what opening the log repaired (the CLI prints them)
        self._fh = _open_log(self.path, mode, kind="jsonl", notes=self.notes)
        self._owns = True

    @classmethod
    def to_stream(cls, stream) -> JsonlSink:
        """JSON lines on an open text stream (stdout); the stream is not closed."""
        sink = cls.__new__(cls)
        sink.path = Path(getattr(stream, "name", "<stream>"))
        sink._fh, sink._owns = stream, False
        sink.notes = []
        return sink

    def write(self, result: FrameResult) -> None:
        self.write_record(to_record(result, self.face_features))

    def write_record(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        try:
            self._fh.write(line)
            self._fh.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def close(self) -> None:
        if not self._owns:
            return
        try:
            self._fh.close()
        except OSError:
            pass


def _au_names() -> tuple[str, ...]:
    from emotiond.face.aus import NAMES

    return NAMES


FACE_EXTRA = ["reliability", "yaw", "pitch", "roll"] + [f"au_{n}" for n in _au_names()]

CSV_COLUMNS = (
    ["t", "frame", "face_id", "x0", "y0", "x1", "y1", "quality", "face_label"]
    + [f"face_{e}" for e in EMOTIONS]
    + [f"voice_{e}" for e in EMOTIONS]
    + ["speech", "primary", "label", "confidence"]
    + [f"fused_{e}" for e in EMOTIONS]
    + ["share_face", "share_voice", "valence", "arousal"]
    + ["voice_arousal"]
    + ["faces_unanalysed"]
    + FACE_EXTRA
    # added with per-person fusion (after the original columns, so old readers keep working)
    + ["speaking", "person_label", "person_valence", "person_arousal", "person_share_voice"]
    + [f"person_{e}" for e in EMOTIONS]
    + ["offscreen_label", "offscreen_confidence"]
)


def csv_rows(record: dict[str, Any]) -> list[list[Any]]:
    """One row per face (frame-level columns repeated); one row with empty face columns when no face."""
    def d(dist):
        return [dist.get(e) if dist else None for e in EMOTIONS]

    shares = record.get("shares") or {}
    tail = (
        d(record["voice"])
        + [record["speech"], record.get("primary"), record["label"], record["confidence"]]
        + d(record["fused"])
        + [shares.get("face"), shares.get("voice"), record["valence"], record["arousal"]]
        + [record.get("voice_arousal")]
        + [record.get("faces_unanalysed", 0)]
    )
    off = record.get("offscreen") or {}
    frame_tail = [off.get("label"), off.get("confidence")]
    faces = record["faces"] or [None]
    rows = []
    for f in faces:
        if f is None:
            head = [record["t"], record["frame"]] + [None] * 7 + [None] * len(EMOTIONS)
            extra = [None] * len(FACE_EXTRA)
            person = [None] * (5 + len(EMOTIONS))
        else:
            head = [record["t"], record["frame"], f["id"], *f["bbox"], f["quality"], f["label"]] + d(f["face"])
            pose = f.get("pose") or {}
            aus = f.get("aus") or {}
            extra = [f.get("reliability"), pose.get("yaw"), pose.get("pitch"), pose.get("roll")]
            extra += [aus.get(n) for n in _au_names()]
            person = [f.get("speaking"), f.get("label_fused"), f.get("valence"), f.get("arousal"),
                      (f.get("shares") or {}).get("voice")] + d(f.get("fused"))
        rows.append(head + tail + extra + person + frame_tail)
    return rows


class CsvSink:
    def __init__(self, path: str | Path, mode: str = "new"):
        self.path = Path(path)
        self.notes: list[str] = []
        self._fh = _open_log(self.path, mode, newline="", kind="csv", notes=self.notes)
        st = os.fstat(self._fh.fileno())
        if (st.st_size == 0) if stat.S_ISREG(st.st_mode) else mode != "append":
            self._emit([CSV_COLUMNS])

    def _emit(self, rows) -> None:
        buf = io.StringIO()
        csv.writer(buf).writerows([["" if v is None else v for v in row] for row in rows])
        try:
            self._fh.write(buf.getvalue())
            self._fh.flush()
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def write(self, result: FrameResult) -> None:
        self._emit(csv_rows(to_record(result)))

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass


def check_not_source(log: str | Path, source: str | Path, what: str = "log") -> None:
    """Refuse a log that is the source file itself (or a link to it), or lies inside the source
    folder (a recorded session, an image folder): ``--overwrite`` would destroy the input.
    ``what`` names the output in the message (the GUI's export, snapshot and summary)."""
    log, source = Path(log), Path(source)
    try:
        if not source.exists():
            return
        log_real = log.resolve()
        src_real = source.resolve()
    except OSError:
        return
    same = log_real == src_real
    if not same and log.exists():
        try:
            same = os.path.samefile(log, source)
        except OSError:
            pass
    if same:
        raise SinkError(f"the {what} {log} is the source {source}", f"write the {what} to another file")
    if src_real.is_dir() and src_real in log_real.parents:
        raise SinkError(f"the {what} {log} is inside the source folder {source}", f"write the {what} outside that folder")


def open_log(path: str | Path, mode: str = "new") -> Sink:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return CsvSink(path, mode)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return JsonlSink(path, mode)
    raise SinkError(f"unknown log format {suffix or '(no extension)'} for {path}", "name the log *.jsonl or *.csv")
