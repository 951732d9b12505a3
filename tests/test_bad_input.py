"""A hostile user's inputs, generated here (PyAV/numpy; nothing committed): each gives a clear
one-line error with a fix, or runs with a visible degraded state — never a traceback, a hang or
a lost log.  Also the numbered cases of issue 9 (recording, signals, stdout, model cards)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import media

REPO = Path(__file__).resolve().parents[1]


def cli(*args, env=None, timeout=120, shell_redirect: str = "", home: Path | None = None):
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    if home is not None:
        e["HOME"] = str(home)
    e.pop("EMOTIOND_CONFIG", None)
    cmd = [sys.executable, "-m", "emotiond", *map(str, args)]
    if shell_redirect:
        cmd = ["sh", "-c", 'exec "$@" ' + shell_redirect, "sh", *cmd]
    return subprocess.run(cmd, capture_output=not shell_redirect, stderr=subprocess.PIPE if shell_redirect else None,
                          text=True, env=e, timeout=timeout)


def cli_many(jobs: dict[str, tuple[list, dict]], work: Path, processes: int = 2, timeout: float = 300) -> dict:
    """Several command lines, ``processes`` child processes each running its share one after the
    other (tests/cli_many.py: `emotiond.cli.main` in-process, imports paid once per child).
    Returns name → an object with ``returncode`` and ``stderr`` like a CompletedProcess."""
    import json as _json
    from types import SimpleNamespace

    e = {**os.environ, "PYTHONPATH": str(REPO)}
    e.pop("EMOTIOND_CONFIG", None)
    names = list(jobs)
    children = []
    for k in range(processes):
        mine = names[k::processes]
        if not mine:
            continue
        spec, res = work / f"jobs{k}.json", work / f"results{k}.json"
        spec.write_text(_json.dumps([[n, [str(a) for a in jobs[n][0]], jobs[n][1]] for n in mine]))
        children.append((mine, res, subprocess.Popen([sys.executable, str(REPO / "tests" / "cli_many.py"), str(spec), str(res)],
                                                     env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    out = {}
    for mine, res, proc in children:
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        done = _json.loads(res.read_text()) if res.exists() else {}
        for n in mine:
            assert n in done, f"{n}: no result (the child hung or died: rc {proc.returncode}): {err[-2000:]}"
            out[n] = SimpleNamespace(returncode=done[n][0], stderr=done[n][1], seconds=done[n][2])
    return out


def clean(proc) -> None:
    """A handled outcome: exit 0, or exit 2 with `error:` and `fix:` lines; never a crash."""
    err = proc.stderr or ""
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    assert proc.returncode in (0, 2), (proc.returncode, err[-2000:])
    if proc.returncode == 2:
        assert re.search(r"^emotiond: error: .+", err, re.M) and re.search(r"^  fix: .+", err, re.M), err


def write_video(path: Path, frames: int, w: int, h: int, *, codec="libx264", rate=30, pix_fmt="yuv420p",
                audio: tuple[int, int] | None = None, rotate: int | None = None, face: bool = True) -> Path:
    """A short clip: the single-face still (scaled) or noise, optionally with audio (rate, channels)."""
    import cv2

    img = cv2.imread(str(media("single_face.jpg")))[:, :, ::-1]
    img = cv2.resize(img, (w, h)) if face else np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        if rotate is not None:
            vs.metadata["rotate"] = str(rotate)
        a = None
        if audio is not None:
            a = out.add_stream("aac" if path.suffix in (".mp4", ".mov", ".mkv") else "pcm_s16le", rate=audio[0])
            a.layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}[audio[1]]
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, rate)
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if a is not None:
            n = int(audio[0] * frames / rate)
            x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(n) / audio[0])).astype(np.float32)
            fmt = a.codec_context.format.name
            planar = np.repeat(x[None, :], audio[1], axis=0)
            step = a.codec_context.frame_size or 1024
            for k in range(0, n, step):
                part = planar[:, k:k + step]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(part if fmt == "fltp" else part[:1]) if fmt == "fltp"
                                                else (part.T.reshape(1, -1) * 32767).astype(np.int16),
                                                format="fltp" if fmt == "fltp" else "s16", layout=a.layout.name)
                af.sample_rate, af.pts, af.time_base = audio[0], k, Fraction(1, audio[0])
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def write_wav(path: Path, rate: int, channels: int, seconds: float) -> Path:
    n = int(rate * seconds)
    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(n) / rate)).astype(np.float32)
    with av.open(str(path), "w", format="wav") as out:
        a = out.add_stream("pcm_s16le", rate=rate)
        a.layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}[channels]
        data = (np.repeat(x[:, None], channels, axis=1) * 32767).astype(np.int16).reshape(1, -1)
        af = av.AudioFrame.from_ndarray(data, format="s16", layout=a.layout.name)
        af.sample_rate = rate
        out.mux(a.encode(af))
        out.mux(a.encode(None))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    c: dict[str, Path] = {}
    good = media("single_face.mp4")
    data = good.read_bytes()
    c["zero-byte"] = d / "zero.mp4"
    c["zero-byte"].write_bytes(b"")
    c["truncated-header"] = d / "trunc-head.mp4"
    c["truncated-header"].write_bytes(data[:100])
    c["truncated-past-index"] = d / "trunc-index.mp4"  # moov is at the end of this file
    c["truncated-past-index"].write_bytes(data[: len(data) // 2])
    c["wrong-extension-text"] = d / "notes.mp4"
    c["wrong-extension-text"].write_text("this is not a video\n" * 50)
    c["image-named-mp4"] = d / "photo.mp4"
    shutil.copy(media("single_face.jpg"), c["image-named-mp4"])
    c["video-named-jpg"] = d / "clip.jpg"
    shutil.copy(good, c["video-named-jpg"])
    c["odd-codec-mpeg4-avi"] = write_video(d / "odd.avi", 12, 320, 240, codec="mpeg4")
    c["odd-codec-mjpeg-mkv"] = write_video(d / "odd.mkv", 12, 320, 240, codec="mjpeg", pix_fmt="yuvj420p")
    c["odd-rate-wav-8k"] = write_wav(d / "rate8k.wav", 8000, 1, 1.5)
    c["odd-rate-wav-96k"] = write_wav(d / "rate96k.wav", 96000, 2, 1.5)
    c["many-channel-wav"] = write_wav(d / "ch8.wav", 48000, 8, 1.5)
    c["tiny-video"] = write_video(d / "tiny.mp4", 6, 16, 16)
    c["huge-resolution-short"] = write_video(d / "huge.mp4", 2, 3840, 2160)
    c["rotated-90"] = write_video(d / "rot.mp4", 8, 320, 240, rotate=90)
    c["one-frame-noise"] = write_video(d / "noise.mp4", 1, 64, 64, face=False)
    c["missing"] = d / "nope.mp4"
    c["folder-without-images"] = d / "folder"
    c["folder-without-images"].mkdir()
    (c["folder-without-images"] / "readme.txt").write_text("x")
    c["garbage-jpg"] = d / "bad.jpg"
    c["garbage-jpg"].write_bytes(b"\xff\xd8garbage")
    return c


CASES = ["zero-byte", "truncated-header", "truncated-past-index", "wrong-extension-text", "image-named-mp4",
         "video-named-jpg", "odd-codec-mpeg4-avi", "odd-codec-mjpeg-mkv", "odd-rate-wav-8k", "odd-rate-wav-96k",
         "many-channel-wav", "tiny-video", "huge-resolution-short", "rotated-90", "one-frame-noise",
         "missing", "folder-without-images", "garbage-jpg"]
REFUSED = {  # case → what its error says
    "zero-byte": "empty (0 bytes)",
    "truncated-header": "",
    "wrong-extension-text": "not a media file",
    "truncated-past-index": "cut off before its index",
    "missing": "no such file",
    "folder-without-images": "holds no images",
    "garbage-jpg": "not an image",
    "video-named-jpg": "holds a video",  # and the fix is to rename it, not "pass a JPEG"
}


KEEP = '{"t":0,"frame":0}\n'  # an earlier log that a refused run must leave alone
RECORD_CASES = {  # issue 9, items 2 and 9: a refused --record costs no log; each error's fix is the right one
    "record-preset": ({"EMOTIOND_RECORD__PRESET": "fastest"}, "rec", "record.preset"),
    "record-codec": ({"EMOTIOND_RECORD__VIDEO_CODEC": "nosuchcodec"}, "rec", "record.video_codec"),
    "record-into-a-file": ({}, "afile", "is a file"),
    "record-read-only": ({}, "ro/s", "not writable"),
}


@pytest.fixture(scope="module")
def corpus_runs(corpus, tmp_path_factory, single_face_mp4):
    """`emotiond run` on every case and with every refused --record, in two processes that each
    run their share in turn (start-up and imports are most of a case's cost)."""
    d = tmp_path_factory.mktemp("corpus-logs")
    jobs = {c: (["run", corpus[c], "--log", d / f"{c}.jsonl", "--no-progress"], {}) for c in CASES}
    (d / "afile").write_text("x")
    (d / "ro").mkdir()
    (d / "ro").chmod(0o500)
    for name, (env, target, _) in RECORD_CASES.items():
        if name == "record-read-only" and os.geteuid() == 0:
            continue  # root may write anywhere
        (d / f"{name}.jsonl").write_text(KEEP)
        jobs[name] = (["run", single_face_mp4, "--log", d / f"{name}.jsonl", "--overwrite",
                       "--record", d / name / target if target == "rec" else d / target, "--no-progress"], env)
    # item 3: a slow encoder (veryslow preset, a 0.1 s queue) behind a fast file reader
    clip = write_video(d / "bp.mp4", 30, 640, 360, audio=(44100, 2))  # 1 s: the encoder is the slow part
    jobs["back-pressure"] = (["run", clip, "--log", d / "back-pressure.jsonl", "--record", d / "bp-rec",
                              "--no-progress", "--no-voice"],
                             {"EMOTIOND_RECORD__PRESET": "veryslow", "EMOTIOND_RECORD__QUEUE_SECONDS": "0.1"})
    runs = cli_many(jobs, d)
    print("\ncases by time: " + ", ".join(f"{c} {r.seconds:.1f} s" for c, r in sorted(runs.items(), key=lambda kv: -kv[1].seconds)))
    return {c: (runs[c], d / f"{c}.jsonl") for c in jobs}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_a_clear_error_or_runs(corpus_runs, case):
    proc, log = corpus_runs[case]
    clean(proc)
    if case in REFUSED:
        assert proc.returncode == 2 and REFUSED[case] in proc.stderr, proc.stderr
    if proc.returncode == 0:
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        assert lines, "a run that succeeds logs something"
        if case == "rotated-90":
            assert any(r["faces"] for r in lines)  # upright: the face is found


# --- issue 9, item 2 and 9: a refused --record costs no log; each error's fix is the right one --------

@pytest.mark.slow
@pytest.mark.parametrize("case", list(RECORD_CASES))
def test_a_refused_record_is_named_and_leaves_the_log_alone(corpus_runs, case):
    if case == "record-read-only" and os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    proc, log = corpus_runs[case]
    clean(proc)
    says = RECORD_CASES[case][2]
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert "free space" not in proc.stderr and "replay it" not in proc.stderr
    assert log.read_text() == KEEP
    assert not (log.parent / case).exists()  # no session folder made


# --- item 8: FIFOs and devices -------------------------------------------------------------------

def test_fifo_and_device_sources_are_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    proc = cli("run", fifo, "--no-progress", timeout=60)  # no writer: must not wait for one
    clean(proc)
    assert proc.returncode == 2 and "FIFO" in proc.stderr and "empty" not in proc.stderr
    assert time.monotonic() - t0 < 60
    proc = cli("run", "/dev/zero", "--no-progress", timeout=60)
    clean(proc)
    assert proc.returncode == 2 and "is a device" in proc.stderr and "camera" in proc.stderr


# --- item 10: closed stdout ------------------------------------------------------------------------

def test_closed_stdout_is_a_clean_error(single_face_mp4):
    proc = cli("run", single_face_mp4, "--no-progress", shell_redirect=">&-", timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "standard output is closed" in proc.stderr and "--log" in proc.stderr and "Traceback" not in proc.stderr


# --- item 9: a wrong sha256 in a card is not blamed on the model file ----------------------------------

def test_wrong_sha256_in_a_card_names_the_card(tmp_path):
    from emotiond import registry
    from emotiond.errors import ModelError

    d = tmp_path / "models"
    shutil.copytree(REPO / "models", d)
    card = d / "silero_vad.card.toml"
    text = card.read_text()
    card.write_text(re.sub(r'(?m)^sha256 = "(.)', lambda m: f'sha256 = "{"0" if m.group(1) != "0" else "1"}', text))
    with pytest.raises(ModelError) as e:
        registry.resolve("silero_vad", d)
    assert "card's sha256 is wrong" in e.value.message and "silero_vad.card.toml" in e.value.hint
    card.write_text(re.sub(r'(?m)^sha256 = ".*"$', 'sha256 = "abc"', text))
    with pytest.raises(ModelError) as e:
        registry.resolve("silero_vad", d)
    assert "malformed sha256" in e.value.message


# --- items 3 and 4: recording a file drops nothing; SIGTERM / SIGHUP finalise -------------------------

def _frames(mp4: Path) -> int:
    with av.open(str(mp4)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.mark.slow
def test_recording_a_file_applies_back_pressure_instead_of_dropping(corpus_runs):
    """A slow encoder (veryslow preset, a 0.1 s queue) behind a fast file reader: nothing dropped."""
    proc, log = corpus_runs["back-pressure"]
    clean(proc)
    rec = log.parent / "bp-rec"
    md = json.loads((rec / "metadata.json").read_text())
    n_log = len(log.read_text().splitlines())
    assert md["status"] == "complete"
    assert md["counters"]["frames_dropped"] == 0 and md["counters"]["audio_samples_dropped"] == 0
    assert md["counters"]["frames_written"] == n_log == _frames(rec / "media.mp4")


SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@pytest.fixture(scope="module")
def signalled(tmp_path_factory, pexels_mp4):
    """A recording run per signal, side by side, each signalled once it has logged 30 results."""
    base = tmp_path_factory.mktemp("signals")
    runs = {}
    for sig in SIGNALS:
        d = base / sig.name
        d.mkdir()
        e = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(d)}
        e.pop("EMOTIOND_CONFIG", None)
        proc = subprocess.Popen([sys.executable, "-m", "emotiond", "run", str(pexels_mp4), "--clock", "realtime",
                                 "--log", str(d / "log.jsonl"), "--record", str(d / "rec"), "--no-progress"],
                                env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs[sig] = (proc, d)
    out = {}
    try:
        waiting = set(SIGNALS)
        deadline = time.monotonic() + 90
        while waiting and time.monotonic() < deadline:
            for sig in list(waiting):
                proc, d = runs[sig]
                log = d / "log.jsonl"
                if proc.poll() is not None:
                    waiting.discard(sig)  # ended on its own: the test says so
                elif log.exists() and len(log.read_text().splitlines()) >= 30:
                    proc.send_signal(sig)
                    waiting.discard(sig)
            time.sleep(0.1)
        for sig, (proc, d) in runs.items():
            _, err = proc.communicate(timeout=60)
            out[sig] = (proc.returncode, err, d)
    finally:
        for proc, _ in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_sigterm_and_sighup_finalise_a_recording(signalled, sig):
    rc, err, d = signalled[sig]
    assert rc == 128 + sig, err[-2000:]
    assert "Traceback" not in err
    md = json.loads((d / "rec" / "metadata.json").read_text())
    assert md["status"] == "complete", md["status"]
    c = md["counters"]
    assert c["frames_dropped"] == 0 and c["frames_written"] == c["frames_offered"] > 0
    assert _frames(d / "rec" / "media.mp4") == c["frames_written"]  # nothing lost


# --- item 9: a full disk says so in the session's metadata -------------------------------------------

@pytest.mark.slow
def test_full_disk_marks_the_session_failed(tmp_path, single_face_mp4):
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-m", "true"], capture_output=True).returncode != 0:
        if subprocess.run([unshare or "unshare", "-r", "-m", "true"], capture_output=True).returncode != 0:
            pytest.skip("cannot mount a small tmpfs here (unshare -m not permitted)")
        prefix = [unshare, "-r", "-m"]
    else:
        prefix = [unshare, "-m"]
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = (f'mount -t tmpfs -o size=160k tmpfs "{mnt}" && '
              f'"{sys.executable}" -m emotiond run "{single_face_mp4}" --record "{mnt}/s" --log "{tmp_path}/log.jsonl" '
              f'--no-progress --no-voice; echo "rc=$?"; cat "{mnt}/s/metadata.json"')
    e = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    proc = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, env=e, timeout=180)
    assert "rc=2" in proc.stdout, proc.stdout[-500:] + proc.stderr[-2000:]
    assert "disk is full" in proc.stderr and "Traceback" not in proc.stderr
    md = json.loads(proc.stdout.split("rc=2", 1)[1])
    assert md["status"] == "failed" and "disk is full" in (md["end_reason"] or "")
