"""Can the expression of this face be read?  A reliability in [0, 1] from cheap signals.

Pure numpy/OpenCV, no I/O.  Computed on the same upright 64×64 gray crop the expression
model sees (emotiond/face/align.py), with the face's landmarks mapped into it:

* ``quality`` — the landmark stage's size × head-pose factor (yaw/pitch only; roll costs
  nothing because the crop is upright);
* ``pixels`` — too few pixels: 0 for a face under 16 px high, 1 from 32 px;
* ``light`` — contrast × brightness of the face: the gray standard deviation inside the face
  oval against :data:`CONTRAST_OK`, times its mean against :data:`BRIGHT_OK` (dark,
  washed-out or low-contrast faces have little of either);
* ``eyes`` / ``mouth`` — visibility of the regions that carry the expression: texture
  (gray standard deviation) of the eye band and of the mouth region relative to the whole
  face; a hand, a mask, a box over them flattens it.  The lower of the two counts;
* ``sharp`` — blur (defocus, motion, a face upscaled from few pixels): the mean squared
  Laplacian inside the face oval (edge of the oval left out) divided by the gray variance
  there, i.e. how much of the face's contrast sits in fine detail.  Dividing by the variance
  makes it independent of brightness and contrast (a darkened face keeps its value, ``light``
  counts that).  Sharp faces read 0.47–1.45 (Pexels clip, single_face.jpg/.mp4, the five
  faces of multi_face.jpg); a Gaussian blur of σ = 1 % of the face height gives 0.27–0.59,
  2 % 0.08–0.19, 3 % ~0.04; JPEG quality 10 does not lower it.  ``sharp`` is 1 from
  :data:`SHARP_OK` and 0 at :data:`BLUR_FLOOR`.

``reliability = quality · pixels · light · min(eyes, mouth) · sharp``.  The constants were set on
the Pexels clip (``../shared/media``) and on copies made from it with the mouth or the eyes
covered, darkened, blurred, shrunk and turned (tests/test_face_scenes.py rebuilds that material and
checks the calibration).  Below ``face.uncertain_below`` the face's label is "uncertain".
"""

from __future__ import annotations

import cv2
import numpy as np

from emotiond.face.align import crop_matrix

UNCERTAIN = "uncertain"

CONTRAST_OK = 24.0  # gray std (0–255) inside the face oval at which light = 1 (evenly lit single_face.mp4: ~25, Pexels: ~45)
BRIGHT_OK = 60.0  # mean gray inside the face oval at which light = 1
REGION_OK = 0.40  # region std / face std at which a region counts as fully visible (clip: open eyes ~0.8, laughing closed eyes ~0.4, mouth ~0.9)
REGION_FLOOR = 0.12  # ... and fully hidden at or below this (a flat box: ~0.0–0.05)
SHARP_OK = 0.35  # Laplacian energy / variance inside the face at which sharp = 1 (sharp faces: 0.47–1.45)
BLUR_FLOOR = 0.08  # ... and 0 at or below this (σ = 2 % of the face height: 0.08–0.19)
MIN_PX, OK_PX = 16.0, 32.0  # face height (px) for pixels = 0 and = 1

# mediapipe face-mesh landmark sets
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
RIGHT_EYE = [33, 133, 159, 145, 160, 144, 158, 153]
LEFT_EYE = [362, 263, 386, 374, 385, 380, 387, 373]
EYES = RIGHT_EYE + LEFT_EYE
MOUTH = [61, 291, 0, 17, 13, 14, 37, 267, 84, 314, 40, 270, 91, 321, 185, 409, 181, 405]
_ERODE = np.ones((5, 5), np.uint8)
_USED = np.array(sorted(set(FACE_OVAL + EYES + MOUTH)))


def _unit(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _region_std(crop: np.ndarray, pts: np.ndarray, pad: float) -> float:
    lo = np.floor(pts.min(axis=0) - pad).astype(int)
    hi = np.ceil(pts.max(axis=0) + pad).astype(int)
    lo = np.clip(lo, 0, crop.shape[1] - 1)
    hi = np.clip(hi, 1, crop.shape[1])
    patch = crop[lo[1]:hi[1], lo[0]:hi[0]]
    return float(patch.std()) if patch.size >= 4 else 0.0


def signals(crop: np.ndarray, landmarks: np.ndarray, bbox) -> dict[str, float]:
    """The factors described in the module docstring (``quality`` excluded), each in [0, 1]."""
    size = crop.shape[0]
    m = crop_matrix(landmarks, size)
    xy = landmarks[_USED, :2].astype(np.float64) + 0.5  # landmark → OpenCV pixel-centre convention
    pts = np.zeros((int(landmarks.shape[0]), 2))
    pts[_USED] = xy @ m[:, :2].T + m[:, 2]
    g = crop.astype(np.float32)
    mask = np.zeros(crop.shape, np.uint8)
    cv2.fillPoly(mask, [np.round(pts[FACE_OVAL]).astype(np.int32)], 1)
    inside = g[mask > 0]
    core = cv2.erode(mask, _ERODE) > 0  # the oval's own edge (face against background) left out
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1)
    var = float(g[core].var()) if core.sum() > 16 else 0.0
    sharp = _unit((float((lap[core] ** 2).mean()) / var - BLUR_FLOOR) / (SHARP_OK - BLUR_FLOOR)) if var > 1e-6 else 0.0
    face_std = float(inside.std()) if inside.size > 16 else float(g.std())
    mean = float(inside.mean()) if inside.size > 16 else float(g.mean())
    light = _unit(face_std / CONTRAST_OK) * _unit(mean / BRIGHT_OK)
    pad = 0.0

    def vis(idx):
        r = _region_std(g, pts[idx], pad) / max(face_std, 1e-6)
        return _unit((r - REGION_FLOOR) / (REGION_OK - REGION_FLOOR))

    height = float(bbox[3] - bbox[1])
    pixels = _unit((height - MIN_PX) / (OK_PX - MIN_PX))
    eyes = max(vis(RIGHT_EYE), vis(LEFT_EYE))  # one eye visible carries the eye region (closed laughing eyes are flat)
    return {"pixels": pixels, "light": light, "eyes": eyes, "mouth": vis(MOUTH), "sharp": sharp}


def reliability(quality: float, sig: dict[str, float]) -> float:
    readable = sig["pixels"] * sig["light"] * min(sig["eyes"], sig["mouth"]) * sig.get("sharp", 1.0)
    return float(np.clip(quality * readable, 0.0, 1.0))
