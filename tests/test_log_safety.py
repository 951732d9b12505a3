"""Logs are never spliced, glued or destroyed: append repairs or refuses, one writer at a time,
overwrite only once nobody else is writing, never the source itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emotiond.errors import SinkError
from emotiond.sinks import CSV_COLUMNS, CsvSink, JsonlSink, open_log
from emotiond.types import FrameResult

REPO = Path(__file__).resolve().parents[1]


def result(i: int) -> FrameResult:
    return FrameResult(t=i / 30, frame=i)


def test_append_after_a_partial_last_line_cuts_it_and_says_so(tmp_path):
    path = tmp_path / "log.jsonl"
    s = JsonlSink(path)
    s.write(result(0))
    s.write(result(1))
    s.close()
    with open(path, "a", encoding="utf-8") as fh:  # what a full disk or kill -9 leaves
        fh.write('{"t":0.0667,"frame":2,"fa')
    s = JsonlSink(path, mode="append")
    s.write(result(3))
    s.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]  # every line parses
    assert [r["frame"] for r in records] == [0, 1, 3]
    assert s.notes and "incomplete last line" in s.notes[0]


def test_csv_append_cuts_a_partial_row(tmp_path):
    path = tmp_path / "log.csv"
    s = CsvSink(path)
    s.write(result(0))
    s.close()
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("0.0333,1,,")
    s = CsvSink(path, mode="append")
    s.write(result(2))
    s.close()
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert rows[0] == CSV_COLUMNS and [r[1] for r in rows[1:]] == ["0", "2"]
    assert all(len(r) == len(CSV_COLUMNS) for r in rows)


@pytest.mark.parametrize("suffix, content, what", [
    (".csv", "a,b,c\n1,2,3\n", "another header"),
    (".csv", '{"t":0,"frame":0}\n', "JSONL"),
    (".jsonl", ",".join(CSV_COLUMNS) + "\n0,0\n", "CSV"),
    (".jsonl", "hello world\n", "not a JSON-lines file"),
])
def test_append_refuses_a_foreign_file_and_leaves_it_alone(tmp_path, suffix, content, what):
    path = tmp_path / f"log{suffix}"
    path.write_text(content)
    with pytest.raises(SinkError, match=what):
        open_log(path, "append")
    assert path.read_text() == content


def test_a_second_writer_is_refused_and_overwrite_does_not_truncate_a_log_in_use(tmp_path):
    path = tmp_path / "log.jsonl"
    first = JsonlSink(path)
    first.write(result(0))
    for mode in ("append", "overwrite"):
        with pytest.raises(SinkError, match="being written by another emotiond run"):
            open_log(path, mode)
    first.write(result(1))
    first.close()
    assert [json.loads(x)["frame"] for x in path.read_text().splitlines()] == [0, 1]
    s = open_log(path, "overwrite")  # free again
    s.close()
    assert path.read_bytes() == b""


def test_runs_started_together_on_the_same_new_log_exactly_one_wins(tmp_path):
    """Processes: each opens the same new log, writes 50 lines slowly; only one may get it."""
    path = tmp_path / "shared.jsonl"
    code = (
        "import sys, time\n"
        "from emotiond.sinks import JsonlSink\n"
        "from emotiond.errors import SinkError\n"
        "from emotiond.types import FrameResult\n"
        "time.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
        "try:\n    s = JsonlSink(sys.argv[1])\n"
        "except SinkError as e:\n    print('refused', e.message); sys.exit(2)\n"
        "k = int(sys.argv[3])\n"
        "for i in range(50):\n    s.write(FrameResult(t=i, frame=1000 * k + i)); time.sleep(0.02)\n"
        "s.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    go = time.time() + 6.0  # all six are imported and waiting by then, even on a busy machine
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(go), str(k)], env=env, stdout=subprocess.PIPE,
                              text=True) for k in range(6)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0] + [2] * 5, (codes, outs)
    assert all("refused" in o for o, c in zip(outs, codes) if c == 2)
    winner = codes.index(0)
    frames = [json.loads(x)["frame"] for x in path.read_text().splitlines()]
    assert frames == [1000 * winner + i for i in range(50)]  # one run's lines, nothing spliced


def test_a_fifo_log_without_a_reader_is_refused_not_waited_for(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    errors = []

    def attempt():
        try:
            open_log(fifo, "new")
        except SinkError as exc:
            errors.append(exc)

    th = threading.Thread(target=attempt, daemon=True)  # a hang must fail the test, not stop the suite
    th.start()
    th.join(10)
    assert not th.is_alive(), "opening a FIFO log with no reader hangs"
    assert errors and "FIFO with no reader" in errors[0].message
    # with a reader it is written like a stream
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, encoding="utf-8").read()))
    reader.start()
    for _ in range(100):
        try:
            s = open_log(fifo, "new")
            break
        except SinkError:
            time.sleep(0.02)
    s.write(result(7))
    s.close()
    reader.join(10)
    assert json.loads(got[0])["frame"] == 7


def test_a_folder_as_log_is_refused(tmp_path):
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(SinkError, match="is a folder"):
        open_log(tmp_path / "d.jsonl", "new")


def run_cli(*args, cwd=None, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "emotiond", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd)


def test_the_source_itself_is_refused_as_log(tmp_path, single_face_mp4):
    import shutil

    clip = tmp_path / "clip.mp4"
    shutil.copy(single_face_mp4, clip)
    before = clip.read_bytes()
    proc = run_cli("run", str(clip), "--log", str(clip), "--overwrite", "--no-progress")
    assert proc.returncode == 2, proc.stderr
    assert "is the source" in proc.stderr and "Traceback" not in proc.stderr
    assert clip.read_bytes() == before
    # a symlink to it, too
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    proc = run_cli("run", str(clip), "--log", str(link), "--overwrite", "--no-progress")
    assert proc.returncode == 2 and "is the source" in proc.stderr
    assert clip.read_bytes() == before
