"""Metrics: confusion matrix, weighted and unweighted accuracy, report; `emotiond eval` through `Models`."""

from __future__ import annotations

import numpy as np
import pytest

from emotiond.evaluate import accuracy, confusion_matrix, format_report, unweighted_accuracy


def test_metrics():
    y_true = [0, 0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 0, 1, 1, 0, 0]
    cm = confusion_matrix(y_true, y_pred, 4)
    assert cm.tolist() == [[3, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert accuracy(cm) == pytest.approx(4 / 7)
    assert unweighted_accuracy(cm) == pytest.approx((0.75 + 0.5 + 0.0) / 3)  # class 3 has no items
    text = format_report(cm, ["angry", "happy", "sad", "fear"])
    assert "UA (mean recall) 0.417" in text and "WA (accuracy) 0.571" in text
    assert np.isnan(accuracy(np.zeros((2, 2), int)))


def test_face_eval_goes_through_models(tmp_path, single_face_jpg, multi_face_jpg):
    """`emotiond eval --modality face` takes its models from a `Models` (leasing a still-image
    landmarker): a shared one is used, left open and gives what a fresh call gives, twice."""
    import shutil

    from emotiond.config import load_config
    from emotiond.evaluate import evaluate_face_dir
    from emotiond.models import Models

    for label, image in (("happiness", single_face_jpg), ("neutral", multi_face_jpg)):
        (tmp_path / label).mkdir()
        shutil.copy(image, tmp_path / label / image.name)
    cfg = load_config(overrides={"voice.enabled": False})
    fresh = evaluate_face_dir(tmp_path, cfg)
    assert fresh.confusion.sum() == 2
    with Models(cfg, voice=False, workers=1, video=False) as models:
        leased = []
        lease = models.lease_landmarkers
        models.lease_landmarkers = lambda n=None, video=True: leased.append(video) or lease(n, video=video)
        for _ in range(2):
            shared = evaluate_face_dir(tmp_path, cfg, models=models)
            assert (shared.confusion == fresh.confusion).all() and shared.skipped == fresh.skipped
        assert leased == [False, False] and not models.closed and not models._leased
