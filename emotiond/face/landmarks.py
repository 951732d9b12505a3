"""Face landmarks with mediapipe's FaceLandmarker (Tasks API, VIDEO running mode).

Per face: 478 landmarks (pixels), 52 blendshape scores, a bounding box and a
quality score.  The model file is ``models/face_landmarker.task``, verified
against its card before use.

Two details of mediapipe 1.2.x are handled here:

* ``import mediapipe`` imports its drawing helpers and with them
  ``matplotlib.pyplot`` (about 1 s).  We never draw with mediapipe, so those two
  helper modules are imported lazily (they execute on first attribute access,
  so any later real use still works).
* The public ``detect_for_video`` turns every landmark into a Python object
  (478 per face, ~2 ms per frame holding the GIL).  When the private C entry
  points are there (checked at start-up) we read the result structs straight
  into numpy instead; otherwise we use the public API.  Both give the same
  numbers (tests/test_landmarks.py checks it).
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from pathlib import Path

import numpy as np

from emotiond.errors import ModelError, SourceError
from emotiond.types import FaceObservation

N_LANDMARKS = 478
N_BLENDSHAPES = 52

# The 52 blendshape names in model output order (ARKit names, as mediapipe's category_name;
# tests/test_landmarks.py checks them against mediapipe's own Blendshapes enum).
BLENDSHAPES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)

# Landmark indices (mediapipe canonical face mesh).
NOSE_TIP = 1
CHEEK_RIGHT = 234  # subject's right, image left
CHEEK_LEFT = 454

_import_lock = threading.Lock()


class _LazySubmodules(importlib.abc.MetaPathFinder):
    """Finds the named modules as usual but loads them lazily (on first attribute access)."""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


# mediapipe/__init__ imports its drawing helpers, and they import matplotlib.pyplot (~1 s).
_DRAWING = {"mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles"}


def _import_mediapipe():
    """Import only what the face landmarker needs (see module docstring)."""
    with _import_lock:
        os.environ.setdefault("GLOG_minloglevel", "2")  # keep mediapipe's C++ INFO/WARNING lines quiet
        finder = _LazySubmodules(_DRAWING)
        sys.meta_path.insert(0, finder)
        try:
            from mediapipe.tasks.python.core import base_options
            from mediapipe.tasks.python.vision import face_landmarker
            from mediapipe.tasks.python.vision.core import image as mp_image
            from mediapipe.tasks.python.vision.core import vision_task_running_mode
        finally:
            sys.meta_path.remove(finder)

        return base_options, face_landmarker, mp_image, vision_task_running_mode


def _quiet_stderr():
    """Silence C++ start-up chatter (TFLite's 'Created delegate' INFO) on fd 2."""

    class _Ctx:
        def __enter__(self):
            try:
                sys.stderr.flush()
                self.saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except OSError:
                self.saved = None
            return self

        def __exit__(self, *exc):
            if self.saved is not None:
                os.dup2(self.saved, 2)
                os.close(self.saved)

    return _Ctx()


def face_quality(landmarks_px: np.ndarray, bbox: tuple[float, float, float, float], min_face_size: float) -> float:
    """[0, 1]: falls off for faces smaller than ``min_face_size`` px and for turned heads."""
    height = bbox[3] - bbox[1]
    size_q = float(np.clip(height / min_face_size, 0.0, 1.0))
    nose_x = landmarks_px[NOSE_TIP, 0]
    d_right = abs(nose_x - landmarks_px[CHEEK_RIGHT, 0])
    d_left = abs(landmarks_px[CHEEK_LEFT, 0] - nose_x)
    total = d_right + d_left
    frontal = 1.0 - abs(d_right - d_left) / total if total > 1e-6 else 0.0
    # A face turned by ~45° has frontal ≈ 0.4; beyond ~70° the expression model is guessing.
    pose_q = float(np.clip((frontal - 0.15) / 0.55, 0.0, 1.0))
    return size_q * pose_q


def _bbox(points: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0 = points[:, 0].min(), points[:, 1].min()
    x1, y1 = points[:, 0].max(), points[:, 1].max()
    return (
        float(max(0.0, x0)),
        float(max(0.0, y0)),
        float(min(float(width), x1)),
        float(min(float(height), y1)),
    )


def _tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (side 60 % of the shorter edge, 1/3 overlap) for stills
    larger than ~2x the detector's input; empty for small images."""
    side = int(0.6 * min(w, h))
    if side < 256:
        return []
    step = max(1, int(side * 2 / 3))
    xs = list(range(0, max(1, w - side), step)) + [w - side]
    ys = list(range(0, max(1, h - side), step)) + [h - side]
    return [(x, y, x + side, y + side) for y in sorted(set(ys)) for x in sorted(set(xs))]


def _dedupe(faces: list[FaceObservation]) -> list[FaceObservation]:
    """Drop detections of a face already found (box mostly inside a kept one, or vice versa).
    Earlier detections (the whole image) win."""
    kept: list[FaceObservation] = []
    for f in faces:
        fx0, fy0, fx1, fy1 = f.bbox
        fa = (fx1 - fx0) * (fy1 - fy0)
        dup = False
        for k in kept:
            kx0, ky0, kx1, ky1 = k.bbox
            inter = max(0.0, min(fx1, kx1) - max(fx0, kx0)) * max(0.0, min(fy1, ky1) - max(fy0, ky0))
            ka = (kx1 - kx0) * (ky1 - ky0)
            if inter > 0.5 * min(fa, ka):
                dup = True
                break
        if not dup:
            kept.append(f)
    return kept


class FaceLandmarker:
    """Stateful (VIDEO mode tracks faces between calls); one instance per stream.

    ``detect(image_rgb, t)`` needs strictly increasing ``t`` (seconds); for
    unrelated still images use ``video=False``.
    """

    def __init__(
        self,
        model_path: Path,
        max_faces: int = 4,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        min_face_size: float = 48.0,
        video: bool = True,
        fast_path: bool = True,
    ):
        base_options, fl, mp_image, rm = _import_mediapipe()
        self._fl = fl
        self._mp_image = mp_image
        self.video = video
        self.max_faces = max_faces
        self.min_face_size = min_face_size
        options = fl.FaceLandmarkerOptions(
            base_options=base_options.BaseOptions(model_asset_path=str(model_path)),
            running_mode=rm.VisionTaskRunningMode.VIDEO if video else rm.VisionTaskRunningMode.IMAGE,
            num_faces=max_faces,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=True,
        )
        try:
            with _quiet_stderr():
                self._lm = fl.FaceLandmarker.create_from_options(options)
        except Exception as exc:  # mediapipe raises ValueError/RuntimeError with a C++ status text
            raise ModelError(
                f"mediapipe cannot load {model_path}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
                "restore it with `git checkout -- models/face_landmarker.task` or `python tools/fetch_face_landmarker.py`",
            ) from None
        self._last_ms = -1
        self._fast = fast_path and self._fast_path_available()
        self._closed = False

    # -- fast path -----------------------------------------------------------
    def _fast_path_available(self) -> bool:
        lm = self._lm
        needed = ("MpFaceLandmarkerDetectForVideo", "MpFaceLandmarkerDetectImage", "MpFaceLandmarkerCloseResult")
        lib = getattr(lm, "_lib", None)
        if lib is None or not hasattr(lm, "_handle") or not all(hasattr(lib, n) for n in needed):
            return False
        try:
            from mediapipe.tasks.python.components.containers import category_c, landmark_c

            lmk = landmark_c.MpNormalizedLandmarkC
            cat = category_c.MpCategoryC
            self._lm_dtype = np.dtype(
                {
                    "names": ["x", "y", "z"],
                    "formats": ["<f4"] * 3,
                    "offsets": [lmk.x.offset, lmk.y.offset, lmk.z.offset],
                    "itemsize": ctypes.sizeof(lmk),
                }
            )
            self._cat_dtype = np.dtype(
                {
                    "names": ["index", "score"],
                    "formats": ["<i4", "<f4"],
                    "offsets": [cat.index.offset, cat.score.offset],
                    "itemsize": ctypes.sizeof(cat),
                }
            )
        except (ImportError, AttributeError, TypeError):
            return False
        return True

    @staticmethod
    def _view(ptr, count: int, dtype: np.dtype) -> np.ndarray:
        if count == 0 or not ptr:
            return np.zeros(0, dtype=dtype)
        addr = ctypes.cast(ptr, ctypes.c_void_p).value
        buf = (ctypes.c_char * (count * dtype.itemsize)).from_address(addr)
        return np.frombuffer(buf, dtype=dtype, count=count).copy()

    def _detect_fast(self, image, timestamp_ms: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        lm = self._lm
        result = self._fl.MpFaceLandmarkerResultC()
        if timestamp_ms is None:
            lm._lib.MpFaceLandmarkerDetectImage(lm._handle, image._image_ptr, None, ctypes.byref(result))
        else:
            lm._lib.MpFaceLandmarkerDetectForVideo(
                lm._handle, image._image_ptr, None, timestamp_ms, ctypes.byref(result)
            )
        try:
            points, shapes = [], []
            for i in range(result.face_landmarks_count):
                arr = self._view(result.face_landmarks[i].landmarks, result.face_landmarks[i].landmarks_count, self._lm_dtype)
                points.append(np.stack([arr["x"], arr["y"], arr["z"]], axis=1))
            for i in range(result.face_blendshapes_count):
                cats = result.face_blendshapes[i]
                arr = self._view(cats.categories, cats.categories_count, self._cat_dtype)
                scores = np.zeros(N_BLENDSHAPES, dtype=np.float32)
                ok = (arr["index"] >= 0) & (arr["index"] < N_BLENDSHAPES)
                scores[arr["index"][ok]] = arr["score"][ok]
                shapes.append(scores)
        finally:
            lm._lib.MpFaceLandmarkerCloseResult(ctypes.byref(result))
        return points, shapes

    def _detect_public(self, image, timestamp_ms: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if timestamp_ms is None:
            res = self._lm.detect(image)
        else:
            res = self._lm.detect_for_video(image, timestamp_ms)
        points = [np.array([(p.x, p.y, p.z) for p in face], dtype=np.float32) for face in res.face_landmarks]
        shapes = []
        for cats in res.face_blendshapes:
            scores = np.zeros(N_BLENDSHAPES, dtype=np.float32)
            for c in cats:
                if 0 <= c.index < N_BLENDSHAPES:
                    scores[c.index] = c.score
            shapes.append(scores)
        return points, shapes

    # -- public --------------------------------------------------------------
    def detect(self, image_rgb: np.ndarray, t: float | None = None) -> list[FaceObservation]:
        """Faces in one frame.  In IMAGE mode (stills) small faces are also searched for in
        overlapping tiles: the detector works on a 128 px view of the whole image and
        misses faces under ~10 % of its size (group photos)."""
        if self._closed:
            raise RuntimeError("FaceLandmarker is closed")
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise SourceError(f"expected an RGB uint8 image, got shape {image_rgb.shape} {image_rgb.dtype}")
        ts = None
        if self.video:
            ts = int(round((t or 0.0) * 1000.0))
            if ts <= self._last_ms:  # mediapipe needs strictly increasing timestamps
                ts = self._last_ms + 1
            self._last_ms = ts
            return self._faces(image_rgb, ts, 0, 0, image_rgb.shape[1], image_rgb.shape[0])
        h, w = image_rgb.shape[:2]
        faces = self._faces(image_rgb, None, 0, 0, w, h)
        for x0, y0, x1, y1 in _tiles(w, h):
            faces += self._faces(image_rgb[y0:y1, x0:x1], None, x0, y0, w, h)
        return _dedupe(faces)[: self.max_faces]

    def _faces(self, image_rgb: np.ndarray, ts: int | None, ox: int, oy: int, full_w: int, full_h: int) -> list[FaceObservation]:
        image = self._mp_image.Image(self._mp_image.ImageFormat.SRGB, np.ascontiguousarray(image_rgb))
        points, shapes = (self._detect_fast if self._fast else self._detect_public)(image, ts)
        h, w = image_rgb.shape[:2]
        faces = []
        for i, norm in enumerate(points):
            if norm.shape[0] < N_LANDMARKS:
                continue
            px = np.empty_like(norm, dtype=np.float32)
            px[:, 0] = norm[:, 0] * w + ox
            px[:, 1] = norm[:, 1] * h + oy
            px[:, 2] = norm[:, 2] * w
            bbox = _bbox(px, full_w, full_h)
            if bbox[2] - bbox[0] < 2 or bbox[3] - bbox[1] < 2:
                continue  # face entirely outside the image
            faces.append(
                FaceObservation(
                    landmarks=px,
                    blendshapes=shapes[i] if i < len(shapes) else np.zeros(N_BLENDSHAPES, np.float32),
                    bbox=bbox,
                    quality=face_quality(px, bbox, self.min_face_size),
                )
            )
        return faces

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
