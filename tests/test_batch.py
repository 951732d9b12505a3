"""`emotiond batch` on real media: one log per input identical to `emotiond run`'s, a summary row with
the error for a bad file, resume, Ctrl-C, and the same results through a real local Ray."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emotiond.batch import Job, assign_logs, expand_inputs, plan_workers
from emotiond.summary import SUMMARY_CSV, read_summary
from emotiond.cli import main
from emotiond.summary import COLUMNS
from tests.mediautil import transcode

REPO = Path(__file__).resolve().parents[1]
RUN_DEPENDENT = ("wall", "fps", "peak_rss_mb")  # timing columns: differ between any two runs


def cli(*args, timeout=600):
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    return subprocess.run([sys.executable, "-m", "emotiond", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def batch_inputs(tmp_path_factory, single_face_mp4, no_face_mp4, pexels_mp4):
    """Copies of the shared clips (two with the same name), a 45-frame cut of the Pexels clip with
    its audio, a corrupt file, and a session recorded from single_face.mp4."""
    root = tmp_path_factory.mktemp("batch-in")
    media = root / "media"
    (media / "a").mkdir(parents=True)
    (media / "b").mkdir()
    shutil.copy(single_face_mp4, media / "a" / "clip.mp4")
    shutil.copy(no_face_mp4, media / "b" / "clip.mp4")
    transcode(pexels_mp4, media / "pexels_cut.mp4", max_frames=45)
    (media / "corrupt.mp4").write_bytes(single_face_mp4.read_bytes()[:5000])
    (media / "notes.txt").write_text("not media: not picked up from a folder\n")
    sessions = root / "sessions"
    assert main(["run", str(single_face_mp4), "--record", str(sessions / "s1"), "--log", str(root / "live.jsonl"),
                 "--no-progress"]) == 0
    session = sessions / "s1"
    assert (session / "metadata.json").is_file()
    return media, session


@pytest.fixture(scope="session")
def reference_logs(batch_inputs, tmp_path_factory):
    """What `emotiond run INPUT --clock deterministic --log X` writes for each good input."""
    media, session = batch_inputs
    out = tmp_path_factory.mktemp("reference")
    refs = {}
    for name, src in [("a__clip.mp4", media / "a" / "clip.mp4"), ("b__clip.mp4", media / "b" / "clip.mp4"),
                      ("pexels_cut.mp4", media / "pexels_cut.mp4"), ("s1", session)]:
        log = out / f"{name}.jsonl"
        assert main(["run", str(src), "--clock", "deterministic", "--log", str(log), "--no-progress"]) == 0
        refs[f"{name}.jsonl"] = log
    return refs


@pytest.fixture(scope="session")
def local_batch(batch_inputs, tmp_path_factory):
    media, session = batch_inputs
    out = tmp_path_factory.mktemp("batch-out") / "out"
    t0 = time.perf_counter()
    proc = cli("batch", media, session, "--out", out, "--no-progress")
    return out, proc, time.perf_counter() - t0


def _rows(out: Path) -> dict[str, dict]:
    return {Path(r["input"]).name if not r["log"] else r["log"]: r for r in read_summary(out)}


@pytest.mark.slow
def test_batch_logs_are_identical_to_emotiond_run(local_batch, reference_logs):
    out, proc, _ = local_batch
    assert proc.returncode == 1, proc.stderr  # one input failed: the exit status says so
    assert "Traceback" not in proc.stderr
    assert "5 inputs, 4 ok" in proc.stderr and "1 failed" in proc.stderr, proc.stderr
    logs = sorted(p.name for p in out.glob("*.jsonl") if not p.name.startswith("summary"))
    assert logs == sorted(reference_logs), logs
    for name, ref in reference_logs.items():
        assert (out / name).read_bytes() == ref.read_bytes(), f"{name} differs from `emotiond run`'s log"
    assert not list(out.glob(".part-*")), "no temporary file may be left"


@pytest.mark.slow
def test_batch_summary_has_a_row_per_input_and_the_error(local_batch, batch_inputs):
    out, proc, _ = local_batch
    rows = _rows(out)
    assert set(rows) == {"a__clip.mp4.jsonl", "b__clip.mp4.jsonl", "pexels_cut.mp4.jsonl", "s1.jsonl", "corrupt.mp4"}
    bad = rows["corrupt.mp4"]
    assert bad["status"] == "error" and "cut off before its index" in bad["error"] and bad["log"] == ""  # a truncated MP4
    face = rows["a__clip.mp4.jsonl"]
    assert face["status"] == "ok" and face["frames"] == 72 and face["faces_seen"] == 1
    assert abs(face["duration"] - 2.4) < 0.05
    shares = [face[f"share_{e}"] for e in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "none")]
    assert abs(sum(shares) - 1) < 1e-3
    assert face["top_emotion"] in ("happy", "neutral") and face["mean_valence"] is not None
    noface = rows["b__clip.mp4.jsonl"]
    assert noface["faces_seen"] == 0 and noface["share_none"] > 0.9 and noface["top_emotion"] is None
    # the CSV carries the same rows, in the same order, with every column
    with open(out / SUMMARY_CSV, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0].keys()) == COLUMNS
    assert [r["input"] for r in table] == [r["input"] for r in read_summary(out)]


@pytest.mark.slow
def test_resume_skips_completed_inputs_and_redoes_unfinished(local_batch, batch_inputs, tmp_path):
    src_out, _, _ = local_batch
    media, session = batch_inputs
    out = tmp_path / "out"
    shutil.copytree(src_out, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.jsonl")}
    # an interrupted run left one input unfinished: its log is missing, a temporary file is there
    (out / "b__clip.mp4.jsonl").rename(out / ".part-b__clip.mp4.jsonl")
    proc = cli("batch", media, session, "--out", out, "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert "4 ok (3 already done)" in proc.stderr, proc.stderr
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.jsonl")}
    for name in ("a__clip.mp4.jsonl", "pexels_cut.mp4.jsonl", "s1.jsonl"):
        assert after[name] == before[name], f"{name} was analysed again"
    assert (out / "b__clip.mp4.jsonl").read_bytes() == (src_out / "b__clip.mp4.jsonl").read_bytes()
    assert not (out / ".part-b__clip.mp4.jsonl").exists()
    # --redo analyses again (one quick input here; it keeps the name the first run gave it)
    first = (out / "b__clip.mp4.jsonl").stat().st_mtime_ns
    proc = cli("batch", media / "b", "--out", out, "--redo", "--no-progress")
    assert proc.returncode == 0 and "1 inputs, 1 ok (0 already done)" in proc.stderr, proc.stderr
    assert (out / "b__clip.mp4.jsonl").stat().st_mtime_ns != first
    assert (out / "b__clip.mp4.jsonl").read_bytes() == (src_out / "b__clip.mp4.jsonl").read_bytes()


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_finished(no_face_mp4, pexels_mp4, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.Popen([sys.executable, "-m", "emotiond", "batch", str(no_face_mp4), str(pexels_mp4),
                             "--workers", "1", "--out", str(out), "--no-progress"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not (out / "no_face.mp4.jsonl").exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)  # the long clip is under way
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        t0 = time.monotonic()
        err = proc.communicate(timeout=60)[1]
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err, err
    assert stopped_in < 20
    rows = {Path(r["input"]).name: r for r in read_summary(out)}
    assert rows["no_face.mp4"]["status"] == "ok"
    assert rows["WolfgangLanger_Pexels.mp4"]["status"] == "interrupted"
    assert not (out / "WolfgangLanger_Pexels.mp4.jsonl").exists()
    assert not list(out.glob(".part-*"))


@pytest.mark.slow
def test_ray_batch_gives_the_same_logs_and_summary(local_batch, batch_inputs, tmp_path):
    import ray  # noqa: F401  (a test dependency: a missing Ray fails here rather than skipping)

    media, session = batch_inputs
    local_out, _, _ = local_batch
    out = tmp_path / "ray-out"
    proc = cli("batch", media, session, "--out", out, "--ray", "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert "Ray" in proc.stderr and "5 inputs, 4 ok" in proc.stderr, proc.stderr
    for p in local_out.glob("*.jsonl"):
        if p.name.startswith("summary"):
            continue
        assert (out / p.name).read_bytes() == p.read_bytes(), f"{p.name}: Ray's log differs from the local batch"

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in RUN_DEPENDENT} for r in rows]

    assert strip(read_summary(out)) == strip(read_summary(local_out))
    assert not list(out.glob(".part-*"))


# -- fast tests: inputs, names, sizing ----------------------------------------------------------------
def test_expand_inputs_folders_globs_lists_and_missing(tmp_path, single_face_mp4):
    (tmp_path / "x" / "deep").mkdir(parents=True)
    for rel in ("x/one.mp4", "x/deep/two.MKV", "x/skip.txt", "y.wav"):
        (tmp_path / rel).write_bytes(b"\0")
    sess = tmp_path / "x" / "sess"
    sess.mkdir()
    (sess / "metadata.json").write_text("{}")
    (sess / "media.mp4").write_bytes(b"\0")  # inside a session: not an input of its own
    lst = tmp_path / "list.txt"
    lst.write_text("# inputs\ny.wav\n\nmissing.mp4\n")
    jobs = expand_inputs([str(tmp_path / "x"), str(tmp_path / "*.wav"), f"@{lst}", str(tmp_path / "nope*.mp4"),
                          str(tmp_path / "x" / "one.mp4")])
    got = [(Path(j.input).relative_to(tmp_path).as_posix() if j.problem is None else Path(j.input).name, j.problem)
           for j in jobs]
    assert got == [("x/one.mp4", None), ("x/deep/two.MKV", None), ("x/sess", None), ("y.wav", None),
                   ("missing.mp4", "no such file or folder"), ("nope*.mp4", "the pattern matches no file")]


def test_log_names_map_back_without_collisions():
    jobs = [Job(p) for p in ("/d/a/clip.mp4", "/d/b/clip.mp4", "/d/c/other.mp4", "/e/a/clip.mp4", "/s/summary")]
    assign_logs(jobs)
    names = [j.log for j in jobs]
    assert len(set(names)) == len(names)
    assert names[2] == "other.mp4.jsonl" and names[4] != "summary.jsonl"
    assert names[0] == "d__a__clip.mp4.jsonl" and names[3] == "e__a__clip.mp4.jsonl"
    assert names[1] == "b__clip.mp4.jsonl"
    # a name given by an earlier run into the same folder is kept
    again = [Job("/d/b/clip.mp4"), Job("/z/clip.mp4")]
    assign_logs(again, {"/d/b/clip.mp4": "b__clip.mp4.jsonl"})
    assert again[0].log == "b__clip.mp4.jsonl" and again[1].log == "clip.mp4.jsonl"


def test_worker_sizing_does_not_oversubscribe(monkeypatch):
    import emotiond.batch as b

    monkeypatch.setattr(b, "cores", lambda: 2)
    assert plan_workers(20) == (2, 1)
    assert plan_workers(1) == (1, 2)
    monkeypatch.setattr(b, "cores", lambda: 8)
    assert plan_workers(20) == (8, 1) and plan_workers(20, workers=2) == (2, 4) and plan_workers(3) == (3, 2)


def test_models_that_do_not_load_stop_the_batch_with_the_fix(tmp_path, no_face_mp4):
    out = tmp_path / "out"
    proc = cli("batch", no_face_mp4, "--out", out, "--models-dir", tmp_path, "--no-progress")
    assert proc.returncode == 2 and proc.stderr.startswith("emotiond: error: no model card"), proc.stderr
    assert "fix:" in proc.stderr and "Traceback" not in proc.stderr
    assert read_summary(out)[0]["status"] == "error"


def test_batch_bad_arguments_are_one_line_errors(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    proc = cli("batch", f, "--out", f)
    assert proc.returncode == 2 and proc.stderr.startswith("emotiond: error: ") and "is a file" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- the report on real results, opened in a real browser ---------------------------------------------
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is missing: `bash scripts/setup.sh` installs it (apt package chromium)")


def open_in_chromium(page: Path, tmp_path: Path, screenshot: bool = False) -> tuple[str, Path | None]:
    """The DOM after the page's load event (and a screenshot) from headless Chromium."""
    shot = tmp_path / f"{page.stem}.png" if screenshot else None
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
             "--hide-scrollbars", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    if shot is not None:
        subprocess.run([*flags, "--window-size=1100,1400", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, timeout=120)
    return dom, shot


def _check_page(html_text: str, dom: str, shot: Path | None) -> int:
    import re

    n_img = html_text.count("<img ")
    assert n_img >= 2
    assert re.search(r'(src|href)="(https?:)?//', html_text) is None, "the report must not load anything"
    m = re.search(r'data-figures-loaded="(\d+)"', dom)
    assert m is not None, "the page did not finish loading in Chromium"
    assert int(m.group(1)) == n_img, f"{m.group(1)} of {n_img} figures decoded in Chromium"
    if shot is not None:
        import cv2

        img = cv2.imread(str(shot))
        assert img is not None and img.shape[0] > 500 and img.std() > 20, "the screenshot is blank"
    return n_img


@pytest.mark.slow
def test_report_on_a_batch_folder_opens_in_chromium(local_batch, tmp_path, capsys):
    out, _, _ = local_batch
    page = tmp_path / "batch.html"
    assert main(["report", str(out), "--out", str(page)]) == 0
    text = page.read_text()
    dom, shot = open_in_chromium(page, tmp_path)
    n = _check_page(text, dom, shot)
    assert n == 2 + 2 * 4  # the set's two figures, two per analysed recording
    assert "The set" in text and "cut off before its index" in text  # the error row is in the table
    for name in ("a__clip.mp4", "b__clip.mp4", "pexels_cut.mp4", "s1", "corrupt.mp4"):
        assert name in dom
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(page)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err


@pytest.mark.slow
def test_report_on_a_session_opens_in_chromium(batch_inputs, tmp_path):
    _, session = batch_inputs
    page = tmp_path / "session.html"
    assert main(["report", str(session), "--out", str(page)]) == 0
    text = page.read_text()
    dom, shot = open_in_chromium(page, tmp_path, screenshot=True)
    assert _check_page(text, dom, shot) == 2
    assert "session:" in text and "#1" in dom  # the face track's table
