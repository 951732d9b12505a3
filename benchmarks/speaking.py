#!/usr/bin/env python3
"""Who is talking: per-face cost (1, 2 and 5 faces) and quality over random two-person scenes.

    python benchmarks/speaking.py [--frames 500]
    python benchmarks/speaking.py --quality [--seeds 1-8] [--duration 8]

Quality (``--quality``): for each seed, the two-person scene of the tests (tests/avscene.py:
two real faces talking to independent seeded rhythms, speech shaped by one mouth) is built
and every variant runs through the real engine (mediapipe, silero VAD, voice model); the
figures are those the tests assert on (``avscene.measure``): the speaking face primary on
the speech frames (a, b), the media time from a change of speaker to the primary following
(switch), faces wrongly marked speaking and the off-screen voice share (neither), a silent
face marked (silent_face).  Prints every seed, then mean and worst.  About 20–40 s of CPU per
seed.

Cost:

Real faces: the landmarks and blendshapes mediapipe finds in ../shared/media/single_face.jpg,
copied side by side N times with mouths that open and close; audio: noise whose loudness
follows one of them, in 40 ms chunks (one per 25 fps frame).  Per frame it times
``SyncSpeakerDetector.update`` (speaker detection, new per face) and ``People.update``
(per-person fusion: one fusion per face, which the engine ran per track before as well),
and, as the baseline measured in the same run, the face-expression model on the same faces
(crop + ONNX, the stage that already runs per face).  Prints µs per face per frame (medians)
and the detector's ratio to the baseline.  Budget: ≤ 1 ms per face per frame.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def _seeds(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def quality(seeds: list[int], duration: float) -> int:
    import tempfile

    from tests import avscene

    media = ROOT.parent / "shared" / "media"
    figures = [("a", "primary", min), ("b", "primary", min), ("switch", "latency", max), ("switch", "after", min),
               ("neither", "marked", max), ("neither", "offscreen", min), ("silent_face", "marked", max)]
    names = [f"{v}.{k}" for v, k, _ in figures]
    print(f"{len(seeds)} scenes of {duration:g} s; " + ", ".join(names))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            scene = avscene.build(Path(tmp) / str(seed), media, seed=seed, duration=duration)
            got = {v: avscene.measure(scene, v, avscene.analyse(scene.path(v))) for v in dict.fromkeys(v for v, _, _ in figures)}
            rows.append([got[v][k] for v, k, _ in figures])
            print(f"seed {seed:>3}: " + "  ".join(f"{n} {x:.3f}" for n, x in zip(names, rows[-1])), flush=True)
    cols = list(zip(*rows))
    print("mean     : " + "  ".join(f"{n} {statistics.mean(c):.3f}" for n, c in zip(names, cols)))
    print("worst    : " + "  ".join(f"{n} {w(c):.3f}" for n, c, (_, _, w) in zip(names, cols, figures)))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--quality", action="store_true", help="quality over random two-person scenes instead of the cost")
    ap.add_argument("--seeds", default="1-8", help="scene seeds for --quality: 1-8, 3,5,9 …")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per scene for --quality")
    args = ap.parse_args()
    if args.quality:
        return quality(_seeds(args.seeds), args.duration)

    import cv2

    from emotiond.config import load_config
    from emotiond.engine import face_emotions, open_landmarker
    from emotiond.face.emotion import FaceEmotionModel
    from emotiond.face.speaking import SyncSpeakerDetector
    from emotiond.fusion import evidence
    from emotiond.people import People
    from emotiond.types import AudioChunk, FaceObservation

    image_path = ROOT.parent / "shared" / "media" / "single_face.jpg"
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    cfg = load_config()
    lm = open_landmarker(cfg, video=False)
    try:
        face = lm.detect(image)[0]
    finally:
        lm.close()
    model = FaceEmotionModel.from_registry(cfg.models_dir, provider="cpu", threads=1)
    rng = np.random.default_rng(0)
    fps, rate = 25, 16000
    print(f"{args.frames} frames at {fps} fps; µs per face per frame (median over frames)")
    print(f"{'faces':>5} {'speaker':>8} {'people':>8} {'expression model':>17} {'speaker/model':>14}")
    for n in (1, 2, 5):
        det = SyncSpeakerDetector()
        people = People({"face": 1.0, "voice": 1.0})
        voice = evidence("voice", np.array([0.5, 0.1, 0.1, 0.2, 0.1, 0.0, 0.0]), 0.8,
                         np.array([1, 1, 1, 1, 1, 0, 0], bool))
        mouths = np.clip(np.convolve(rng.random((args.frames + 3) * n) > 0.6, np.ones(4) / 4, "same"), 0, 1)
        mouths = mouths[: args.frames * n].reshape(args.frames, n)
        ours, fusion, base = [], [], []
        for k in range(args.frames):
            t = k / fps
            faces = []
            for i in range(n):
                lmk = face.landmarks.copy()
                lmk[14, 1] += 20.0 * mouths[k, i]
                f = FaceObservation(lmk, face.blendshapes, face.bbox, face.quality, track_id=i + 1,
                                    emotion=np.full(7, 1 / 7))
                faces.append(f)
            noise = rng.normal(0, 0.3, rate // fps) * mouths[k, 0]
            det.insert_audio(AudioChunk(t, noise.astype(np.float32), rate))
            t0 = time.perf_counter()
            state = det.update(t, faces, 0.9)
            t1 = time.perf_counter()
            people.update(t, faces, state, voice)
            t2 = time.perf_counter()
            face_emotions(model, image, faces)
            t3 = time.perf_counter()
            if k >= 50:  # after the warm-up
                ours.append((t1 - t0) / n)
                fusion.append((t2 - t1) / n)
                base.append((t3 - t2) / n)
        a, f, b = (statistics.median(x) * 1e6 for x in (ours, fusion, base))
        print(f"{n:>5} {a:>8.0f} {f:>8.0f} {b:>17.0f} {a / b:>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
