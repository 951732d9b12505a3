"""One recording in a few numbers: the summary row of a log (``emotiond batch``'s summary.csv,
``emotiond report``'s tables).  Pure: records in, a dict out — the only I/O is reading a log
(:func:`read_log`) and reading/writing a batch folder's summary files (:func:`read_summary`,
:func:`write_summary`).

Time shares are weighted by how long each record stands for (the gap to the next record; the
last record counts for the median gap), so a variable frame rate does not bias them.  Frames
with no evidence (no face and no speech: ``label`` null) count as ``none`` — the honest
"uncertain" — rather than being dropped from the shares.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emotiond.errors import SourceError
from emotiond.labels import EMOTIONS

SUMMARY_JSONL = "summary.jsonl"  # the summary files of a batch folder
SUMMARY_CSV = "summary.csv"
SPEECH_THRESHOLD = 0.5  # the VAD's default threshold (config voice.vad_threshold)

# The summary row, in column order (summary.csv).  Input/log/status/error/wall are filled by
# the batch; the rest comes from the log.
COLUMNS = (
    ["input", "log", "status", "error", "duration", "frames", "results", "faces_seen", "face_time"]
    + [f"share_{e}" for e in EMOTIONS]
    + ["share_none", "top_emotion", "mean_valence", "mean_arousal", "speech_time", "warnings", "wall", "fps",
       "peak_rss_mb"]
)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL log.  A torn last line (a run killed mid-write) is skipped."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        raise SourceError(f"{path} is a CSV log; summaries and reports read JSONL logs",
                          "run again with `--log NAME.jsonl`")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such log", "pass a .jsonl log written by `emotiond run --log`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}", "pass a .jsonl log written by `emotiond run --log`") from None
    records = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # torn tail
            raise SourceError(f"{path}:{i + 1} is not a JSON line", "pass a .jsonl log written by `emotiond run --log`") from None
        if not isinstance(rec, dict) or "t" not in rec or "frame" not in rec:
            raise SourceError(f"{path}:{i + 1} is not an emotiond log record (no t/frame)",
                              "pass a .jsonl log written by `emotiond run --log`")
        records.append(rec)
    return records


def weights(records: list[dict[str, Any]]) -> list[float]:
    """Seconds each record stands for: the gap to the next one; the last one gets the median gap."""
    ts = [float(r["t"]) for r in records]
    gaps = [max(0.0, b - a) for a, b in zip(ts, ts[1:])]
    if not gaps:
        return [0.0] * len(ts)
    tail = sorted(gaps)[len(gaps) // 2]
    return gaps + [tail]


def summarize(records: list[dict[str, Any]], speech_threshold: float = SPEECH_THRESHOLD) -> dict[str, Any]:
    """The log's part of a summary row (see :data:`COLUMNS`).  Empty log → zeros and nulls."""
    w = weights(records)
    duration = sum(w)
    label_time = dict.fromkeys(EMOTIONS, 0.0)
    none_time = face_time = speech_time = 0.0
    va_w = v_sum = a_sum = 0.0
    ids: set[int] = set()
    for rec, dt in zip(records, w):
        label = rec.get("label")
        if label in label_time:
            label_time[label] += dt
        else:
            none_time += dt
        faces = rec.get("faces") or []
        if faces:
            face_time += dt
        ids.update(f["id"] for f in faces if f.get("id") is not None)
        sp = rec.get("speech")
        if sp is not None and sp >= speech_threshold:
            speech_time += dt
        if rec.get("valence") is not None and rec.get("arousal") is not None:
            va_w += dt
            v_sum += dt * rec["valence"]
            a_sum += dt * rec["arousal"]
    row: dict[str, Any] = {
        "duration": _r(duration),
        "frames": sum(1 for r in records if r.get("frame", -1) >= 0),
        "results": len(records),
        "faces_seen": len(ids),
        "face_time": _r(face_time),
    }
    for e in EMOTIONS:
        row[f"share_{e}"] = _r(label_time[e] / duration) if duration > 0 else None
    row["share_none"] = _r(none_time / duration) if duration > 0 else None
    top = max(EMOTIONS, key=lambda e: label_time[e])
    row["top_emotion"] = top if label_time[top] > 0 else None
    row["mean_valence"] = _r(v_sum / va_w) if va_w > 0 else None
    row["mean_arousal"] = _r(a_sum / va_w) if va_w > 0 else None
    row["speech_time"] = _r(speech_time)
    if duration == 0 and records:  # one still image: shares by count instead of time
        only = records[0].get("label")
        for e in EMOTIONS:
            row[f"share_{e}"] = 1.0 if only == e else 0.0
        row["share_none"] = 0.0 if only in EMOTIONS else 1.0
        row["top_emotion"] = only if only in EMOTIONS else None
        if records[0].get("valence") is not None:
            row["mean_valence"], row["mean_arousal"] = records[0]["valence"], records[0]["arousal"]
    return row


def face_summaries(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per face track: seconds in view, seconds per face label, and the mean of each action unit
    or blendshape where the log has them (``faces[].aus`` / ``faces[].blendshapes``)."""
    w = weights(records)
    tracks: dict[int, dict[str, Any]] = {}
    for rec, dt in zip(records, w):
        for f in rec.get("faces") or []:
            tid = f.get("id")
            tr = tracks.setdefault(tid, {"id": tid, "time": 0.0, "first": rec["t"], "last": rec["t"], "frames": 0,
                                         "labels": dict.fromkeys(EMOTIONS, 0.0), "_aus": {}, "_n_aus": 0})
            tr["time"] += dt
            tr["frames"] += 1
            tr["last"] = rec["t"]
            if f.get("label") in tr["labels"]:
                tr["labels"][f["label"]] += dt
            aus = f.get("aus") or f.get("blendshapes")
            if isinstance(aus, dict):
                tr["_n_aus"] += 1
                for k, v in aus.items():
                    if isinstance(v, (int, float)):
                        tr["_aus"][k] = tr["_aus"].get(k, 0.0) + float(v)
    out = []
    for tid in sorted(tracks, key=lambda x: (x is None, x)):
        tr = tracks[tid]
        n = tr.pop("_n_aus")
        sums = tr.pop("_aus")
        tr["aus"] = {k: _r(v / n) for k, v in sums.items()} if n else {}
        tr["time"] = _r(tr["time"])
        tr["labels"] = {k: _r(v) for k, v in tr["labels"].items()}
        out.append(tr)
    return out


def speech_segments(records: list[dict[str, Any]], speech_threshold: float = SPEECH_THRESHOLD) -> list[tuple[float, float]]:
    """(start, end) seconds where the voice-activity probability is at or above the threshold."""
    segs: list[tuple[float, float]] = []
    start = None
    w = weights(records)
    end = None
    for rec, dt in zip(records, w):
        sp = rec.get("speech")
        on = sp is not None and sp >= speech_threshold
        if on and start is None:
            start = rec["t"]
        if on:
            end = rec["t"] + dt
        elif start is not None:
            segs.append((start, end))
            start = None
    if start is not None:
        segs.append((start, end))
    return segs


def csv_value(v: Any) -> Any:
    return "" if v is None else v


def _r(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), 4)


def rows_in_order(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every column present, in :data:`COLUMNS` order (extra keys kept after)."""
    out = []
    for r in rows:
        row = {c: r.get(c) for c in COLUMNS}
        row.update({k: v for k, v in r.items() if k not in row})
        out.append(row)
    return out


def read_summary(out: Path) -> list[dict[str, Any]]:
    """The rows of ``out/summary.jsonl`` (none when it is missing; unreadable lines skipped)."""
    path = out / SUMMARY_JSONL
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(r, dict) and "input" in r:
                rows.append(r)
    return rows


def write_summary(out: Path, rows: list[dict[str, Any]]) -> None:
    """summary.jsonl and summary.csv, each written whole to a temporary name then renamed."""
    rows = rows_in_order(rows)
    text = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([csv_value(r.get(c)) for c in COLUMNS])
    for name, content in ((SUMMARY_JSONL, text), (SUMMARY_CSV, buf.getvalue())):
        tmp = out / f".{name}.part"
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
        os.replace(tmp, out / name)
