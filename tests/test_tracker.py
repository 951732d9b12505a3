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
    tr = FaceTracker(min_iou=0.3, max_gap=0.5, reentry_gap=0.5)
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


def test_id_survives_a_one_second_miss_and_fast_motion():
    tr = FaceTracker()
    first = tr.update([face(100, 100, 160, 160)], 0.0)[0].track_id
    for i in range(1, 6):  # moving 40 px per frame (IoU with the last box 0.2): prediction keeps it
        assert tr.update([face(100 + 40 * i, 100, 160 + 40 * i, 160)], i / 30)[0].track_id == first
    assert tr.update([face(300, 100, 360, 160)], 1.2)[0].track_id == first  # 1 s unseen


def test_reentry_gets_the_old_id_only_where_safe():
    tr = FaceTracker(max_gap=1.0, reentry_gap=4.0)
    a = tr.update([face(100, 100, 160, 160)], 0.0)[0].track_id
    assert tr.update([face(110, 105, 170, 165)], 3.0)[0].track_id == a  # back near where it left
    b = tr.update([face(600, 100, 660, 160)], 3.1)[0].track_id
    assert b != a  # somewhere else: a new person
    # two people leave together and one comes back between their places: ambiguous -> new id
    tr = FaceTracker(max_gap=1.0, reentry_gap=4.0)
    p, q = tr.update([face(100, 100, 160, 160), face(170, 100, 230, 160)], 0.0)
    back = tr.update([face(135, 100, 195, 160)], 2.0)[0]
    assert back.track_id not in (p.track_id, q.track_id)


def test_faces_crossing_keep_their_ids():
    tr = FaceTracker()
    ids = None
    for i in range(30):  # two faces walk through each other, 10 px per frame
        x1, x2 = 100 + 10 * i, 400 - 10 * i
        fs = tr.update([face(x1, 100, x1 + 60, 160), face(x2, 110, x2 + 60, 170)], i / 30)
        pair = (fs[0].track_id, fs[1].track_id)
        ids = ids or pair
        assert pair == ids, i
