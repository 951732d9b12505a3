import numpy as np

from emotiond.face.tracker import FaceTracker, iou, largest
from emotiond.types import FaceObservation


def face(x0, y0, x1, y1):
    return FaceObservation(landmarks=np.zeros((478, 3), np.float32), blendshapes=np.zeros(52, np.float32),
                           bbox=(x0, y0, x1, y1), quality=1.0)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 15, 10)) - 1 / 3) < 1e-9


def test_ids_stable_while_moving_and_new_after_gap():
    tr = FaceTracker(min_iou=0.3, max_gap=0.5)
    ids = []
    for i in range(10):
        ids.append(tr.update([face(100 + 3 * i, 100, 200 + 3 * i, 200)], i / 30)[0].track_id)
    assert len(set(ids)) == 1
    # face leaves for longer than max_gap, comes back: a new id
    assert tr.update([face(100, 100, 200, 200)], 2.0)[0].track_id != ids[0]


def test_two_faces_keep_their_ids_when_order_changes():
    tr = FaceTracker()
    a, b = tr.update([face(0, 0, 50, 50), face(300, 0, 350, 50)], 0.0)
    ida, idb = a.track_id, b.track_id
    assert ida != idb
    b2, a2 = tr.update([face(302, 0, 352, 50), face(2, 0, 52, 50)], 0.04)
    assert (a2.track_id, b2.track_id) == (ida, idb)


def test_largest():
    assert largest([]) is None
    big = face(0, 0, 100, 100)
    assert largest([face(0, 0, 10, 10), big]) is big
