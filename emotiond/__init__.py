"""emotiond — real-time audio-visual emotion recognition.

The package is split into a Qt-free core (everything except ``emotiond.gui``)
and a thin PySide6 GUI on top.  See ``docs/module-map.md``.
"""

__version__ = "0.1.0"
