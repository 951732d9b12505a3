"""Stable face ids across frames.  Pure and deterministic.

Each track keeps its last box and a velocity (px/s, smoothed).  A face continues a track
seen within ``max_gap`` seconds when its box overlaps the track's box *predicted* at the
face's time (IoU ≥ ``min_iou``), or — for faces that moved fast or were partly hidden —
when its centre lies within 3/4 of a face of the prediction at a similar size.  Pairs are
taken greedily, best first, so two faces crossing keep their ids as long as their
predicted boxes tell them apart.

A face that appears where a track was lost less than ``reentry_gap`` seconds ago gets that
old id back, but only where geometry makes it safe: the face is about the track's size, its
centre lies within one face width of where the track was last seen, and no other lost
track or new face is as close (otherwise a new id).  Ids are never reused otherwise.
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


def _centre(b: Box) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])


def _size(b: Box) -> float:
    return float(max(b[2] - b[0], b[3] - b[1], 1e-6))


@dataclass
class _Track:
    track_id: int
    bbox: Box
    last_t: float
    vel: np.ndarray  # px/s of the box centre

    def predicted(self, t: float) -> Box:
        dx, dy = self.vel * min(max(0.0, t - self.last_t), 0.25)  # never extrapolate far
        b = self.bbox
        return (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)


class FaceTracker:
    def __init__(self, min_iou: float = 0.3, max_gap: float = 1.5, reentry_gap: float = 4.0):
        self.min_iou = min_iou
        self.max_gap = max_gap
        self.reentry_gap = max(reentry_gap, max_gap)
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self._tracks.clear()

    def _score(self, face: FaceObservation, tr: _Track, t: float) -> float:
        """> 0 when the face may continue the track (higher = better), else 0; the better of
        the predicted box and the last seen box (a face may have stopped)."""
        return max(self._match(face.bbox, tr.predicted(t)), self._match(face.bbox, tr.bbox))

    def _match(self, box: Box, ref: Box) -> float:
        o = iou(box, ref)
        if o >= self.min_iou:
            return 1.0 + o
        s_face, s_ref = _size(box), _size(ref)
        if not 0.67 <= s_face / s_ref <= 1.5:
            return 0.0
        d = float(np.linalg.norm(_centre(box) - _centre(ref))) / s_ref
        return 1.0 - d / 0.75 if d < 0.75 else 0.0

    def update(self, faces: list[FaceObservation], t: float) -> list[FaceObservation]:
        """Set ``track_id`` on each face (in place) and return the faces."""
        self._tracks = [tr for tr in self._tracks if t - tr.last_t <= self.reentry_gap]
        live = [ti for ti, tr in enumerate(self._tracks) if t - tr.last_t <= self.max_gap]
        pairs = []
        for fi, face in enumerate(faces):
            for ti in live:
                score = self._score(face, self._tracks[ti], t)
                if score > 0:
                    pairs.append((score, fi, ti))
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        used_f: set[int] = set()
        used_t: set[int] = set()
        for _, fi, ti in pairs:
            if fi in used_f or ti in used_t:
                continue
            used_f.add(fi)
            used_t.add(ti)
            self._continue(self._tracks[ti], faces[fi], t)
        new = sorted((fi for fi in range(len(faces)) if fi not in used_f), key=lambda fi: faces[fi].bbox[0])
        # re-entry: a lost track near where it vanished, unambiguous
        lost = [ti for ti, tr in enumerate(self._tracks) if ti not in used_t and t - tr.last_t > self.max_gap]
        for fi in list(new):
            cands = []
            for ti in lost:
                tr = self._tracks[ti]
                s = _size(tr.bbox)
                if not 0.67 <= _size(faces[fi].bbox) / s <= 1.5:
                    continue
                d = float(np.linalg.norm(_centre(faces[fi].bbox) - _centre(tr.bbox))) / s
                if d < 1.0:
                    cands.append((d, ti))
            if len(cands) != 1:
                continue
            d, ti = cands[0]
            tr = self._tracks[ti]
            rivals = [g for g in new if g != fi
                      and float(np.linalg.norm(_centre(faces[g].bbox) - _centre(tr.bbox))) / _size(tr.bbox) < 1.0]
            if rivals:
                continue
            lost.remove(ti)
            new.remove(fi)
            used_t.add(ti)
            tr.vel = np.zeros(2)
            self._continue(tr, faces[fi], t)
        for fi in new:
            faces[fi].track_id = self._next_id
            self._tracks.append(_Track(self._next_id, faces[fi].bbox, t, np.zeros(2)))
            self._next_id += 1
        return faces

    @staticmethod
    def _continue(tr: _Track, face: FaceObservation, t: float) -> None:
        face.track_id = tr.track_id
        dt = t - tr.last_t
        if 0 < dt <= 0.5:
            v = (_centre(face.bbox) - _centre(tr.bbox)) / dt
            tr.vel = 0.5 * tr.vel + 0.5 * v
        tr.bbox, tr.last_t = face.bbox, t


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
