"""Stable face ids across frames: greedy IoU matching with a time-out.

Pure and deterministic.  A face keeps its id while its box overlaps the box it
had in the previous frame it was seen in (IoU ≥ ``min_iou``) and it was seen
within ``max_gap`` seconds; otherwise it gets a new id.  Ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotiond.types import FaceObservation

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    track_id: int
    bbox: Box
    last_t: float


class FaceTracker:
    def __init__(self, min_iou: float = 0.3, max_gap: float = 0.5):
        self.min_iou = min_iou
        self.max_gap = max_gap
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self._tracks.clear()

    def update(self, faces: list[FaceObservation], t: float) -> list[FaceObservation]:
        """Set ``track_id`` on each face (in place) and return the faces."""
        self._tracks = [tr for tr in self._tracks if t - tr.last_t <= self.max_gap]
        pairs = []
        for fi, face in enumerate(faces):
            for ti, tr in enumerate(self._tracks):
                score = iou(face.bbox, tr.bbox)
                if score >= self.min_iou:
                    pairs.append((score, fi, ti))
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        used_f: set[int] = set()
        used_t: set[int] = set()
        for _, fi, ti in pairs:
            if fi in used_f or ti in used_t:
                continue
            used_f.add(fi)
            used_t.add(ti)
            tr = self._tracks[ti]
            faces[fi].track_id = tr.track_id
            tr.bbox, tr.last_t = faces[fi].bbox, t
        # New faces get ids left to right so numbering is predictable.
        new = sorted((fi for fi in range(len(faces)) if fi not in used_f), key=lambda fi: faces[fi].bbox[0])
        for fi in new:
            faces[fi].track_id = self._next_id
            self._tracks.append(_Track(self._next_id, faces[fi].bbox, t))
            self._next_id += 1
        return faces


def largest(faces: list[FaceObservation]) -> FaceObservation | None:
    """The face with the biggest box."""
    if not faces:
        return None
    areas = [(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]) for f in faces]
    return faces[int(np.argmax(areas))]


def primary_face(faces: list[FaceObservation]) -> FaceObservation | None:
    """The face the frame-level result speaks for: the largest face with an expression.  The
    one place this rule lives (the engine sets ``FrameResult.primary`` from it; the GUI reads
    that field)."""
    return largest([f for f in faces if f.emotion is not None])
