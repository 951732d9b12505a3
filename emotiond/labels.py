"""The one label space shared by every modality, and maps into it.

All fused results are distributions over :data:`EMOTIONS` (the 7 FER2013
classes).  A model whose own classes differ declares a mapping from its class
names to names in this space; classes it cannot express are simply not covered,
and the fusion scorer treats them as "no evidence" (see ``docs/fusion.md``).
"""

from __future__ import annotations

import numpy as np

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INDEX = {name: i for i, name in enumerate(EMOTIONS)}

# Synonyms used by emotional-speech corpora and other models.
ALIASES: dict[str, str] = {
    "anger": "angry",
    "mad": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "anxiety": "fear",
    "joy": "happy",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "calm": "neutral",
}

# Circumplex coordinates (valence, arousal) in [-1, 1] per class, after
# Russell (1980) and the placements used for FER/AffectNet annotation.
# Valence/arousal of a distribution is its expectation under these points.
CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "angry": (-0.51, 0.59),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "happy": (0.81, 0.51),
    "sad": (-0.63, -0.27),
    "surprise": (0.40, 0.67),
    "neutral": (0.0, 0.0),
}
_VA = np.array([CIRCUMPLEX[e] for e in EMOTIONS], dtype=np.float64)


def canonical(name: str) -> str:
    """Map a class name (any case, common synonyms) into :data:`EMOTIONS`."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in INDEX:
        raise KeyError(f"unknown emotion class {name!r}; known: {', '.join(EMOTIONS)}")
    return key


def valence_arousal(probs: np.ndarray) -> tuple[float, float]:
    """Expected (valence, arousal) of a distribution over :data:`EMOTIONS`."""
    p = np.asarray(probs, dtype=np.float64)
    v, a = p @ _VA
    return float(v), float(a)

# One colour per emotion everywhere (GUI overlay, bars, timeline; the HTML report), chosen to
# stay distinct on a dark background and for the common red/green colour-vision deficiencies
# (the red/green pair differs in lightness).
EMOTION_COLORS: dict[str, str] = {
    "angry": "#ef5350",
    "disgust": "#9ccc65",
    "fear": "#ab47bc",
    "happy": "#ffd54f",
    "sad": "#42a5f5",
    "surprise": "#ff9800",
    "neutral": "#b0bec5",
}
assert set(EMOTION_COLORS) == set(EMOTIONS)
