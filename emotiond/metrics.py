"""Classification metrics (pure: label indices in, numbers out).

Unweighted accuracy (UA) is the mean per-class recall — the figure emotion-recognition
papers report, because corpora are unbalanced; weighted accuracy (WA) is the plain
fraction of correct items.  Used by ``emotiond eval`` (:mod:`emotiond.evaluate`) and the
training recipes, which is why they live in neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """int64 [n_classes, n_classes]: rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[int(t), int(p)] += 1
    return cm


def accuracy(cm: np.ndarray) -> float:
    """Weighted accuracy (WA): correct / all."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def recalls(cm: np.ndarray) -> np.ndarray:
    """Per-class recall; NaN for a class without items."""
    n = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.diag(cm) / np.where(n > 0, n, 1), np.nan)


def unweighted_accuracy(cm: np.ndarray) -> float:
    """Unweighted accuracy (UA): mean recall over the classes that have items."""
    r = recalls(cm)
    r = r[~np.isnan(r)]
    return float(r.mean()) if r.size else float("nan")


def format_report(cm: np.ndarray, class_names: Sequence[str]) -> str:
    """A text table: confusion matrix with per-class recall, then UA and WA."""
    names = list(class_names)
    w = max(8, *(len(n) for n in names)) + 1
    r = recalls(cm)
    head = "true \\ pred".ljust(w) + "".join(n[:w - 1].rjust(w) for n in names) + "n".rjust(6) + "recall".rjust(8)
    lines = [head]
    for i, name in enumerate(names):
        rec = "   -" if np.isnan(r[i]) else f"{r[i]:.3f}"
        lines.append(name.ljust(w) + "".join(str(v).rjust(w) for v in cm[i]) + str(cm[i].sum()).rjust(6) + rec.rjust(8))
    lines.append(f"UA (mean recall) {unweighted_accuracy(cm):.3f}   WA (accuracy) {accuracy(cm):.3f}   n = {cm.sum()}")
    return "\n".join(lines)
