"""Facial action-unit (FACS AU) estimates from mediapipe's 52 blendshapes.  Pure, no I/O.

**These are blendshape approximations, not FACS coding.**  mediapipe's blendshape model
predicts ARKit-style blendshape coefficients from the face mesh.  Each AU below starts from
the mean of the blendshapes whose described movement is that AU's (left and right sides
averaged) and is then put on a common [0, 1] scale by a per-AU calibration
``clip((raw - neutral) / (full - neutral), 0, 1)``:

* most shapes already span [0, 1] in mediapipe (``neutral`` 0, ``full`` 1: unchanged);
* ``browDown*`` and ``mouthFrown*`` stay tiny in mediapipe's model even for strong, visible
  movements (on the Pexels clip, vertical furrows between the brows give browDown 0.04–0.07,
  never more than 0.07; mouthFrown peaks at 0.09) — the same kind of compression mediapipe
  users report for other shapes (google-ai-edge/mediapipe #4436, #4450).  Their ``full`` is
  0.1, so AU4 and AU15 reach the same scale as AU12; the values above 0.1 that the model
  does give now and then (a smiling face in multi_face.jpg: browDown 0.67) clip at 1;
* ``cheekSquint*`` (the ARKit cheek raise, AU6) is 0.0000 on every face of ../shared/media
  (clip, stills, group photo): mediapipe's model never outputs it (``noseSneer*`` neither, so
  AU9 is always ~0 here).  AU6 is therefore approximated by ``eyeSquint`` — mediapipe's
  "contraction of the face around the eye", the orbicularis oculi that AU6 and AU7 share —
  counted only while the eye is open: ``eyeSquint · (1 − eyeBlink)``.  A cheek raise narrows
  the open eye from below; closed, crying eyes also drive eyeSquint but tell nothing about the
  cheek.  Its ``neutral`` 0.1 is that product on the relaxed face of the clip's middle part
  (frames 160–205, 0.05–0.15, mean 0.09); ``full`` 0.6.  Known misses: a laugh with the eyes
  shut loses AU6, and AU6 and AU7 move together.

The calibration is read off one clip (the only labelled expressive material here); other
faces of ../shared/media are checked by the tests only for direction (neutral vs smiling).
Nothing here has been validated against human FACS coders or an AU-annotated dataset (none
is available offline); treat the values as relative, per-face movement measures (higher =
more of that movement), not as FACS intensity grades A–E or as occurrence decisions.
tests/test_face_scenes.py checks the directions on the clip (laughing vs crying) and on
single_face.mp4 (neutral start vs smile).

The mapping (also in docs/log-format.md):
"""

from __future__ import annotations

import numpy as np

from emotiond.face.landmarks import BLENDSHAPES

_I = {n: i for i, n in enumerate(BLENDSHAPES)}

# AU name -> (FACS name, blendshapes averaged)
MAPPING: dict[str, tuple[str, tuple[str, ...]]] = {
    "AU01": ("inner brow raiser", ("browInnerUp",)),
    "AU02": ("outer brow raiser", ("browOuterUpLeft", "browOuterUpRight")),
    "AU04": ("brow lowerer", ("browDownLeft", "browDownRight")),
    "AU05": ("upper lid raiser", ("eyeWideLeft", "eyeWideRight")),
    "AU06": ("cheek raiser (approximated by the open eye's squint)", ("eyeSquintLeft", "eyeSquintRight")),
    "AU07": ("lid tightener", ("eyeSquintLeft", "eyeSquintRight")),
    "AU09": ("nose wrinkler (mediapipe outputs ~0)", ("noseSneerLeft", "noseSneerRight")),
    "AU10": ("upper lip raiser", ("mouthUpperUpLeft", "mouthUpperUpRight")),
    "AU12": ("lip corner puller", ("mouthSmileLeft", "mouthSmileRight")),
    "AU14": ("dimpler", ("mouthDimpleLeft", "mouthDimpleRight")),
    "AU15": ("lip corner depressor", ("mouthFrownLeft", "mouthFrownRight")),
    "AU17": ("chin raiser", ("mouthShrugLower",)),
    "AU18": ("lip pucker", ("mouthPucker",)),
    "AU20": ("lip stretcher", ("mouthStretchLeft", "mouthStretchRight")),
    "AU22": ("lip funneler", ("mouthFunnel",)),
    "AU23": ("lip tightener (approximated by lips rolled in)", ("mouthRollLower", "mouthRollUpper")),
    "AU24": ("lip pressor", ("mouthPressLeft", "mouthPressRight")),
    "AU25": ("lips part (lower lip pulled down)", ("mouthLowerDownLeft", "mouthLowerDownRight")),
    "AU26": ("jaw drop", ("jawOpen",)),
    "AU45": ("blink / eyes closed (AU43 when held)", ("eyeBlinkLeft", "eyeBlinkRight")),
}
NAMES: tuple[str, ...] = tuple(MAPPING)
# AU -> (neutral, full): raw value that reads 0 and 1 (module docstring); unlisted AUs: (0, 1)
CALIBRATION: dict[str, tuple[float, float]] = {
    "AU04": (0.0, 0.1),
    "AU06": (0.1, 0.6),
    "AU15": (0.0, 0.1),
}
# AUs whose mean is multiplied by (1 - this blendshape pair's mean): counted only with the eyes open
OPEN_EYES: dict[str, tuple[str, ...]] = {"AU06": ("eyeBlinkLeft", "eyeBlinkRight")}

_AVG = np.zeros((len(MAPPING), len(BLENDSHAPES)), np.float32)  # row k averages AU k's blendshapes
for _k, (_, _shapes) in enumerate(MAPPING.values()):
    _AVG[_k, [_I[b] for b in _shapes]] = 1.0 / len(_shapes)
_GATE = np.zeros((len(MAPPING), len(BLENDSHAPES)), np.float32)  # row k: the eyes-closed mean for OPEN_EYES AUs
for _au, _shapes in OPEN_EYES.items():
    _GATE[NAMES.index(_au), [_I[b] for b in _shapes]] = 1.0 / len(_shapes)
_NEUTRAL = np.array([CALIBRATION.get(n, (0.0, 1.0))[0] for n in NAMES], np.float32)
_SPAN = np.array([CALIBRATION.get(n, (0.0, 1.0))[1] for n in NAMES], np.float32) - _NEUTRAL


def _describe(au: str, shapes: tuple[str, ...]) -> str:
    text = f"mean of {', '.join(shapes)}"
    if au in OPEN_EYES:
        text += f" × (1 − mean of {', '.join(OPEN_EYES[au])})"
    if au in CALIBRATION:
        neutral, full = CALIBRATION[au]
        text += f"; {neutral:g} → 0, {full:g} → 1"
    return text


__doc__ += "\n".join(f"* {au} {name}: {_describe(au, shapes)}" for au, (name, shapes) in MAPPING.items()) + "\n"


def action_units(blendshapes: np.ndarray) -> np.ndarray:
    """[52] blendshape scores -> [len(NAMES)] AU intensities in [0, 1] (order of :data:`NAMES`)."""
    b = np.clip(np.asarray(blendshapes, dtype=np.float32), 0.0, 1.0)
    if b.shape != (len(BLENDSHAPES),):
        raise ValueError(f"expected {len(BLENDSHAPES)} blendshapes, got shape {b.shape}")
    raw = (_AVG @ b) * (1.0 - _GATE @ b)
    return np.clip((raw - _NEUTRAL) / _SPAN, 0.0, 1.0)


def as_dict(blendshapes: np.ndarray) -> dict[str, float]:
    """{"AU01": intensity, ...}: what the log and the GUI show for one face."""
    return dict(zip(NAMES, action_units(blendshapes).tolist()))
