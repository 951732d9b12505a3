"""Summaries (pure) and the HTML report on logs made here; the browser tests are in test_batch.py."""

from __future__ import annotations

import json

import pytest

from emotiond.cli import main
from emotiond.errors import SourceError
from emotiond.report import EMOTION_COLORS, render
from emotiond.summary import face_summaries, read_log, speech_segments, summarize


def rec(t, label, speech=None, faces=(), frame=0, va=(0.5, 0.2)):
    return {"t": t, "frame": frame, "faces": list(faces), "speech": speech, "label": label,
            "fused": {label: 1.0} if label else None,
            "valence": va[0] if label else None, "arousal": va[1] if label else None}


def face(i, label, aus=None):
    f = {"id": i, "bbox": [0, 0, 10, 10], "quality": 1.0, "face": {label: 1.0}, "label": label}
    if aus is not None:
        f["aus"] = aus
    return f


RECORDS = [
    rec(0.0, "happy", 0.9, [face(1, "happy", {"AU12": 0.8})], va=(0.8, 0.4)),
    rec(1.0, "happy", 0.1, [face(1, "happy", {"AU12": 0.6}), face(2, "sad")], va=(0.6, 0.2)),
    rec(2.0, None, 0.6),
    rec(3.0, "sad", None, [face(2, "sad")], frame=-1, va=(-0.6, -0.2)),
]


def test_summary_shares_are_time_weighted_and_count_no_evidence():
    s = summarize(RECORDS)
    assert s["duration"] == 4.0 and s["frames"] == 3 and s["results"] == 4 and s["faces_seen"] == 2
    assert s["share_happy"] == 0.5 and s["share_sad"] == 0.25 and s["share_none"] == 0.25
    assert s["share_angry"] == 0.0 and s["top_emotion"] == "happy"
    assert s["mean_valence"] == pytest.approx((0.8 + 0.6 - 0.6) / 3, abs=1e-4)
    assert s["speech_time"] == 2.0 and s["face_time"] == 3.0
    # a variable frame rate does not bias the shares: a long gap weighs more
    s2 = summarize([rec(0.0, "happy"), rec(0.1, "sad"), rec(3.0, "sad")])
    assert s2["share_sad"] > 0.9


def test_summary_of_an_empty_log_and_of_one_image():
    s = summarize([])
    assert s["duration"] == 0 and s["frames"] == 0 and s["top_emotion"] is None and s["share_happy"] is None
    one = summarize([rec(0.0, "neutral", va=(0.0, 0.0))])
    assert one["share_neutral"] == 1.0 and one["top_emotion"] == "neutral"


def test_face_summaries_and_speech_segments():
    faces = face_summaries(RECORDS)
    assert [f["id"] for f in faces] == [1, 2]
    assert faces[0]["time"] == 2.0 and faces[0]["labels"]["happy"] == 2.0
    assert faces[0]["aus"] == {"AU12": pytest.approx(0.7)} and faces[1]["aus"] == {}
    assert speech_segments(RECORDS) == [(0.0, 1.0), (2.0, 3.0)]


def test_read_log_tolerates_a_torn_tail_and_refuses_other_files(tmp_path):
    log = tmp_path / "x.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in RECORDS) + '{"t": 4.0, "fra')
    assert len(read_log(log)) == 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n" + json.dumps(RECORDS[0]) + "\n")
    with pytest.raises(SourceError, match="not a JSON line"):
        read_log(bad)
    with pytest.raises(SourceError, match="CSV log"):
        read_log(tmp_path / "x.csv")


def test_report_of_a_log_has_its_figures_and_action_units(tmp_path):
    log = tmp_path / "x.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    page = render(log)
    assert page.count('<img class="figure"') == 2 and page.count("data:image/png;base64,") == 2
    assert "AU12 0.70" in page and "#2" in page and "not logged" in page
    assert "http://" not in page.split("<body>")[0]


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emotiond: error: ") and "no such" in err and "fix:" in err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")]) == 2
    assert "holds no logs" in capsys.readouterr().err


def test_report_colours_are_the_guis():
    from emotiond.gui.style import EMOTION_COLORS as GUI

    assert EMOTION_COLORS == GUI
