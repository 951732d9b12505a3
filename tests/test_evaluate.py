"""Metrics: confusion matrix, weighted and unweighted accuracy, report."""

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
