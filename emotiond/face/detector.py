"""Full-range face detection (BlazeFace full range, mediapipe Tasks ``FaceDetector``).

The FaceLandmarker's own detector is BlazeFace *short* range: it sees the frame at
128×128 and misses faces below ~20 % of the frame height.  This stage runs Google's
full-range model (``models/face_detector_full_range.tflite``, 192×192 input) on square
tiles as high as the frame, so a face of ~5 % of the frame height is ~10–20 px in the
model's input.  Its boxes only *seed* landmarkers on crops (emotiond/face/landmarks.py):
every detection is confirmed by the landmarker's own presence score, which is why the
score threshold (the card's ``[detector] min_score``) is low.

Why mediapipe's Tasks ``FaceDetector`` and not onnxruntime: the file is a *sparse*
TFLite model (DENSIFY ops) that tflite2onnx 0.4.1 cannot convert, the Tasks detector
loads it as it is, decodes its 2304 anchors and runs non-maximum suppression, and it
adds no dependency (docs/performance.md has the measurements).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotiond.errors import ModelError

MODEL_NAME = "face_detector_full_range"


@dataclass(frozen=True, slots=True)
class Detection:
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels
    score: float


def tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Square tiles with side = the shorter edge, overlapping by at least a fifth (a face too big
    for the overlap is the whole-frame landmarker's), covering the frame (one tile for a square
    frame, two for 16:9, three for 21:9)."""
    side = min(w, h)
    long = max(w, h)
    if long <= side:
        return [(0, 0, w, h)]
    n = int(np.ceil((long - side) / (0.8 * side))) + 1
    starts = [int(round(i * (long - side) / (n - 1))) for i in range(n)]
    if w >= h:
        return [(s, 0, s + side, h) for s in starts]
    return [(0, s, w, s + side) for s in starts]


def box_overlap(a, b) -> float:
    """Intersection over the smaller box's area (1 when one box lies inside the other)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def merge(dets: list[Detection], overlap: float = 0.5) -> list[Detection]:
    """Greedy suppression across tiles: highest score first, drop boxes mostly inside a kept one."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(box_overlap(d.bbox, k.bbox) < overlap for k in kept):
            kept.append(d)
    return kept


class FaceDetector:
    """Stateless per call (IMAGE mode); one instance per thread."""

    def __init__(self, model_path: Path, min_score: float = 0.35):
        from emotiond.face.landmarks import _import_mediapipe, _quiet_stderr

        _import_mediapipe()
        from mediapipe.tasks.python.core import base_options
        from mediapipe.tasks.python.vision import face_detector
        from mediapipe.tasks.python.vision.core import image as mp_image

        self._mp_image = mp_image
        self.min_score = float(min_score)
        options = face_detector.FaceDetectorOptions(
            base_options=base_options.BaseOptions(model_asset_path=str(model_path)),
            min_detection_confidence=self.min_score,
            min_suppression_threshold=0.3,
        )
        try:
            with _quiet_stderr():  # "Sparsity tensors may not yet be fully supported" per tensor
                self._det = face_detector.FaceDetector.create_from_options(options)
                # the first call logs a LiteRT alignment warning: make it here, quietly
                self._det.detect(mp_image.Image(mp_image.ImageFormat.SRGB, np.zeros((192, 192, 3), np.uint8)))
        except Exception as exc:
            raise ModelError(
                f"mediapipe cannot load the face detector {model_path}: {str(exc).strip()[:200]}",
                "restore it with `git checkout -- models/face_detector_full_range.tflite` or "
                "`python tools/fetch_face_detector.py`",
            ) from None
        self._closed = False

    @classmethod
    def from_registry(cls, models_dir: Path | None = None) -> FaceDetector:
        from emotiond import registry

        card = registry.resolve(MODEL_NAME, models_dir)
        det = cls(card.path, float(card.data.get("detector", {}).get("min_score", 0.35)))
        det.card = card
        return det

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 frame, searched in overlapping square tiles."""
        if self._closed:
            raise RuntimeError("FaceDetector is closed")
        h, w = image_rgb.shape[:2]
        out: list[Detection] = []
        for x0, y0, x1, y1 in tiles(w, h):
            tile = np.ascontiguousarray(image_rgb[y0:y1, x0:x1])
            res = self._det.detect(self._mp_image.Image(self._mp_image.ImageFormat.SRGB, tile))
            for d in res.detections:
                b = d.bounding_box
                score = float(d.categories[0].score) if d.categories else 0.0
                box = (
                    float(max(0, b.origin_x + x0)),
                    float(max(0, b.origin_y + y0)),
                    float(min(w, b.origin_x + b.width + x0)),
                    float(min(h, b.origin_y + b.height + y0)),
                )
                if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                    out.append(Detection(box, score))
        return merge(out)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            from emotiond.face.landmarks import _quiet_stderr

            with _quiet_stderr():  # LiteRT prints "DestroyAccelerator" INFO lines on close
                self._det.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
