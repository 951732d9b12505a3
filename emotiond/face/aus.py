"""Facial action-unit (FACS AU) estimates from mediapipe's 52 blendshapes.  Pure, no I/O.

**These are blendshape approximations, not FACS coding.**  mediapipe's blendshape model
predicts ARKit-style blendshape coefficients from the face mesh; each AU below is the mean
of the blendshapes whose described movement is that AU's (left and right sides averaged),
so its intensity is in [0, 1] like the blendshapes.  Nothing here has been validated
against human FACS coders or an AU-annotated dataset (none is available offline); treat
the values as relative, per-face movement measures (higher = more of that movement), not
as FACS intensity grades A–E or as occurrence decisions.  tests/test_aus.py checks only
that they move the right way on a real clip (smiling vs crying).

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
    "AU06": ("cheek raiser", ("cheekSquintLeft", "cheekSquintRight")),
    "AU07": ("lid tightener", ("eyeSquintLeft", "eyeSquintRight")),
    "AU09": ("nose wrinkler", ("noseSneerLeft", "noseSneerRight")),
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
_AVG = np.zeros((len(MAPPING), len(BLENDSHAPES)), np.float32)  # row k averages AU k's blendshapes
for _k, (_, _shapes) in enumerate(MAPPING.values()):
    _AVG[_k, [_I[b] for b in _shapes]] = 1.0 / len(_shapes)

__doc__ += "\n".join(f"* {au} {name}: mean of {', '.join(shapes)}" for au, (name, shapes) in MAPPING.items()) + "\n"


def action_units(blendshapes: np.ndarray) -> np.ndarray:
    """[52] blendshape scores -> [len(NAMES)] AU intensities in [0, 1] (order of :data:`NAMES`)."""
    b = np.clip(np.asarray(blendshapes, dtype=np.float32), 0.0, 1.0)
    if b.shape != (len(BLENDSHAPES),):
        raise ValueError(f"expected {len(BLENDSHAPES)} blendshapes, got shape {b.shape}")
    return _AVG @ b


def as_dict(blendshapes: np.ndarray) -> dict[str, float]:
    """{"AU01": intensity, ...}: what the log and the GUI show for one face."""
    return dict(zip(NAMES, action_units(blendshapes).tolist()))
