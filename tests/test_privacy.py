"""Zero network: real runs of `emotiond run`, `replay` and the GUI under strace, and inside a
network namespace with no interfaces (`unshare -n`).

What counts as network (checked in every thread and child, ``strace -ff``):

* any ``connect``/``bind``/``sendto``/``sendmsg``/``sendmmsg``/``recvfrom`` whose address is not
  AF_UNIX / AF_NETLINK (a TCP connection, a DNS query to port 53, …);
* any socket other than AF_UNIX / AF_NETLINK / a datagram AF_INET(6) socket — the last are
  allowed only because two libraries create one and close it unused (libmediapipe's start-up
  probe; libcurl's IPv6 probe): without an address operation above they cannot send anything;
* any DNS lookup: reading /etc/resolv.conf;
* loading PortAudio (libportaudio: it probes JACK) for a file or session source.

onnxruntime's telemetry fires ~10 s after start and mediapipe's at the end of a run, so each
run lasts over 15 s (a 16 s clip paced at real time, small so that it costs little CPU; the
fast clock would end a run before the telemetry is due).  All six runs (run, replay, GUI;
under strace and in the namespace) go side by side.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.conftest import media

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LOCAL_FAMILIES = {"AF_UNIX", "AF_LOCAL", "AF_NETLINK"}
ADDRESS_CALLS = ("connect", "bind", "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg")


def network_violations(trace_dir: Path, portaudio_allowed: bool = False) -> list[str]:
    """Every line of an ``strace -ff -e trace=network,openat`` output that is network use."""
    bad = []
    for f in sorted(trace_dir.iterdir()):
        for line in f.read_text(errors="replace").splitlines():
            m = re.match(r"\s*(\w+)\(", line)
            if not m:
                continue
            call = m.group(1)
            if call == "socket":
                fam = re.match(r"\s*socket\((\w+),\s*([\w|]+)", line)
                if fam is None:
                    continue
                family, kind = fam.group(1), fam.group(2)
                if family in LOCAL_FAMILIES:
                    continue
                if family in ("AF_INET", "AF_INET6") and kind.startswith("SOCK_DGRAM"):
                    continue  # a probe; any use of it needs an address call, checked below
                bad.append(f"{f.name}: {line}")
            elif call in ADDRESS_CALLS:
                for family in re.findall(r"sa_family=(\w+)", line):
                    if family not in LOCAL_FAMILIES:
                        bad.append(f"{f.name}: {line}")
                        break
            elif call == "openat":
                if "/etc/resolv.conf" in line:
                    bad.append(f"{f.name}: DNS lookup: {line}")
                if not portaudio_allowed and re.search(r"libportaudio|libjack", line):
                    bad.append(f"{f.name}: PortAudio loaded for a file source: {line}")
    return bad


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def strace() -> list[str]:
    exe = shutil.which("strace")
    if exe is None or not _works([exe, "-f", "-o", os.devnull, "true"]):
        pytest.skip("strace is not installed or may not trace here (scripts/setup.sh installs it)")
    # --seccomp-bpf: the traced calls stop the process, the others (futex, read, …) run at full
    # speed; plain ptrace stops every call, which made a run several times slower than real time
    if _works([exe, "-f", "--seccomp-bpf", "-e", "trace=network,openat", "-o", os.devnull, "true"]):
        return [exe, "--seccomp-bpf"]
    return [exe]


@pytest.fixture(scope="module")
def netns() -> list[str]:
    exe = shutil.which("unshare")
    for cmd in ([exe, "-n"], [exe, "-r", "-n"]) if exe else ():
        if _works([*cmd, "true"]):
            return cmd
    pytest.skip("unshare -n (a network namespace) is not permitted here")


@pytest.fixture(scope="module")
def clip16(tmp_path_factory) -> Path:
    """The first 16 s of the Pexels clip at 320x180, 10 fps, with its audio track."""
    src = media("WolfgangLanger_Pexels.mp4")
    dst = tmp_path_factory.mktemp("privacy") / "clip16.mp4"
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vout = out.add_stream("libx264", rate=10)
        vout.width, vout.height, vout.pix_fmt = 320, 180, "yuv420p"
        vout.codec_context.time_base = Fraction(1, 10)
        ain = inp.streams.audio[0]
        aout = out.add_stream("aac", rate=ain.codec_context.sample_rate)
        n = 0
        for frame in inp.decode(video=0):
            if frame.time >= 16.0:
                break
            if frame.time + 1e-6 < n / 10:
                continue
            vf = frame.reformat(width=320, height=180, format="yuv420p")
            vf.pts, vf.time_base = n, Fraction(1, 10)
            out.mux(vout.encode(vf))
            n += 1
        out.mux(vout.encode(None))
        inp.seek(0)
        resampler = av.AudioResampler(format=aout.codec_context.format.name, layout=aout.codec_context.layout.name,
                                      rate=aout.codec_context.sample_rate)
        for frame in inp.decode(audio=0):
            if frame.time >= 16.0:
                break
            frame.pts = None
            for rf in resampler.resample(frame):
                out.mux(aout.encode(rf))
        out.mux(aout.encode(None))
    assert n >= 155
    return dst


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    env.pop("EMOTIOND_CONFIG", None)
    # a proxy the user set must not matter: emotiond overrides it for mediapipe's libcurl
    env["no_proxy"] = "*"
    return env


def _start(prefix: list[str], args: list[str], home: Path, trace: Path | None, strace: list[str] | None):
    cmd = list(prefix)
    if trace is not None:
        trace.mkdir(parents=True)
        cmd += [*strace, "-ff", "-qq", "-e", "trace=network,openat", "-e", "signal=none", "-o", str(trace / "t")]
    cmd += [sys.executable, "-m", "emotiond", *args]
    return subprocess.Popen(cmd, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _signal_emotiond(proc, sig) -> None:
    """Signal the python process (a child of strace/unshare, or proc itself)."""
    targets = [proc.pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        while out:
            targets += [int(p) for p in out]
            out = subprocess.run(["pgrep", "-P", out[-1]], capture_output=True, text=True).stdout.split()
    except OSError:
        pass
    os.kill(targets[-1], sig)


def _record_session(clip: Path, target: Path) -> Path:
    """A session of the clip to replay: recorded in-process (no analysis: a replay reads only
    the media and metadata)."""
    from emotiond.config import load_config
    from emotiond.recording import RecordingSource, SessionRecorder
    from emotiond.sources import open_source

    cfg = load_config(None)
    source = RecordingSource(open_source(str(clip), cfg), SessionRecorder(target, cfg))
    path = source.start()
    for _ in source.items():
        pass
    return path


GUI_SECONDS = 20.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory, clip16, strace, netns):
    """run (+ --record), replay, gui: each under strace and inside unshare -n, all six side by
    side; run and replay paced at real time so that each lasts over 15 s whatever the
    machine's speed, the GUI closed with Ctrl-C after 20 s."""
    base = tmp_path_factory.mktemp("runs")
    home = base / "home"
    home.mkdir()
    session = _record_session(clip16, base / "session")
    jobs = {}
    for where, prefix, trace in (("strace", [], True), ("netns", netns, False)):
        args = ["run", str(clip16), "--clock", "realtime", "--no-progress", "--log", str(base / f"run-{where}.jsonl"),
                "--record", str(base / f"session-{where}")]
        jobs[("run", where)] = _start(prefix, args, home, base / "t-run" if trace else None, strace)
        args = ["replay", str(session), "--clock", "realtime", "--no-progress",
                "--log", str(base / f"replay-{where}.jsonl")]
        jobs[("replay", where)] = _start(prefix, args, home, base / "t-replay" if trace else None, strace)
        jobs[("gui", where)] = _start(prefix, ["gui", str(clip16)], home, base / "t-gui" if trace else None, strace)
    t0 = time.monotonic()
    out = {}

    def finish(key):
        out[key] = _finish(jobs[key])
        print(f"{key[0]} ({key[1]}) ended {time.monotonic() - t0:.1f} s after the start")

    try:
        time.sleep(max(0.0, GUI_SECONDS - (time.monotonic() - t0)))
        for where in ("strace", "netns"):  # the window closes on SIGINT (strace passes it on)
            _signal_emotiond(jobs[("gui", where)], signal.SIGINT)
        with ThreadPoolExecutor(len(jobs)) as pool:
            list(pool.map(finish, jobs))
    finally:
        for proc in jobs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return base, out


def _lines(path: Path) -> int:
    return sum(1 for _ in open(path, encoding="utf-8"))


@pytest.mark.parametrize("mode", ["run", "replay", "gui"])
def test_no_network_under_strace(runs, mode):
    base, out = runs
    rc, _, err = out[(mode, "strace")]
    assert rc == 0, err[-2000:]
    # the GUI lists the microphones for its source picker: PortAudio is loaded there on purpose
    bad = network_violations(base / f"t-{mode}", portaudio_allowed=mode == "gui")
    assert not bad, "network use:\n" + "\n".join(bad[:20])
    _did_its_work(base, mode, "strace")


def _did_its_work(base: Path, mode: str, where: str) -> None:
    if mode == "run":
        assert _lines(base / f"run-{where}.jsonl") >= 155  # a file run paced at real time skips nothing
        assert (base / f"session-{where}" / "media.mp4").stat().st_size > 0
    if mode == "replay":  # real-time replay skips frames analysis cannot keep up with; the run skips none
        assert 1 <= _lines(base / f"replay-{where}.jsonl") <= _lines(base / f"run-{where}.jsonl")


@pytest.mark.parametrize("mode", ["run", "replay", "gui"])
def test_runs_complete_without_a_network(runs, mode):
    base, out = runs
    rc, _, err = out[(mode, "netns")]
    assert rc == 0, err[-2000:]
    assert "Traceback" not in err and "error" not in err.lower()
    _did_its_work(base, mode, "netns")


def test_other_commands_make_no_network_use(strace, tmp_path, single_face_jpg):
    """`models`, `config`, `eval` (face, on a tiny folder) and `train-voice --help`."""
    faces = tmp_path / "faces" / "happy"
    faces.mkdir(parents=True)
    shutil.copy(single_face_jpg, faces / "a.jpg")
    commands = (["models"], ["config"], ["eval", "--modality", "face", str(tmp_path / "faces")], ["train-voice", "--help"])
    procs = [_start([], args, tmp_path, tmp_path / f"t{i}", strace) for i, args in enumerate(commands)]  # side by side
    for i, (args, proc) in enumerate(zip(commands, procs)):
        trace = tmp_path / f"t{i}"
        rc, _, err = _finish(proc)
        if args[0] == "train-voice" and rc != 0 and "train" in err:
            continue  # the `train` extra is not installed: nothing ran
        assert rc == 0, (args, err[-1500:])
        bad = network_violations(trace)
        assert not bad, f"{args}: network use:\n" + "\n".join(bad[:20])


def test_the_checker_sees_a_connection_and_a_dns_lookup(strace, tmp_path):
    """The rules above can fail: a TCP connect to localhost and a name lookup are both caught."""
    trace = tmp_path / "t"
    trace.mkdir()
    code = ("import socket\n"
            "s = socket.socket(); s.settimeout(0.2)\n"
            "try: s.connect(('127.0.0.1', 9))\nexcept OSError: pass\n"
            "try: socket.getaddrinfo('example.invalid', 443)\nexcept OSError: pass\n")
    subprocess.run([*strace, "-ff", "-qq", "-e", "trace=network,openat", "-o", str(trace / "t"), sys.executable, "-c", code],
                   capture_output=True, timeout=60)
    bad = "\n".join(network_violations(trace))
    assert "SOCK_STREAM" in bad and "resolv.conf" in bad
