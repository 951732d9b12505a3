"""Live latency: simulated 30 fps camera + 48 kHz microphone → LiveSource → runner + Engine.

    python benchmarks/live_latency.py [--seconds 20] [--record DIR] [--no-voice] [--queue-size N]

The simulated devices (tests/simdevices.py) deliver in real time on their own
threads a face clip (assets: ../shared/media/single_face.mp4, looped) and speech
(tests/data/speech_en_espeak.flac, looped, at 48 kHz); everything above them is
the product: capture threads, ring buffer, live source, runner, engine (mediapipe
+ ONNX), fusion.  Latency is measured per fused result as ``clock.now() − frame.t``:
from the frame's capture stamp to the moment its FrameResult leaves the engine.
Prints p50/p95/max latency after a warm-up, and every frame that was captured but
not analysed (dropped), with the reasons.  Goal: p95 ≤ 40 ms, no drops.
Timings on a shared 2-core machine are noisy: compare runs made one after another.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds ignored at the start")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--no-voice", action="store_true", help="camera only")
    ap.add_argument("--record", metavar="DIR", nargs="?", const="", default=None,
                    help="also record the session (into DIR, or a temporary folder)")
    ap.add_argument("--queue-size", type=int, default=None, help="the runner's queue size (default: the runner's)")
    ap.add_argument("--cold", action="store_true", help="no voice-path warm-up before capture starts")
    args = ap.parse_args()

    from simdevices import SimCamera, SimMicrophone, face_frames, speech_signal

    from emotiond.capture.microphone import MicrophoneCapture
    from emotiond.config import load_config
    from emotiond.engine import Engine
    from emotiond.errors import ModelError
    from emotiond.runner import run
    from emotiond.sources.base import SourceInfo
    from emotiond.sources.live import LiveSource
    from emotiond.types import VideoFrame

    voice = not args.no_voice
    if voice:
        try:  # an audio-only engine loads just the voice models: are they installed?
            Engine(load_config(None), source_info=SourceInfo(kind="audio", uri="probe", has_video=False, has_audio=True)).close()
        except ModelError as exc:
            print(f"voice models unavailable ({exc.message}): the microphone is captured, the voice is not analysed")
            voice = None
    cfg = load_config(None, {"voice.enabled": voice is not False})
    frames = face_frames()
    h, w = frames[0].shape[:2]
    # the simulated devices start when the capture threads first read them
    cam = SimCamera(w, h, args.fps, images=frames, latency=0.004)
    sim = SimMicrophone(signal=speech_signal(args.rate)) if voice is not False else None
    mic = MicrophoneCapture(stream_factory=sim.factory, rate=args.rate) if sim else False
    live = LiveSource(cfg, camera=cam, microphone=mic)
    source = live
    recorder = None
    if args.record is not None:
        from emotiond.recording import RecordingSource, SessionRecorder

        target = Path(args.record) if args.record else Path(tempfile.mkdtemp(prefix="emotiond-bench-")) / "session"
        source = RecordingSource(live, SessionRecorder(target, cfg))
        recorder = source.recorder
        source.start()

    if voice is None:  # capture the microphone, analyse the face only
        cfg = load_config(None, {"voice.enabled": False})
    if voice and not args.cold:
        # one-time, process-wide costs of the voice path (librosa/numba first use: seconds) are
        # paid by a throwaway engine, so they do not count as live latency
        from emotiond.types import AudioChunk

        warm = Engine(cfg, source_info=SourceInfo(kind="audio", uri="warm-up", has_video=False, has_audio=True))
        idx = np.arange(3 * args.rate)
        warm.insert_audio(AudioChunk(t=0.0, samples=speech_signal(args.rate)(idx, args.rate), rate=args.rate))
        warm.close()
    engine = Engine(cfg, source_info=source.info)

    clock = live.clock
    lat: list[float] = []
    analysed = {"warm": 0, "measured": 0}
    t_measure = None
    t_stop = None

    stop = threading.Event()

    def on_result(res, frame) -> None:
        nonlocal t_measure, t_stop
        if frame is None:
            return
        now = clock.now()
        if t_measure is None:
            t_measure = now + args.warmup
            t_stop = t_measure + args.seconds
        if now < t_measure:
            analysed["warm"] += 1
            return
        lat.append(now - frame.t)
        analysed["measured"] += 1
        if now >= t_stop:
            stop.set()

    yield_lat: list[float] = []

    class Timed:  # the source as the runner sees it, timing capture → handed to the runner
        info = source.info

        def items(self):
            for item in source.items():
                if isinstance(item, VideoFrame):
                    yield_lat.append(clock.now() - item.t)
                yield item

        def close(self):
            source.close()

    kwargs = {} if args.queue_size is None else {"queue_size": args.queue_size}
    print(f"simulated camera {w}x{h} @ {args.fps:g} fps, microphone {'%d Hz' % args.rate if mic else 'off'}, "
          f"voice analysis {'on' if voice else 'off'}, recording {'on' if recorder else 'off'}; "
          f"{args.warmup:g} s warm-up + {args.seconds:g} s measured …", flush=True)
    try:
        with engine:
            stats = run(Timed(), engine, [], clock="realtime", progress=False, on_result=on_result, stop=stop, **kwargs)
    finally:
        source.close()
    s = live.stats()
    ms = np.array(lat) * 1e3
    captured = s["frames_captured"]
    dropped_source = s["frames_dropped"]  # stale frames skipped by the live source
    dropped_camera = cam.skipped  # frames the capture thread was too late to read (driver overwrote them)
    not_analysed = captured - stats.frames  # includes frames still in flight when stopped
    print(f"capture → fused result latency over {len(ms)} frames: p50 {np.percentile(ms, 50):.1f} ms, "
          f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms (mean {ms.mean():.1f})")
    y = np.array(yield_lat) * 1e3
    print(f"  of which capture → handed to the runner (capture threads, ring buffer, live source): "
          f"p50 {np.percentile(y, 50):.1f} ms, p95 {np.percentile(y, 95):.1f} ms")
    print(f"frames: {captured} captured, {stats.frames} analysed; dropped: {dropped_source} stale (live source), "
          f"{dropped_camera} missed by the capture thread; {not_analysed - dropped_source} in flight at stop")
    if mic:
        print(f"audio: {s['audio_chunks']} blocks, {s['audio_overflows']} overflows, {s['audio_queue_drops']} queue drops, "
              f"{s['audio_resyncs']} re-anchors")
    if recorder is not None:
        c = recorder.counters()
        print(f"recording {recorder.path}: {c['frames_written']} frames written, {c['frames_dropped']} dropped, "
              f"queue peak {c['queue_peak_frames']}")
    stage = {k: v / max(1, stats.frames) * 1e3 for k, v in stats.stage_seconds.items()}
    print("per-frame stage time (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in stage.items()))
    goal = np.percentile(ms, 95) <= 40.0 and dropped_source + dropped_camera == 0
    per_second = [np.percentile(ms[i:i + 30], 95) for i in range(0, max(1, len(ms) - 29), 30)]
    print(f"median of the per-second p95s: {statistics.median(per_second):.1f} ms (less sensitive to other load)")
    print(f"goal (p95 ≤ 40 ms, no drops): {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
