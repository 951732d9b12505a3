"""The command line as a user meets it: clear one-line errors, never a traceback."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from emotiond.cli import main

REPO = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None, env=None):
    import os

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "emotiond", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=e, timeout=300)


def assert_clean_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("emotiond: error: "), proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_run_writes_jsonl_and_summary(single_face_mp4, tmp_path):
    log = tmp_path / "out.jsonl"
    proc = cli("run", single_face_mp4, "--log", log, "--no-voice")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(recs) == 72
    assert "72 frames" in proc.stderr and "onnxruntime" in proc.stderr
    # running again must not clobber the log
    again = cli("run", single_face_mp4, "--log", log, "--no-voice")
    assert_clean_error(again, "already exists", "--append")
    assert len(log.read_text().splitlines()) == 72


# unreadable inputs (missing, empty, text, a folder without images, a broken JPEG, …): the corpus in
# tests/test_bad_input.py


def test_truncated_video_keeps_what_was_decoded(single_face_mp4, tmp_path):
    data = single_face_mp4.read_bytes()
    trunc = tmp_path / "trunc.mp4"
    trunc.write_bytes(data[: len(data) * 2 // 3])
    log = tmp_path / "t.jsonl"
    proc = cli("run", trunc, "--log", log, "--no-voice")
    assert "Traceback" not in proc.stderr
    if proc.returncode == 0:
        # mp4 with its index at the front: frames up to the cut are analysed, and we say so
        n = len(log.read_text().splitlines())
        assert 0 < n < 72
        assert "truncated" in proc.stderr
    else:
        assert_clean_error(proc, "trunc.mp4")


def test_cut_pexels_clip_is_reported_as_ending_early(pexels_mp4, tmp_path):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(pexels_mp4.read_bytes()[:300_000])
    proc = cli("run", cut, "--log", tmp_path / "cut.jsonl", "--no-voice")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "the file ends early" in proc.stderr and "of 472 frames" in proc.stderr


def test_overwrite_keeps_the_old_log_when_the_run_cannot_start(single_face_jpg, tmp_path):
    log = tmp_path / "keep.jsonl"
    log.write_text('{"old": true}\n')
    proc = cli("run", single_face_jpg, "--log", log, "--overwrite", "--models-dir", tmp_path / "nope")
    assert_clean_error(proc, "no model card")
    assert log.read_text() == '{"old": true}\n'


def test_folder_of_unreadable_images_is_an_error(tmp_path):
    (tmp_path / "a.jpg").write_text("not a jpeg")
    (tmp_path / "b.png").write_bytes(b"\x89PNG broken")
    assert_clean_error(cli("run", tmp_path), "none of the 2 images")


def test_models_reports_a_missing_model(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    (models / "voice_emotion.card.toml").unlink()
    listing = cli("models", "--models-dir", models)
    assert listing.returncode == 1
    assert "voice_emotion" in listing.stdout and "missing" in listing.stdout


def test_closed_pipe_is_not_a_crash():
    import os

    proc = subprocess.run(f"{sys.executable} -m emotiond config | head -1", shell=True, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.strip() == "{"


def test_corrupt_model_is_refused_with_the_fix(single_face_mp4, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    onnx = models / "face_emotion_fer.onnx"
    onnx.write_bytes(onnx.read_bytes()[:1000])
    proc = cli("run", single_face_mp4, "--no-voice", "--models-dir", models)
    assert_clean_error(proc, "face_emotion_fer.onnx", "truncated", "git checkout")
    listing = cli("models", "--models-dir", models)
    assert listing.returncode == 1
    assert "PROBLEM: truncated" in listing.stdout


def test_models_lists_cards_ok(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"face_landmarker", "face_emotion_fer"} <= names
    assert all(r["status"] == "ok" and len(r["sha256"]) == 64 for r in rows)


def test_config_command(capsys, monkeypatch):
    monkeypatch.setenv("EMOTIOND_FUSION__SMOOTHING_TAU", "1.25")
    assert main(["config"]) == 0
    assert json.loads(capsys.readouterr().out)["fusion"]["smoothing_tau"] == 1.25



def test_eval_face_on_a_labelled_folder(single_face_jpg, multi_face_jpg, tmp_path):
    import numpy as np
    import cv2

    (tmp_path / "happiness").mkdir()  # synonyms map into the label space
    (tmp_path / "neutral").mkdir()
    (tmp_path / "unrelated").mkdir()
    shutil.copy(single_face_jpg, tmp_path / "happiness" / "a.jpg")
    shutil.copy(multi_face_jpg, tmp_path / "happiness" / "b.jpg")
    cv2.imwrite(str(tmp_path / "neutral" / "blank.png"), np.full((200, 200, 3), 128, np.uint8))
    proc = cli("eval", "--modality", "face", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    cm = np.array(out["confusion"])
    assert cm.sum() == 2 and cm[3].sum() == 2  # two happy images scored, the blank one not
    assert out["not_scored"] == {"(no face found)": 1}
    assert out["accuracy"] == cm[3, 3] / 2
    assert_clean_error(cli("eval", "--modality", "face", tmp_path / "nope"), "no such folder")
    assert_clean_error(cli("eval", "--modality", "face", tmp_path / "unrelated"), "no labelled images")


def test_face_features_in_the_log(single_face_jpg, tmp_path):
    log = tmp_path / "f.jsonl"
    proc = cli("run", single_face_jpg, "--log", log, "--face-features")
    assert proc.returncode == 0, proc.stderr
    face = json.loads(log.read_text())["faces"][0]
    assert len(face["blendshapes"]) == 52 and len(face["landmarks"]) == 478
    assert face["blendshapes"]["mouthSmileLeft"] > 0.3  # he smiles
    x0, y0, x1, y1 = face["bbox"]
    assert all(x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1 for x, y, _ in face["landmarks"])
