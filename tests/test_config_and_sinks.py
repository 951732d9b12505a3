import csv
import json

import numpy as np
import pytest

from emotiond.config import load_config
from emotiond.errors import ConfigError, SinkError
from emotiond.fusion import FusionScorer, evidence
from emotiond.labels import EMOTIONS
from emotiond.sinks import CSV_COLUMNS, CsvSink, JsonlSink, open_log
from emotiond.types import FaceObservation, FrameResult


def test_config_precedence_file_env_flags(tmp_path, monkeypatch):
    f = tmp_path / "c.toml"
    f.write_text("provider = 'cpu'\n[fusion]\nsmoothing_tau = 2.0\nface_weight = 0.5\n[face]\nmax_faces = 3\n")
    monkeypatch.setenv("EMOTIOND_FUSION__SMOOTHING_TAU", "3.0")
    cfg = load_config(f, {"face.max_faces": 7})
    assert cfg.provider == "cpu"  # file
    assert cfg.fusion.face_weight == 0.5  # file
    assert cfg.fusion.smoothing_tau == 3.0  # env beats file
    assert cfg.face.max_faces == 7  # flag beats all


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[fusion]\nsmoothing_tau = -1\n")
    with pytest.raises(ConfigError, match="fusion.smoothing_tau"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "x.toml").write_text("[[[")
        load_config(tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="nope"):
        (tmp_path / "u.toml").write_text("nope = 1\n")
        load_config(tmp_path / "u.toml")


def _result(t, frame, with_face=True):
    faces = []
    fused = None
    if with_face:
        p = np.linspace(1, 2, len(EMOTIONS))
        p /= p.sum()
        faces = [FaceObservation(np.zeros((478, 3), np.float32), np.zeros(52, np.float32), (1.0, 2.0, 30.0, 40.0), 0.9, 1, p)]
        fused = FusionScorer().update(t, [evidence("face", p, 0.9)])
    return FrameResult(t=t, frame=frame, faces=faces, fused=fused)


def test_jsonl_schema_and_no_truncation(tmp_path):
    path = tmp_path / "log.jsonl"
    s = JsonlSink(path)
    s.write(_result(0.0, 0))
    s.write(_result(0.04, 1, with_face=False))
    s.close()
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert recs[0]["faces"][0]["id"] == 1
    assert sum(recs[0]["faces"][0]["face"].values()) == pytest.approx(1.0, abs=1e-3)
    assert recs[0]["label"] == "neutral" and recs[0]["shares"] == {"face": 1.0}
    assert recs[1]["fused"] is None and recs[1]["label"] is None and recs[1]["faces"] == []
    # an existing log is never silently truncated
    with pytest.raises(SinkError, match="--append"):
        JsonlSink(path)
    a = JsonlSink(path, mode="append")
    a.write(_result(0.08, 2))
    a.close()
    assert len(path.read_text().splitlines()) == 3


def test_csv_flattens_same_content(tmp_path):
    path = tmp_path / "log.csv"
    s = open_log(path)
    assert isinstance(s, CsvSink)
    s.write(_result(0.0, 0))
    s.write(_result(0.04, 1, with_face=False))
    s.close()
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0].keys()) == CSV_COLUMNS
    assert rows[0]["face_id"] == "1" and rows[0]["label"] == "neutral"
    assert sum(float(rows[0][f"fused_{e}"]) for e in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
    assert rows[1]["face_id"] == "" and rows[1]["label"] == ""


def test_unknown_log_format_and_unwritable(tmp_path):
    with pytest.raises(SinkError, match=r"\.jsonl or \*\.csv"):
        open_log(tmp_path / "x.txt")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.geteuid() != 0:  # root ignores permissions
            with pytest.raises(SinkError, match="cannot write"):
                open_log(ro / "x.jsonl")
    finally:
        ro.chmod(0o700)


def test_full_disk_is_a_clear_error(tmp_path):
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    s = JsonlSink.__new__(JsonlSink)
    s.path = tmp_path / "full.jsonl"
    s._fh = open("/dev/full", "w", encoding="utf-8")
    with pytest.raises(SinkError, match="disk is full"):
        s.write(_result(0.0, 0))
