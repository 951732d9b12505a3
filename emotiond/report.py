"""``emotiond report``: one self-contained HTML file from a log, a recorded session or a batch folder.

Per recording: the fused emotion over time, valence/arousal over time with the speech segments,
the path on the valence/arousal circumplex, and per face track the time per emotion (and the mean
action units / blendshapes where the log has them).  For a batch: the set-level table and the
distributions across recordings.  Figures are matplotlib (Agg) PNGs embedded as base64 data URIs;
the page loads nothing from anywhere, so it opens offline in any browser.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from emotiond import __version__
from emotiond.errors import SinkError, SourceError
from emotiond.labels import CIRCUMPLEX, EMOTION_COLORS, EMOTIONS
from emotiond.summary import (
    SUMMARY_JSONL,
    face_summaries,
    read_log,
    read_summary,
    rows_in_order,
    speech_segments,
    summarize,
)

NONE_COLOR = "#e0e0e0"
VALENCE_COLOR = "#00897b"
AROUSAL_COLOR = "#e64a19"
MAX_POINTS = 4000  # longer logs are thinned for plotting (the tables use every record)


# -- what was named ----------------------------------------------------------------------------------
def load_target(target: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """(kind, recordings): kind is "log", "session" or "batch"; each recording is a dict with
    ``name``, ``records`` (None when it has no log) and its summary ``row``."""
    path = Path(target).expanduser()
    if path.is_file():
        records = read_log(path)
        return "log", [_recording(path.name, path, records)]
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder",
                          "pass a .jsonl log, a recorded session folder or an `emotiond batch` output folder")
    if (path / "metadata.json").is_file():
        log = path / "predictions.jsonl"
        if not log.is_file():
            raise SourceError(f"the session {path} has no predictions.jsonl",
                              f"make one with `emotiond replay {path} --clock deterministic --log {path}/predictions.jsonl`")
        return "session", [_recording(path.name, log, read_log(log))]
    rows = read_summary(path) if (path / SUMMARY_JSONL).is_file() else [
        {"input": str(p), "log": p.name, "status": "ok"} for p in sorted(path.glob("*.jsonl")) if not p.name.startswith(".")]
    if not rows:
        raise SourceError(f"{path} holds no logs (no summary.jsonl, no *.jsonl)",
                          "pass a .jsonl log, a recorded session folder or an `emotiond batch` output folder")
    recs = []
    for r in rows:
        log = path / r["log"] if r.get("log") and r.get("status") == "ok" else None
        name = r["log"][: -len(".jsonl")] if r.get("log", "").endswith(".jsonl") else Path(r["input"]).name
        if log is not None and log.is_file():
            item = _recording(name, log, read_log(log))
            item["row"] = {**item["row"], **{k: v for k, v in r.items() if k not in item["row"] or item["row"][k] is None}}
        else:
            item = {"name": name, "log": None, "records": None, "row": rows_in_order([r])[0]}
        recs.append(item)
    return "batch", recs


def _recording(name: str, log: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    row = rows_in_order([{"input": name, "log": log.name, "status": "ok", **summarize(records)}])[0]
    return {"name": name, "log": log, "records": records, "row": row}


# -- figures -----------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _thin(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    step = max(1, len(records) // MAX_POINTS)
    return records[::step]


def timeline_figure(records: list[dict[str, Any]]) -> str:
    """Fused emotion probabilities over time (stacked), the label strip, valence/arousal and speech."""
    plt = _plt()
    recs = _thin(records)
    t = np.array([r["t"] for r in recs], dtype=float)
    probs = np.array([[(r.get("fused") or {}).get(e, 0.0) or 0.0 for e in EMOTIONS] for r in recs], dtype=float)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    if len(t) > 1:
        ax1.stackplot(t, probs.T, colors=[EMOTION_COLORS[e] for e in EMOTIONS], labels=EMOTIONS, step="post")
    else:
        ax1.bar([0], [1], bottom=0, width=0.2, color=NONE_COLOR)
        bottom = 0.0
        for e, p in zip(EMOTIONS, probs[0] if len(probs) else []):
            ax1.bar([0], [p], bottom=bottom, width=0.2, color=EMOTION_COLORS[e], label=e)
            bottom += p
    none = np.array([r.get("fused") is None for r in recs])
    if none.any() and len(t) > 1:
        ax1.fill_between(t, 0, 1, where=none, step="post", color=NONE_COLOR, label="no evidence", linewidth=0)
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("fused p")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax1.set_title("fused emotion over time", fontsize=10, loc="left")
    for s, e in speech_segments(records):
        ax2.axvspan(s, e, color="#cfd8dc", alpha=0.8, linewidth=0)
    val = np.array([np.nan if r.get("valence") is None else r["valence"] for r in recs], dtype=float)
    aro = np.array([np.nan if r.get("arousal") is None else r["arousal"] for r in recs], dtype=float)
    ax2.plot(t, val, color=VALENCE_COLOR, label="valence", linewidth=1.4, marker="o" if len(t) == 1 else None)
    ax2.plot(t, aro, color=AROUSAL_COLOR, label="arousal", linewidth=1.4, marker="o" if len(t) == 1 else None)
    ax2.axhline(0, color="#9e9e9e", linewidth=0.6)
    ax2.set_ylim(-1, 1)
    ax2.set_xlabel("seconds")
    ax2.set_ylabel("valence / arousal")
    ax2.plot([], [], color="#cfd8dc", linewidth=6, label="speech")
    ax2.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return _png(fig)


def _circumplex_axes(ax) -> None:
    ax.add_patch(_plt().Circle((0, 0), 1.0, fill=False, color="#bdbdbd", linewidth=0.8))
    ax.axhline(0, color="#bdbdbd", linewidth=0.6)
    ax.axvline(0, color="#bdbdbd", linewidth=0.6)
    for e, (v, a) in CIRCUMPLEX.items():
        ax.scatter([v], [a], marker="s", s=30, color=EMOTION_COLORS[e], edgecolor="#424242", zorder=3)
        ax.annotate(e, (v, a), textcoords="offset points", xytext=(4, 4), fontsize=7, color="#424242")
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")


def circumplex_figure(records: list[dict[str, Any]]) -> str:
    """The recording's path on the valence/arousal plane, coloured by time."""
    plt = _plt()
    recs = [r for r in _thin(records) if r.get("valence") is not None and r.get("arousal") is not None]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    _circumplex_axes(ax)
    if recs:
        t = [r["t"] for r in recs]
        sc = ax.scatter([r["valence"] for r in recs], [r["arousal"] for r in recs], c=t, cmap="viridis", s=8, zorder=4)
        fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04, label="seconds")
    else:
        ax.text(0, -0.5, "no valence/arousal (no evidence)", ha="center", fontsize=8)
    ax.set_title("valence / arousal", fontsize=10, loc="left")
    return _png(fig)


def set_figures(recordings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """For a batch: emotion shares per recording, and mean valence/arousal per recording."""
    plt = _plt()
    rows = [r["row"] for r in recordings if r["row"].get("status") == "ok"]
    if not rows:
        return []
    names = [r["name"][-28:] for r in recordings if r["row"].get("status") == "ok"]
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.32 * len(rows)))
    left = np.zeros(len(rows))
    for e in (*EMOTIONS, "none"):
        vals = np.array([r.get(f"share_{e}") or 0.0 for r in rows])
        ax.barh(names, vals, left=left, color=EMOTION_COLORS.get(e, NONE_COLOR), label=e)
        left += vals
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of time")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title("fused emotion, share of each recording", fontsize=10, loc="left")
    out = [("emotion shares per recording", _png(fig))]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4.2))
    _circumplex_axes(ax1)
    va = [(r["mean_valence"], r["mean_arousal"]) for r in rows if r.get("mean_valence") is not None]
    if va:
        ax1.scatter(*zip(*va), s=24, color="#37474f", zorder=4)
    ax1.set_title("mean valence / arousal per recording", fontsize=10, loc="left")
    totals = {e: sum((r.get(f"share_{e}") or 0.0) * (r.get("duration") or 0.0) for r in rows) for e in (*EMOTIONS, "none")}
    ax2.bar(list(totals), list(totals.values()), color=[EMOTION_COLORS.get(e, NONE_COLOR) for e in totals])
    ax2.set_ylabel("seconds, all recordings")
    ax2.tick_params(axis="x", rotation=45, labelsize=8)
    ax2.set_title("time per fused emotion, whole set", fontsize=10, loc="left")
    out.append(("distributions across the set", _png(fig)))
    return out


# -- HTML ---------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#212121;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #e0e0e0;padding-bottom:4px;margin-top:32px}
h3{font-size:15px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #e0e0e0;padding:3px 7px;text-align:right}th{background:#f5f5f5}
td.l,th.l{text-align:left}td.err{min-width:220px}.wide{overflow-x:auto}.err{color:#b71c1c}.muted{color:#757575;font-size:12px}
img{max-width:100%;display:block;margin:6px 0}.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
"""

# Counts the figures that decoded (naturalWidth > 0) into <body data-figures-loaded>: a check for
# tests and for anyone wondering whether a copy of the file is complete.  No network, no libraries.
_JS = """
window.addEventListener("load",function(){var n=0,i=document.images;for(var k=0;k<i.length;k++){
if(i[k].complete&&i[k].naturalWidth>0){n++}}document.body.setAttribute("data-figures-loaded",String(n));});
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or v == "":
        return "—"
    if isinstance(v, float):
        return f"{v:.0%}" if pct else f"{v:.2f}"
    return _e(v)


def _img(b64: str, alt: str) -> str:
    return f'<img class="figure" alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _set_table(recordings: list[dict[str, Any]]) -> str:
    head = ["recording", "status", "duration s", "frames", "faces", "top emotion", *EMOTIONS, "none",
            "valence", "arousal", "speech s", "error"]
    out = ['<div class="wide"><table><tr>' + "".join(f'<th class="{"l" if h in ("recording", "status", "error") else ""}">{_e(h)}</th>'
                                   for h in head) + "</tr>"]
    for r in recordings:
        row = r["row"]
        anchor = f'<a href="#rec-{id(r)}">{_e(r["name"])}</a>' if r.get("records") is not None else _e(r["name"])
        cells = [f'<td class="l">{anchor}</td>', f'<td class="l{" err" if row["status"] != "ok" else ""}">{_e(row["status"])}</td>',
                 f"<td>{_fmt(row.get('duration'))}</td>", f"<td>{_fmt(row.get('frames'))}</td>",
                 f"<td>{_fmt(row.get('faces_seen'))}</td>", f'<td class="l">{_fmt(row.get("top_emotion"))}</td>']
        cells += [f"<td>{_fmt(row.get(f'share_{e}'), pct=True)}</td>" for e in (*EMOTIONS, "none")]
        cells += [f"<td>{_fmt(row.get('mean_valence'))}</td>", f"<td>{_fmt(row.get('mean_arousal'))}</td>",
                  f"<td>{_fmt(row.get('speech_time'))}</td>", f'<td class="l err">{_e(row.get("error") or "")}</td>']
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def _faces_table(records: list[dict[str, Any]]) -> str:
    faces = face_summaries(records)
    if not faces:
        return '<p class="muted">No face was seen.</p>'
    out = ["<table><tr><th>face</th><th>in view s</th><th>first s</th><th>last s</th>"
           + "".join(f"<th>{e}</th>" for e in EMOTIONS) + '<th class="l">strongest action units / blendshapes (mean)</th></tr>']
    for f in faces:
        total = sum(f["labels"].values()) or 1.0
        aus = sorted(f["aus"].items(), key=lambda kv: -(kv[1] or 0))[:6]
        au_text = ", ".join(f"{_e(k)} {v:.2f}" for k, v in aus) if aus else '<span class="muted">not logged</span>'
        out.append(f"<tr><td>#{_e(f['id'])}</td><td>{_fmt(f['time'])}</td><td>{_fmt(f['first'])}</td><td>{_fmt(f['last'])}</td>"
                   + "".join(f"<td>{(f['labels'][e] or 0) / total:.0%}</td>" for e in EMOTIONS)
                   + f'<td class="l">{au_text}</td></tr>')
    out.append("</table>")
    return "\n".join(out)


def _recording_section(r: dict[str, Any]) -> str:
    row = r["row"]
    parts = [f'<section class="recording" id="rec-{id(r)}"><h2>{_e(r["name"])}</h2>']
    if r.get("records") is None:
        parts.append(f'<p class="err">{_e(row.get("status"))}: {_e(row.get("error") or "no log")}</p></section>')
        return "\n".join(parts)
    recs = r["records"]
    speech = speech_segments(recs)
    parts.append(
        f'<p>{_fmt(row["duration"])} s, {row["frames"]} frames, {row["faces_seen"]} face track(s); '
        f'most of the time: <b>{_e(row["top_emotion"] or "no evidence")}</b>; mean valence {_fmt(row["mean_valence"])}, '
        f'arousal {_fmt(row["mean_arousal"])}; speech {_fmt(row["speech_time"])} s in {len(speech)} segment(s). '
        f'<span class="muted">log: {_e(r["log"].name if r.get("log") else "")}</span></p>')
    if not recs:
        parts.append('<p class="muted">The log is empty.</p></section>')
        return "\n".join(parts)
    parts.append('<div class="row">' + _img(timeline_figure(recs), f"{r['name']}: fused emotion timeline")
                 + _img(circumplex_figure(recs), f"{r['name']}: valence/arousal circumplex") + "</div>")
    if speech:
        segs = ", ".join(f"{s:.1f}–{e:.1f}" for s, e in speech[:40]) + (" …" if len(speech) > 40 else "")
        parts.append(f'<p class="muted">speech segments (s): {segs}</p>')
    parts.append("<h3>Faces</h3>" + _faces_table(recs) + "</section>")
    return "\n".join(parts)


def render(target: str | Path) -> str:
    """The HTML text of the report on ``target`` (a log, a session folder or a batch folder)."""
    kind, recordings = load_target(target)
    title = f"emotiond report — {Path(target).expanduser().resolve().name}"
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="muted">{_e(kind)}: {_e(Path(target).expanduser().resolve())}; {len(recordings)} recording(s); '
            f"emotiond {__version__}; {time.strftime('%Y-%m-%d %H:%M')}. Emotions are the fused face+voice estimate "
            "(docs/fusion.md); \"none\" is time with no evidence (no face, no speech).</p>"]
    if kind == "batch":
        body.append("<h2>The set</h2>" + _set_table(recordings))
        for caption, b64 in set_figures(recordings):
            body.append(_img(b64, caption))
    for r in recordings:
        body.append(_recording_section(r))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style><script>{_JS}</script></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(target: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise SinkError(f"{out} already exists", "pass --overwrite to replace it, or choose another --out")
    text = render(target)
    tmp = out.with_name(f".{out.name}.part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SinkError(f"cannot write {out}: {exc.strerror}", "check the folder exists and is writable") from None
    return out
