"""Real mediapipe FaceLandmarker on real images and clips."""

import numpy as np
import pytest

from emotiond import registry
from emotiond.face.landmarks import (
    N_BLENDSHAPES,
    N_LANDMARKS,
    FaceLandmarker,
    _tiles,
    face_quality,
    head_pose,
    pose_factor,
)
from emotiond.sources.media import MediaFileSource, read_image


@pytest.fixture(scope="module")
def model_path():
    return registry.resolve("face_landmarker").path


def test_fast_path_equals_public_api(model_path, single_face_mp4):
    frames = [f for f in MediaFileSource(single_face_mp4, audio=False).items()][:15]
    out = {}
    for fast in (True, False):
        with FaceLandmarker(model_path, fast_path=fast) as lm:
            assert lm._fast is fast
            out[fast] = [lm.detect(f.image, f.t) for f in frames]
    for a, b in zip(out[True], out[False]):
        assert len(a) == len(b) == 1
        np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=1e-4)
        np.testing.assert_allclose(a[0].blendshapes, b[0].blendshapes, atol=1e-6)


def test_face_features(model_path, single_face_jpg):
    image = read_image(single_face_jpg)
    with FaceLandmarker(model_path, video=False) as lm:
        faces = lm.detect(image)
    assert len(faces) == 1
    f = faces[0]
    assert f.landmarks.shape == (N_LANDMARKS, 3) and f.blendshapes.shape == (N_BLENDSHAPES,)
    assert 0.0 <= f.blendshapes.min() and f.blendshapes.max() <= 1.0
    x0, y0, x1, y1 = f.bbox
    h, w = image.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    # landmarks lie inside their box, and the box is a face-sized part of the image
    assert (f.landmarks[:, 0] >= x0 - 1).all() and (f.landmarks[:, 1] <= y1 + 1).all()
    assert 0.05 < (x1 - x0) * (y1 - y0) / (w * h) < 0.9
    assert f.quality > 0.8


def test_quality_drops_for_small_and_turned_faces_but_not_tilted_ones(model_path, single_face_jpg):
    image = read_image(single_face_jpg)
    with FaceLandmarker(model_path, video=False) as lm:
        f = lm.detect(image)[0]
    assert f.pose is not None and all(abs(a) < 25 for a in f.pose)
    small = face_quality(f.bbox, 10 * (f.bbox[3] - f.bbox[1]), f.pose)
    assert small == pytest.approx(0.1 * face_quality(f.bbox, 1.0, f.pose), rel=1e-6)
    assert face_quality(f.bbox, 48.0, (80.0, 0.0, 0.0)) == 0.0  # a profile
    assert face_quality(f.bbox, 48.0, (0.0, 60.0, 0.0)) < 0.5  # looking up steeply
    assert face_quality(f.bbox, 48.0, (0.0, 0.0, 90.0)) == 1.0  # a tilted head: the crop is upright


def test_head_pose_from_the_transformation_matrix():
    def rz(d):
        a = np.radians(d)
        return np.array([[np.cos(a), -np.sin(a), 0, 0], [np.sin(a), np.cos(a), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])

    def ry(d):
        a = np.radians(d)
        return np.array([[np.cos(a), 0, np.sin(a), 0], [0, 1, 0, 0], [-np.sin(a), 0, np.cos(a), 0], [0, 0, 0, 1]])

    yaw, pitch, roll = head_pose(rz(40) @ ry(25) * 3.0)  # a uniform scale does not matter
    assert yaw == pytest.approx(25, abs=1e-6) and pitch == pytest.approx(0, abs=1e-6) and roll == pytest.approx(40)
    assert head_pose(None) is None and pose_factor(None) == 1.0


def test_no_face_image(model_path):
    with FaceLandmarker(model_path, video=False) as lm:
        assert lm.detect(np.full((360, 640, 3), 127, np.uint8)) == []


def test_tiles_cover_the_image():
    assert _tiles(300, 200) == []
    tiles = _tiles(1000, 667)
    assert tiles and all(x1 - x0 == y1 - y0 for x0, y0, x1, y1 in tiles)
    assert min(t[0] for t in tiles) == 0 and max(t[2] for t in tiles) == 1000
    assert min(t[1] for t in tiles) == 0 and max(t[3] for t in tiles) == 667


def test_video_mode_needs_no_increasing_timestamps_from_caller(model_path, single_face_jpg):
    image = read_image(single_face_jpg)
    with FaceLandmarker(model_path, video=True) as lm:
        assert len(lm.detect(image, 1.0)) == 1
        assert len(lm.detect(image, 1.0)) == 1  # same timestamp twice: nudged, not an error
        assert len(lm.detect(image, 0.5)) == 1  # going back in time: nudged forward


def test_blendshape_names_match_mediapipe():
    from emotiond.face.landmarks import BLENDSHAPES, _import_mediapipe

    _, fl, _, _ = _import_mediapipe()

    def camel(name):
        head, *rest = name.lower().split("_")
        return head + "".join(w.capitalize() for w in rest)

    expected = tuple("_neutral" if m.name == "NEUTRAL" else camel(m.name) for m in sorted(fl.Blendshapes))
    assert BLENDSHAPES == expected and len(BLENDSHAPES) == N_BLENDSHAPES
