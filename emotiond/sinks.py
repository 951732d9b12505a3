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


def _dist(p: np.ndarray | None) -> dict[str, float] | None:
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
        }
        if face_features:
            from emotiond.face.landmarks import BLENDSHAPES

            face["blendshapes"] = {n: _r(v) for n, v in zip(BLENDSHAPES, f.blendshapes)}
            face["landmarks"] = np.round(f.landmarks.astype(np.float64), 2).tolist()
        faces.append(face)
    fused = result.fused
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
    }


class Sink(Protocol):
    def write(self, result: FrameResult) -> None: ...

    def close(self) -> None: ...


def _open_log(path: Path, mode: str, newline: str | None = None):
    """mode: "new" (refuse an existing non-empty file), "append" or "overwrite"."""
    path = Path(path)
    if mode == "new" and path.exists() and path.stat().st_size > 0:
        raise SinkError(
            f"{path} already exists and is not empty",
            "pass --append to add to it, --overwrite to replace it, or choose another name",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a" if mode == "append" else "w", encoding="utf-8", newline=newline)
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc.strerror}", "check the folder exists and is writable") from None


def _write_error(path: Path, exc: OSError) -> SinkError:
    if exc.errno == errno.ENOSPC:
        return SinkError(f"the disk is full while writing {path}", "free space; everything logged so far was kept")
    return SinkError(f"cannot write {path}: {exc.strerror}", "everything logged so far was kept")


class JsonlSink:
    face_features = False  # also log blendshapes and landmarks per face (--face-features)

    def __init__(self, path: str | Path, mode: str = "new"):
        self.path = Path(path)
        self._fh = _open_log(self.path, mode)
        self._owns = True

    @classmethod
    def to_stream(cls, stream) -> JsonlSink:
        """JSON lines on an open text stream (stdout); the stream is not closed."""
        sink = cls.__new__(cls)
        sink.path = Path(getattr(stream, "name", "<stream>"))
        sink._fh, sink._owns = stream, False
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
    faces = record["faces"] or [None]
    rows = []
    for f in faces:
        if f is None:
            head = [record["t"], record["frame"]] + [None] * 7 + [None] * len(EMOTIONS)
            extra = [None] * len(FACE_EXTRA)
        else:
            head = [record["t"], record["frame"], f["id"], *f["bbox"], f["quality"], f["label"]] + d(f["face"])
            pose = f.get("pose") or {}
            aus = f.get("aus") or {}
            extra = [f.get("reliability"), pose.get("yaw"), pose.get("pitch"), pose.get("roll")]
            extra += [aus.get(n) for n in _au_names()]
        rows.append(head + tail + extra)
    return rows


class CsvSink:
    def __init__(self, path: str | Path, mode: str = "new"):
        self.path = Path(path)
        fresh = mode != "append" or not self.path.exists() or self.path.stat().st_size == 0
        self._fh = _open_log(self.path, mode, newline="")
        if fresh:
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


def open_log(path: str | Path, mode: str = "new") -> Sink:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return CsvSink(path, mode)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return JsonlSink(path, mode)
    raise SinkError(f"unknown log format {suffix or '(no extension)'} for {path}", "name the log *.jsonl or *.csv")
