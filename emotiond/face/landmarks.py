"""Face landmarks with mediapipe's FaceLandmarker (Tasks API, VIDEO running mode).

Per face: 478 landmarks (pixels), 52 blendshape scores, a bounding box and a
quality score.  The model file is ``models/face_landmarker.task``, verified
against its card before use.

Three details of mediapipe 1.2.x are handled here:

* it reports usage statistics to Google and imports PortAudio for its audio tasks;
  :mod:`emotiond.privacy` explains how neither happens here.

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
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from emotiond import privacy
from emotiond.errors import ModelError, SourceError
from emotiond.face.detector import box_overlap as _overlap
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

# Small-face search in video (see FaceLandmarker): crops around detections.
ROI_SCALE = 1.9  # crop side / the face's landmark-box side (tight, so neighbours stay out of the crop)
ROI_DET_SCALE = 2.0  # crop side / the detector's box side (its box is tighter than the landmarks')
ROI_RECENTRE = 0.1  # move the crop when the face's centre is this far (× crop side) off it
ROI_MAX_PX = 256  # crops larger than this are shrunk (area averaging) before the landmarker
ROI_MISSES = 2  # frames a crop may lose its face before it is dropped
ROI_EVERY = 2  # a crop's landmarker runs on every 2nd frame its worker handles; in between its last
# face is reported again, moved by its velocity (docs/performance.md: ~6 ms of CPU per crop call)
DETECT_INTERVAL_FOUND = 1.0  # s between detector runs while faces are tracked
DETECT_INTERVAL_SEARCH = 0.25  # s between detector runs while a face is missing or none is seen

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

# mediapipe's tasks package imports its audio tasks, whose audio_record module imports sounddevice:
# PortAudio starts (and probes JACK) in every process that only wants face landmarks.  The module
# is replaced by a stand-in whose AudioRecord loads the real module when one is made (mediapipe's
# microphone helper, which we never use).  A lazy module would not do: other imports (librosa)
# touch every module in sys.modules and would load it.
_AUDIO_RECORD = "mediapipe.tasks.python.audio.core.audio_record"


def _audio_record_stand_in():
    import types

    module = types.ModuleType(_AUDIO_RECORD, "mediapipe's microphone helper, loaded on first use (emotiond)")

    def _real():
        spec = importlib.machinery.PathFinder.find_spec(
            "audio_record", [str(Path(sys.modules["mediapipe.tasks.python.audio.core"].__file__).parent)])
        real = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(real)
        return real

    class AudioRecord:
        def __new__(cls, *args, **kwargs):
            return _real().AudioRecord(*args, **kwargs)

    module.AudioRecord = AudioRecord
    return module


def _import_mediapipe():
    """Import only what the face landmarker needs (see module docstring)."""
    with _import_lock:
        os.environ.setdefault("GLOG_minloglevel", "2")  # keep mediapipe's C++ INFO/WARNING lines quiet
        privacy.quiet_mediapipe()  # no usage statistics to Google (emotiond.privacy)
        sys.modules.setdefault(_AUDIO_RECORD, _audio_record_stand_in())
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


def head_pose(matrix: np.ndarray | None) -> tuple[float, float, float] | None:
    """(yaw, pitch, roll) in degrees from mediapipe's 4×4 facial transformation matrix
    (canonical face → camera space; x right, y up, z towards the camera).

    yaw: + = the face turned towards the image left (the subject's right); pitch: + = chin
    up; roll: + = the head tilted counter-clockwise in the image.  Euler order R = Rz·Ry·Rx
    (roll, yaw, pitch), so roll is in-plane rotation and yaw/pitch are what hides the face."""
    if matrix is None:
        return None
    r = np.asarray(matrix, dtype=np.float64)[:3, :3]
    norms = np.linalg.norm(r, axis=0)
    if not np.all(np.isfinite(r)) or np.any(norms < 1e-9):
        return None
    r = r / norms  # the matrix may carry a uniform scale
    yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


def pose_factor(pose: tuple[float, float, float] | None) -> float:
    """[0, 1] from yaw and pitch only (the crop is turned upright, so roll costs nothing):
    1 up to 30° off frontal, 0.5 at 52°, 0 from 75° (where the expression model guesses)."""
    if pose is None:
        return 1.0
    off = float(np.hypot(pose[0], pose[1]))
    return float(np.clip((75.0 - off) / 45.0, 0.0, 1.0))


def face_quality(bbox: tuple[float, float, float, float], min_face_size: float,
                 pose: tuple[float, float, float] | None) -> float:
    """[0, 1]: falls off for faces smaller than ``min_face_size`` px and for heads turned
    away (yaw/pitch, :func:`pose_factor`), not for tilted ones (roll)."""
    height = bbox[3] - bbox[1]
    size_q = float(np.clip(height / min_face_size, 0.0, 1.0))
    return size_q * pose_factor(pose)


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


class FaceList(list):
    """The faces of one frame, plus how many more were seen but not analysed (``max_faces``)."""

    unanalysed: int = 0


class _Roi:
    """One face followed on a square crop by its own VIDEO-mode landmarker (max 1 face):
    the crop is re-centred on the face's landmarks every frame, so the face stays at about a
    third of the crop, where mediapipe's short-range detector and tracker work."""

    def __init__(self, lm: FaceLandmarker):
        self.lm = lm
        self.cx = self.cy = self.side = 0.0
        self.vx = self.vy = 0.0  # the last move of the crop (px)
        self.misses = 0
        self.last: FaceObservation | None = None  # the face of the last landmarker run
        self.last_ts = 0
        self.fvx = self.fvy = 0.0  # the face's velocity between the last two runs (px per ms)
        self.skipped = 0  # frames since the last run

    def due(self) -> bool:
        """Whether this frame runs the crop's landmarker (else :meth:`repeat`)."""
        return self.last is None or self.skipped + 1 >= ROI_EVERY

    def repeat(self, ts: int, w: int, h: int) -> FaceObservation | None:
        """The last face again, a new object, moved by its velocity to ``ts`` (ms)."""
        last = self.last
        if last is None:
            return None
        self.skipped += 1
        dx, dy = self.fvx * (ts - self.last_ts), self.fvy * (ts - self.last_ts)
        pts = last.landmarks.copy()
        pts[:, 0] += dx
        pts[:, 1] += dy
        return replace(last, landmarks=pts, bbox=_bbox(pts, w, h), track_id=-1, emotion=None,
                       reliability=None, label=None, speaking=None)

    def place_detection(self, box) -> None:
        self.vx = self.vy = 0.0
        self.last = None
        self.cx, self.cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        self.side = ROI_DET_SCALE * max(box[2] - box[0], box[3] - box[1])

    def step(self, image: np.ndarray, ts: int) -> FaceObservation | None:
        h, w = image.shape[:2]
        side = max(8, int(round(self.side)))
        x0, y0 = int(round(self.cx - side / 2)), int(round(self.cy - side / 2))
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
        if sx1 - sx0 < 4 or sy1 - sy0 < 4:
            return None
        crop = image[sy0:sy1, sx0:sx1]
        if (sx0, sy0, sx1, sy1) != (x0, y0, x0 + side, y0 + side):
            crop = cv2.copyMakeBorder(crop, sy0 - y0, y0 + side - sy1, sx0 - x0, x0 + side - sx1,
                                      cv2.BORDER_CONSTANT, value=(0, 0, 0))
        scale = 1.0
        if side > ROI_MAX_PX:
            crop = cv2.resize(crop, (ROI_MAX_PX, ROI_MAX_PX), interpolation=cv2.INTER_AREA)
            scale = side / ROI_MAX_PX
        faces = self.lm._faces(crop, self.lm._timestamp(ts / 1000.0), x0, y0, w, h, scale)
        self.skipped = 0
        if not faces:
            self.last = None
            return None
        f = faces[0]
        b = f.landmarks[:, :2]
        lo, hi = b.min(axis=0), b.max(axis=0)
        if max(abs((lo[0] + hi[0]) / 2 - self.cx), abs((lo[1] + hi[1]) / 2 - self.cy)) > side / 2:
            self.last = None
            return None  # the face's centre is outside the crop
        nx, ny = float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2)
        if self.last is not None and ts > self.last_ts:
            ob = self.last.landmarks[:, :2]
            ox, oy = (ob.min(axis=0) + ob.max(axis=0)) / 2
            self.fvx, self.fvy = (nx - float(ox)) / (ts - self.last_ts), (ny - float(oy)) / (ts - self.last_ts)
        else:
            self.fvx = self.fvy = 0.0
        self.last, self.last_ts = f, ts
        nside = ROI_SCALE * float(max(hi[0] - lo[0], hi[1] - lo[1]))
        # Move the crop only when the face drifts off its centre or changes size: mediapipe
        # tracks the face in crop coordinates, and every move of the crop looks like motion.
        if (max(abs(nx - self.cx), abs(ny - self.cy)) > ROI_RECENTRE * self.side
                or not 0.8 <= nside / max(self.side, 1e-6) <= 1.25):
            self.vx, self.vy = nx - self.cx, ny - self.cy
            lead = 0.5  # half a step ahead of a moving face
            self.cx, self.cy, self.side = nx + lead * self.vx, ny + lead * self.vy, nside
        return f


class FaceLandmarker:
    """Stateful (VIDEO mode tracks faces between calls); one instance per stream.

    ``detect(image_rgb, t)`` needs strictly increasing ``t`` (seconds); for
    unrelated still images use ``video=False``.

    Small faces in video: mediapipe's landmarker finds faces with its short-range detector,
    which sees the whole frame at 128×128 and misses faces under ~20 % of the frame height.
    With a ``detector`` (:class:`emotiond.face.detector.FaceDetector`, full range, run on a
    schedule — every ``DETECT_INTERVAL_FOUND`` s while all is tracked, every
    ``DETECT_INTERVAL_SEARCH`` s and at once when a face is lost), each detection not already
    covered seeds a crop followed by its own small landmarker (:class:`_Roi`), run on every
    ``ROI_EVERY``-th frame (in between the crop's last face is reported again, moved by its
    velocity); faces the whole-frame landmarker tracks stay on that cheap path.  Duplicates (one face found twice)
    are merged in every frame.
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
        detector=None,
        owns_detector: bool = False,
    ):
        base_options, fl, mp_image, rm = _import_mediapipe()
        self._model_path = model_path
        self._child_kwargs = dict(
            min_detection_confidence=min_detection_confidence, min_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence, min_face_size=min_face_size, fast_path=fast_path,
        )
        self._detector = detector if video else None
        self._owns_detector = owns_detector
        self._rois: list[_Roi] = []
        self._pool: list[_Roi] = []
        self._main_count = 0
        self._last_detect: float | None = None
        self._unanalysed = 0
        self.seconds = {"detector": 0.0, "crops": 0.0}  # time in the full-range detector / crop landmarkers
        self.calls = {"detector": 0, "crops": 0}  # how often each ran
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
            output_facial_transformation_matrixes=True,
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

    def _detect_fast(self, image, timestamp_ms: int | None) -> tuple[list, list, list]:
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
            mats = [result.facial_transformation_matrixes[i].to_numpy().copy()
                    for i in range(result.facial_transformation_matrixes_count)]
        finally:
            lm._lib.MpFaceLandmarkerCloseResult(ctypes.byref(result))
        return points, shapes, mats

    def _detect_public(self, image, timestamp_ms: int | None) -> tuple[list, list, list]:
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
        mats = [np.asarray(m) for m in (res.facial_transformation_matrixes or [])]
        return points, shapes, mats

    # -- public --------------------------------------------------------------
    def detect(self, image_rgb: np.ndarray, t: float | None = None) -> FaceList:
        """Faces in one frame.  In IMAGE mode (stills) small faces are also searched for in
        overlapping tiles: the detector works on a 128 px view of the whole image and
        misses faces under ~10 % of its size (group photos).  In VIDEO mode with a
        ``detector``, small faces are searched for by it and followed on crops (see the class
        docstring).  The list's ``unanalysed`` counts faces seen beyond ``max_faces``."""
        if self._closed:
            raise RuntimeError("FaceLandmarker is closed")
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
            raise SourceError(f"expected an RGB uint8 image, got shape {image_rgb.shape} {image_rgb.dtype}")
        h, w = image_rgb.shape[:2]
        if self.video:
            ts = self._timestamp(t)
            faces = _dedupe(self._faces(image_rgb, ts, 0, 0, w, h))
            if self._detector is not None:
                return self._with_small_faces(image_rgb, ts, faces)
            return FaceList(faces[: self.max_faces])
        faces = self._faces(image_rgb, None, 0, 0, w, h)
        for x0, y0, x1, y1 in _tiles(w, h):
            faces += self._faces(image_rgb[y0:y1, x0:x1], None, x0, y0, w, h)
        faces = _dedupe(faces)
        out = FaceList(faces[: self.max_faces])
        out.unanalysed = max(0, len(faces) - self.max_faces)
        return out

    def _timestamp(self, t: float | None) -> int:
        ts = int(round((t or 0.0) * 1000.0))
        if ts <= self._last_ms:  # mediapipe needs strictly increasing timestamps
            ts = self._last_ms + 1
        self._last_ms = ts
        return ts

    # -- small faces in video: detector + landmarkers on crops ------------------
    def _with_small_faces(self, image: np.ndarray, ts: int, faces: list[FaceObservation]) -> FaceList:
        t = ts / 1000.0
        lost = len(faces) < self._main_count
        self._main_count = len(faces)
        missing: list[_Roi] = []
        t0 = time.perf_counter()
        for roi in list(self._rois):
            if roi.due():
                self.calls["crops"] += 1
                f = roi.step(image, ts)
            else:
                f = roi.repeat(ts, image.shape[1], image.shape[0])
            if f is not None and any(_overlap(f.bbox, g.bbox) > 0.5 for g in faces[: self._main_count]):
                self._release(roi)  # the whole-frame landmarker follows this face now
                continue
            if f is None or any(_overlap(f.bbox, g.bbox) > 0.5 for g in faces):
                missing.append(roi)  # lost it, or it slid onto a neighbour's face
                continue
            roi.misses = 0
            faces.append(f)
        self.seconds["crops"] += time.perf_counter() - t0
        interval = DETECT_INTERVAL_SEARCH if (lost or missing or not faces) else DETECT_INTERVAL_FOUND
        if self._last_detect is None and faces:
            self._last_detect = t  # faces from the first frame on: the first search can wait (start-up latency)
        if self._last_detect is None or lost or missing or t - self._last_detect >= interval:
            self._last_detect = t
            t0 = time.perf_counter()
            dets = [d for d in self._detector.detect(image) if all(_overlap(d.bbox, f.bbox) < 0.3 for f in faces)]
            self.calls["detector"] += 1
            self.seconds["detector"] += time.perf_counter() - t0
            # a crop that lost its face moves to the nearest new detection and tries again
            for roi in missing:
                near = [d for d in dets if abs((d.bbox[0] + d.bbox[2]) / 2 - roi.cx) < roi.side
                        and abs((d.bbox[1] + d.bbox[3]) / 2 - roi.cy) < roi.side]
                if near:
                    d = near[0]
                    dets.remove(d)
                    roi.place_detection(d.bbox)
                    self.calls["crops"] += 1
                    f = roi.step(image, ts)
                    if f is not None and all(_overlap(f.bbox, g.bbox) <= 0.5 for g in faces):
                        roi.misses = 0
                        faces.append(f)
                        continue
                roi.misses += 1
                if roi.misses > ROI_MISSES:
                    self._release(roi)
            extra = 0
            for d in dets:
                if len(faces) >= self.max_faces:
                    extra += 1
                    continue
                roi = self._acquire()
                roi.place_detection(d.bbox)
                self.calls["crops"] += 1
                f = roi.step(image, ts)
                if f is None or any(_overlap(f.bbox, g.bbox) > 0.5 for g in faces):
                    self._release(roi)
                    continue
                faces.append(f)
            self._unanalysed = extra
        else:
            for roi in missing:
                roi.misses += 1
                if roi.misses > ROI_MISSES:
                    self._release(roi)
        out = FaceList(faces)
        out.unanalysed = self._unanalysed
        return out

    def _acquire(self) -> _Roi:
        if self._pool:
            roi = self._pool.pop()
        else:
            roi = _Roi(FaceLandmarker(self._model_path, max_faces=1, video=True, **self._child_kwargs))
        self._rois.append(roi)
        return roi

    def _release(self, roi: _Roi) -> None:
        self._rois.remove(roi)
        roi.misses = 0
        roi.last = None
        self._pool.append(roi)

    def _faces(self, image_rgb: np.ndarray, ts: int | None, ox: int, oy: int, full_w: int, full_h: int,
               scale: float = 1.0) -> list[FaceObservation]:
        """Faces in ``image_rgb``; pixel = (crop pixel × scale) + (ox, oy) in the full frame."""
        image = self._mp_image.Image(self._mp_image.ImageFormat.SRGB, np.ascontiguousarray(image_rgb))
        points, shapes, mats = (self._detect_fast if self._fast else self._detect_public)(image, ts)
        h, w = image_rgb.shape[:2]
        faces = []
        for i, norm in enumerate(points):
            if norm.shape[0] < N_LANDMARKS:
                continue
            px = np.empty_like(norm, dtype=np.float32)
            px[:, 0] = norm[:, 0] * (w * scale) + ox
            px[:, 1] = norm[:, 1] * (h * scale) + oy
            px[:, 2] = norm[:, 2] * (w * scale)
            bbox = _bbox(px, full_w, full_h)
            if bbox[2] - bbox[0] < 2 or bbox[3] - bbox[1] < 2:
                continue  # face entirely outside the image
            pose = head_pose(mats[i]) if i < len(mats) else None
            faces.append(
                FaceObservation(
                    landmarks=px,
                    blendshapes=shapes[i] if i < len(shapes) else np.zeros(N_BLENDSHAPES, np.float32),
                    bbox=bbox,
                    quality=face_quality(bbox, self.min_face_size, pose),
                    pose=pose,
                )
            )
        return faces

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lm.close()
            for roi in self._rois + self._pool:
                roi.lm.close()
            self._rois, self._pool = [], []
            if self._detector is not None and self._owns_detector:
                self._detector.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
