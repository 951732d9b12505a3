"""Training recipes (need the ``train`` extra: torch, onnx).

* :mod:`emotiond.training.datasets` — readers for RAVDESS, CREMA-D, EmoFilm and
  folder-per-label corpora (no torch needed; also used by ``emotiond eval``).
* :mod:`emotiond.training.voice` — ``python -m emotiond.training.voice``.
"""
