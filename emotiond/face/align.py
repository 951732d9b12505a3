"""Upright, fer-style face crops from mediapipe landmarks (pure numpy/OpenCV, no I/O).

The expression model (fer's mini-Xception, ``models/face_emotion_fer.card.toml``)
was trained on FER2013 and is used by fer itself on crops made like this: OpenCV's
Haar frontal-face box (``detectMultiScale``, scaleFactor 1.1, minNeighbors 5,
minSize 50), made square, grown by 10 px on every side (fer's ``offsets=(10, 10)``),
cut from the grayscale frame, resized to 64×64 with bilinear interpolation.
:func:`face_crop` makes the same framing from the 478 mediapipe landmarks instead
of a Haar box, and also turns the face upright, which fer does not.

Canonical geometry (all lengths in units of ``s``, see below):

* **Rotation**: the eye line (centre of the subject's right eye, mean of landmarks
  33 and 133, to the centre of the left eye, 362 and 263) becomes horizontal, the
  right eye on the image left.  The crop is rotated by that angle about its centre.
* **Scale** ``s``: the RMS distance of the 478 landmarks from their centroid in 3-D
  (x, y in pixels, z in mediapipe's units scaled by the image width, i.e. pixels too).
  Being 3-D it does not shrink when the head turns (yaw) or nods (pitch).
* **Centre**: the eye midpoint moved ``CENTER_BELOW_EYES * s`` down along the
  upright face axis (perpendicular to the eye line) and ``CENTER_RIGHT`` across it.
* **Side** of the square: ``SIDE * s``.

Calibration (``tools/calibrate_face_crop.py``, 2026-11-23): 138 face/Haar-box pairs
of five real people (``../shared/media`` stills and clips, scikit-image's astronaut;
one pair with a failed landmark fit left out).  fer's Haar box side was 3.20·s
(median; CV 4.5 %; per person 2.78–3.42), its centre 0.235·s below the eye midpoint
(pooled median; 0.257 as the median over the five sources), 0.025·s across.  fer's
10 px margins are fixed pixels, so their relative size depends on the face size;
``SIDE`` adds them for a 200 px Haar box (a face at webcam distance):
3.20·s · 220/200 ≈ 3.53·s.  On those pairs the model's output on :func:`face_crop`
differs from its output on fer's own crop by a mean total-variation distance of
0.089 (top-1 agreement 97 %), about what growing fer's Haar box by one detector
step (5 %) does (0.083, 94 %).

Sampling: bilinear (``cv2.warpAffine``, as fer's ``cv2.resize``), except that when the
crop shrinks the face by more than 2× it first warps to an intermediate multiple of
``size`` and area-averages down, so the small crop is not aliased.  fer's resize does
alias; area averaging cut the frame-to-frame change of the predictions on the Pexels
clip by 15 % (mean TV 0.041 -> 0.034) for 0.011 more TV from fer's crop.  Pixels
outside the frame repeat the nearest edge pixel (fer pads with the mean of the
frame's bottom rows).  Gray is ITU-R BT.601 luma (``cv2.COLOR_RGB2GRAY``, the
weights of fer's ``COLOR_BGR2GRAY``), taken after the warp.
"""

from __future__ import annotations

import cv2
import numpy as np

# Landmark indices (mediapipe canonical face mesh); "right" is the subject's right.
RIGHT_EYE = (33, 133)  # outer, inner corner
LEFT_EYE = (362, 263)  # inner, outer corner

SIDE = 3.53  # crop side / s
CENTER_BELOW_EYES = 0.24  # crop centre below the eye midpoint / s
CENTER_RIGHT = 0.0  # crop centre towards the image right of the upright face / s
MAX_SUPERSAMPLE = 4  # intermediate crop at most 4·size before area averaging


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(centre [x, y] in pixels, angle of the eye line in radians, side in pixels) of the crop."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 478 or lm.shape[1] < 2:
        raise ValueError(f"expected [478, 3] landmarks, got shape {lm.shape}")
    pts = lm[:, :3] if lm.shape[1] >= 3 else np.pad(lm[:, :2], ((0, 0), (0, 1)))
    right = pts[list(RIGHT_EYE), :2].mean(axis=0)
    left = pts[list(LEFT_EYE), :2].mean(axis=0)
    dx, dy = left - right
    angle = float(np.arctan2(dy, dx))
    s = float(np.sqrt(((pts - pts.mean(axis=0)) ** 2).sum(axis=1).mean()))
    if not np.isfinite(s) or s <= 0 or not np.isfinite(angle):
        raise ValueError("degenerate landmarks")
    c, si = np.cos(angle), np.sin(angle)
    down = np.array([-si, c])  # the upright face's "down" in image coordinates
    across = np.array([c, si])
    centre = (right + left) / 2 + (CENTER_BELOW_EYES * down + CENTER_RIGHT * across) * s
    return centre, angle, SIDE * s


def crop_matrix(landmarks: np.ndarray, size: int = 64) -> np.ndarray:
    """2×3 affine matrix from image to crop pixel coordinates, OpenCV convention
    (pixel centres at integers), as ``cv2.warpAffine`` takes it."""
    centre, angle, side = face_frame(landmarks)
    return _matrix(centre, angle, size / side, size)


def _matrix(centre: np.ndarray, angle: float, k: float, out: float) -> np.ndarray:
    # Landmarks put pixel i at [i, i+1) (mediapipe's normalised coordinates times
    # the size); OpenCV puts pixel centres at integers.  In OpenCV coordinates the
    # source point centre-0.5 goes to the crop's centre (out-1)/2.
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]]) * k  # rotate by -angle, scale by k
    t = (out - 1) / 2 - rot @ (centre - 0.5)
    return np.hstack([rot, t[:, None]]).astype(np.float64)


def face_crop(image_rgb: np.ndarray, landmarks: np.ndarray, size: int = 64, color: str = "gray") -> np.ndarray:
    """The face upright and framed as fer frames it: [size, size] uint8 gray, or with
    ``color="rgb"`` [size, size, 3] uint8 RGB (for models whose card asks for colour).

    ``image_rgb``: H×W×3 uint8 RGB.  ``landmarks``: [478, 3] float (x, y in pixels of
    ``image_rgb``; z scaled like x).  See the module docstring for the geometry.
    """
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got {image_rgb.shape} {image_rgb.dtype}")
    centre, angle, side = face_frame(landmarks)
    factor = int(np.clip(np.floor(side / size), 1, MAX_SUPERSAMPLE))
    if side / size <= 2.0:
        factor = 1
    inner = size * factor
    m = _matrix(centre, angle, inner / side, inner)
    patch = cv2.warpAffine(
        image_rgb, m, (inner, inner), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if color == "rgb":
        if factor > 1:
            patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(patch)
    gray = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    if factor > 1:
        gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray)
