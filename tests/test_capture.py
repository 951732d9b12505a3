"""Live capture with simulated devices running in real time on their own threads.

The camera and microphone simulators (tests/simdevices.py) stand in for the
drivers only: the capture threads, the PortAudio callback, the timestamping,
the ring buffer and the live source above them are the real code.  Timing is
checked against the simulators' ground truth, never against wall-clock budgets.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from emotiond.capture import devices
from emotiond.capture.microphone import AudioTimeline, MicrophoneCapture
from emotiond.config import load_config
from emotiond.errors import DeviceError
from emotiond.sources.live import LiveSource
from emotiond.types import VideoFrame
from tests.simdevices import SimCamera, SimMicrophone, click_times, frame_index_of

pytestmark = pytest.mark.serial  # watches the wall clock: run alone, after the parallel part (make test)

RATE = 48000
AV_BUDGET = 0.045  # seconds: the required A/V alignment


def make_live(cam, sim, *, drop_stale=False, **overrides):
    cfg = load_config(None, {"capture.stall_timeout": 0.5, **overrides})
    mic = MicrophoneCapture(stream_factory=sim.factory, rate=RATE) if sim is not None else False
    return LiveSource(cfg, camera=cam, microphone=mic, drop_stale=drop_stale)


def collect(src, seconds, per_frame=None):
    frames, chunks = [], []
    t_end = time.monotonic() + seconds
    try:
        for item in src.items():
            if isinstance(item, VideoFrame):
                frames.append(item)
                if per_frame:
                    per_frame(item)
            else:
                chunks.append(item)
            if time.monotonic() > t_end:
                break
    finally:
        src.close()
    return frames, chunks


def assert_contiguous(chunks, src):
    """Consecutive chunks join up (within 2 ms), except where samples were really lost."""
    gaps = [b.t - (a.t + a.duration) for a, b in zip(chunks, chunks[1:])]
    s = src.stats()
    lost = s["audio_overflows"] + s["audio_queue_drops"] + s["audio_resyncs"]
    assert all(g > -0.002 for g in gaps), "audio time never runs backwards"
    assert sum(g > 0.002 for g in gaps) <= lost, (max(gaps), s)


# -- the audio timeline (pure) -----------------------------------------------------------------
def _run_timeline(n_blocks, *, jitter, drift_ppm=0.0, adc=False, lost=None, flag_lost=True, seed=0):
    rng = np.random.default_rng(seed)
    tl = AudioTimeline(RATE)
    b = 480
    errors = []
    k = 0
    while k < n_blocks:
        overflow = False
        if lost and k in lost:
            k += lost[k]
            overflow = flag_lost
        true_first = 1.0 + k * b / (RATE * (1 + drift_ppm * 1e-6))
        dur = b / RATE
        delay = jitter(rng)
        arrival = true_first + dur + delay
        age = (dur + delay) if adc else None
        t = tl.stamp(arrival, b, age, overflow)
        errors.append(t - true_first)
        k += 1
    return tl, np.array(errors)


def test_timeline_follows_the_fastest_arrivals_despite_scheduling_jitter():
    def jitter(rng):  # mostly a few ms late, sometimes 25 ms (a busy machine)
        return rng.exponential(0.003) + (0.025 if rng.random() < 0.05 else 0.0)

    tl, err = _run_timeline(600, jitter=jitter)
    assert abs(err[0]) < 0.04  # the first block is as late as it arrived
    assert np.max(np.abs(err[200:])) < 0.0015, "after 2 s the stamps are within 1.5 ms of the truth"
    assert np.all(np.diff(err) < 0.001) and tl.resyncs == 0  # slewed, never jumped


def test_timeline_uses_portaudio_adc_times_and_tracks_drift():
    tl, err = _run_timeline(300, jitter=lambda r: r.exponential(0.01), adc=True)
    assert np.max(np.abs(err)) < 1e-6 and tl.adc_times_used == 300
    _, err = _run_timeline(1000, jitter=lambda r: r.exponential(0.002), drift_ppm=300.0)
    assert np.max(np.abs(err[150:])) < 0.0015, "300 ppm of clock drift is followed"


def test_timeline_reanchors_after_overflows_and_unflagged_losses():
    tl, err = _run_timeline(300, jitter=lambda r: 0.001, lost={100: 5})
    assert np.max(np.abs(err)) < 0.002 and tl.resyncs == 0  # flagged overflow: re-anchored at once
    tl, err = _run_timeline(300, jitter=lambda r: 0.001, lost={100: 10}, flag_lost=False)
    assert tl.resyncs == 1 and np.max(np.abs(err)) < 0.002


# -- live capture ---------------------------------------------------------------------------------
def test_live_capture_order_timestamps_and_injected_av_offset():
    """Flashes every 0.5 s on the camera; the microphone hears a click 100 ms after each flash.
    The offset measured back from the stamps must be 100 ms ± 45 ms."""
    offset = 0.100
    start = time.monotonic() + 0.3
    fps = 30.0
    flash = tuple(range(15, 90, 15))
    cam = SimCamera(fps=fps, start=start, flash_frames=flash, latency=0.004)
    sim = SimMicrophone(start=start, click_times=tuple(start + k / fps + offset for k in flash), latency=0.002)
    src = make_live(cam, sim)
    assert src.info.live and src.info.has_video and src.info.has_audio and src.info.audio_rate == RATE
    frames, chunks = collect(src, 2.6)

    # order and indices
    idx = [f.index for f in frames]
    assert idx == sorted(set(idx)) and len(frames) >= 45
    # the camera's own frame numbers, read from the pixels: in order; equal to ours unless the
    # simulated driver skipped frames (it hands out its newest when the reader stalled > 1 frame,
    # as a real one does; a scheduling hiccup of ~33 ms is enough, even on an idle machine)
    ks = [frame_index_of(f.image) for f in frames]
    assert all(b > a for a, b in zip(ks, ks[1:]))
    gaps = sum(b - a - 1 for a, b in zip(ks, ks[1:])) - sum(b - a - 1 for a, b in zip(idx, idx[1:]))
    assert 0 <= gaps <= cam.skipped  # frames missing beyond what we skipped: only those the driver skipped
    if cam.skipped == 0:
        assert ks == idx
    ft = [f.t for f in frames]
    assert all(b > a for a, b in zip(ft, ft[1:]))
    ct = [c.t for c in chunks]
    assert all(b > a for a, b in zip(ct, ct[1:]))
    assert all(c.rate == RATE and c.samples.dtype == np.float32 and c.samples.ndim == 1 for c in chunks)
    assert_contiguous(chunks, src)

    # stamps against ground truth (same clock)
    clock = src.clock
    verr = [f.t - clock.from_monotonic(cam.true_times[k]) for f, k in zip(frames, ks)]
    flashes = [f for f in frames if f.image[8:].mean() > 250]
    clicks = click_times(chunks)
    true_clicks = [clock.from_monotonic(t) for t in sim.click_times]
    aerr = [min((c - tc for c in clicks), key=abs) for tc in true_clicks if tc < clicks[-1] + 0.01]
    pairs = []
    for f in flashes:
        c = min(clicks, key=lambda c: abs(c - f.t - offset))
        pairs.append(c - f.t)
    print(
        f"\nvideo stamp error median {statistics.median(verr) * 1e3:.1f} ms (max {max(verr) * 1e3:.1f}), "
        f"audio stamp error median {statistics.median(aerr) * 1e3:.2f} ms (max {max(map(abs, aerr)) * 1e3:.2f}), "
        f"measured A/V offsets {[round(float(p) * 1e3, 1) for p in pairs]} ms (injected {offset * 1e3:.0f})"
    )
    assert len(pairs) >= 3
    assert abs(statistics.median(pairs) - offset) <= AV_BUDGET
    assert abs(statistics.median(verr)) < AV_BUDGET and abs(statistics.median(aerr)) < AV_BUDGET
    assert src.status == "stopped"


def test_overflows_are_counted_and_leave_gaps_of_the_right_size():
    cam = SimCamera(160, 120, 30.0)
    sim = SimMicrophone(overflow_blocks={30: 5, 100: 3})
    src = make_live(cam, sim)
    _, chunks = collect(src, 1.5)
    stats = src.stats()
    gaps = [b.t - (a.t + a.duration) for a, b in zip(chunks, chunks[1:])]
    big = [g for g in gaps if g > 0.005]
    # the two injected overflows (a starved simulator thread on a busy machine may add real ones)
    assert stats["audio_overflows"] >= 2 and len(big) == stats["audio_overflows"], (stats, big)
    assert any(g == pytest.approx(0.05, abs=0.012) for g in big) and any(g == pytest.approx(0.03, abs=0.012) for g in big)


def test_callback_only_queues_and_counts_drops_when_the_pump_is_behind():
    sim = SimMicrophone()
    mic = MicrophoneCapture(stream_factory=sim.factory, rate=RATE, queue_seconds=0.05)
    block = np.zeros((480, 1), np.float32)

    class Flags:
        input_overflow = True

        def __bool__(self):
            return True

    for _ in range(12):  # the pump is not running: the queue (5 blocks) fills up
        mic._callback(block, 480, None, Flags())
    assert mic.overflows == 12 and mic.queue_drops == 12 - mic._q.maxsize
    assert mic._q.get_nowait()[3] is not block  # a copy, never PortAudio's buffer
    mic.stop()


def test_a_slow_consumer_skips_stale_frames_keeps_all_audio_and_memory_stays_bounded():
    cam = SimCamera(320, 240, 30.0)
    sim = SimMicrophone()
    src = make_live(cam, sim, drop_stale=True, **{"capture.ring_seconds": 1.0, "capture.ring_video_seconds": 0.3})
    peak = {"frames": 0, "audio": 0.0}
    coverage = []

    def slow(frame):  # a 10 fps consumer that looks up each frame's audio in the ring
        s = src.ring.stats()
        peak["frames"] = max(peak["frames"], s.frames_in_buffer)
        peak["audio"] = max(peak["audio"], s.audio_span)
        if src.ring.audio_window(frame.t - 0.2, frame.t) is not None:
            coverage.append(src.ring.audio_coverage(frame.t - 0.2, frame.t))
        time.sleep(0.1)

    frames, chunks = collect(src, 1.6, per_frame=slow)
    s = src.stats()
    assert s["frames_dropped"] > 10
    assert s["frames_yielded"] == len(frames)
    assert s["frames_yielded"] + s["frames_dropped"] <= s["frames_captured"] <= s["frames_yielded"] + s["frames_dropped"] + 5
    idx = [f.index for f in frames]
    assert idx == sorted(idx) and max(np.diff(idx)) > 1  # gaps where frames were skipped
    assert_contiguous(chunks, src)  # every audio sample still arrives
    assert len(chunks) <= len(frames) + 3, "audio travels with the frames, merged"
    # bounded memory: 0.3 s of frames, 1 s of audio, whatever the consumer does
    assert peak["frames"] <= 0.3 * 30 + 2 and peak["audio"] <= 1.0 + 0.011
    assert src.ring.stats().frames_evicted > 0 and src.ring.stats().chunks_evicted > 0
    assert coverage and statistics.median(coverage) > 0.8  # the audio just before each frame is there


@pytest.mark.parametrize("failure", ["camera unplugged", "camera hangs", "microphone unplugged"])
def test_device_loss_mid_session_ends_with_a_visible_error(failure):
    cam = SimCamera(
        160, 120, 30.0,
        fail_after_frames=12 if failure == "camera unplugged" else None,
        hang_after_frames=12 if failure == "camera hangs" else None,
    )
    sim = SimMicrophone(lose_after=0.4 if failure == "microphone unplugged" else None)
    src = make_live(cam, sim, drop_stale=True)
    frames = []
    t0 = time.monotonic()
    with pytest.raises(DeviceError) as err:
        for item in src.items():
            if isinstance(item, VideoFrame):
                frames.append(item)
            assert time.monotonic() - t0 < 10, "the source must not hang"
    elapsed = time.monotonic() - t0
    src.close()
    assert time.monotonic() - t0 - elapsed < 1.0, "close returns promptly"
    assert src.status == "lost" and src.error is err.value
    what = "microphone" if "microphone" in failure else "camera"
    assert what in str(err.value) and err.value.hint
    assert len(frames) >= 6
    assert src.stats()["status"] == "lost" and "error" in src.stats()


def test_requested_size_and_rate_are_kept_and_the_actual_ones_reported():
    cam = SimCamera(640, 480, 15.0)
    cfg = load_config(None, {"capture.width": 1280, "capture.height": 720, "capture.fps": 30.0})
    src = LiveSource(cfg, camera=cam, microphone=False)
    assert cam.requested[3] == 1280 and cam.requested[4] == 720 and cam.requested[5] == 30.0
    assert 6 in cam.requested  # MJPG asked for above VGA
    assert (src.info.width, src.info.height, src.info.fps) == (640, 480, 15.0)
    assert src.info.extra["camera"]["requested"] == {"width": 1280, "height": 720, "fps": 30.0}
    assert not src.info.has_audio
    src.close()


def test_missing_portaudio_is_a_clear_error_and_the_camera_still_works(monkeypatch):
    monkeypatch.setattr(devices, "_sd", None)
    monkeypatch.setattr(devices, "_sd_error", "PortAudio library not found")
    with pytest.raises(DeviceError) as err:
        devices.list_microphones()
    assert "PortAudio" in err.value.message and "apt-get install libportaudio2" in err.value.hint
    with pytest.raises(DeviceError):
        MicrophoneCapture()
    text, status = devices.describe_devices()
    assert status == 1 and "libportaudio2" in text and "cameras:" in text
    # the default microphone is optional: video only, with a warning
    src = LiveSource(load_config(None), camera=SimCamera(160, 120, 30.0))
    assert src.info.has_video and not src.info.has_audio
    assert any("libportaudio2" in w for w in src.warnings)
    src.close()
    # a microphone the user asked for is not
    with pytest.raises(DeviceError):
        LiveSource(load_config(None, {"capture.microphone": "USB"}), camera=SimCamera(160, 120, 30.0))


def test_cameras_are_listed_from_sysfs(tmp_path):
    for n, name, index in [(0, "Integrated Camera: Integrated C", "0"), (1, "Integrated Camera: Integrated C", "1"),
                           (2, "Logitech BRIO", "0")]:
        d = tmp_path / f"video{n}"
        d.mkdir()
        (d / "name").write_text(name + "\n")
        (d / "index").write_text(index + "\n")
    cams = devices._linux_cameras(tmp_path)
    assert [(c.index, c.name) for c in cams] == [(0, "Integrated Camera: Integrated C"), (2, "Logitech BRIO")]
    assert devices._linux_cameras(tmp_path / "absent") == []


def test_no_camera_gives_a_hint_not_a_traceback():
    if Path("/dev/video0").exists():
        pytest.skip("a real camera is present")
    with pytest.raises(DeviceError) as err:
        LiveSource(load_config(None), camera="0", microphone=False)
    assert "camera" in err.value.message and err.value.hint
    assert devices.camera_present("0") is False
