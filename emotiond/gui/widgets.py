"""The window's painted widgets: video with overlay, probability bars, level meter, banner.

Each widget keeps a small plain model of what it shows (``faces()``, ``values()``,
``level``...) so tests can check the content as well as the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from emotiond.gui import style
from emotiond.labels import EMOTIONS
from emotiond.types import FrameResult


def _font(points: float, bold: bool = False) -> QFont:
    f = QFont()
    f.setPointSizeF(points)
    f.setBold(bold)
    return f


def _qcolor(hex_: str, alpha: int = 255) -> QColor:
    c = QColor(hex_)
    c.setAlpha(alpha)
    return c


# -- video ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceBox:
    """One face as the overlay draws it (image pixels)."""

    track_id: int
    bbox: tuple[float, float, float, float]
    label: str | None
    confidence: float | None
    speaking: bool

    @property
    def caption(self) -> str:
        head = f"#{self.track_id}" if self.track_id >= 0 else "face"
        if self.label is None:
            return head
        return f"{head}  {self.label}  {self.confidence:.0%}"


def face_boxes(result: FrameResult | None, speech_threshold: float) -> list[FaceBox]:
    """The overlay's model of a result.  The speaking marker goes to the primary face (the one
    the fused result speaks for, ``FrameResult.primary``) while the voice activity is above the threshold."""
    if result is None:
        return []
    speaking = result.speech is not None and result.speech > speech_threshold
    primary = result.primary_face
    boxes = []
    for f in result.faces:
        label = conf = None
        if f.emotion is not None:
            k = int(np.argmax(f.emotion))
            label, conf = EMOTIONS[k], float(f.emotion[k])
        boxes.append(FaceBox(f.track_id, tuple(map(float, f.bbox)), label, conf, speaking and f is primary))
    return boxes


class VideoView(QWidget):
    """The newest frame, scaled to fit, with a box, id, emotion and confidence per face."""

    first_frame_shown = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._array: np.ndarray | None = None  # keeps the QImage's buffer alive
        self._image: QImage | None = None
        self._boxes: list[FaceBox] = []
        self._placeholder = "No source"
        self._shown_first = False
        self.frames_painted = 0

    def sizeHint(self) -> QSize:
        return QSize(800, 450)

    # model ---------------------------------------------------------------------------
    def faces(self) -> list[FaceBox]:
        return list(self._boxes)

    def has_frame(self) -> bool:
        return self._image is not None

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        if self._image is None:
            self.update()

    def clear(self, placeholder: str) -> None:
        self._array = self._image = None
        self._boxes = []
        self._shown_first = False
        self.set_placeholder(placeholder)

    def set_frame(self, image: np.ndarray, boxes: list[FaceBox]) -> None:
        """``image``: H x W x 3 uint8 RGB, C-contiguous (a VideoFrame's image; not copied)."""
        if image is not self._array:
            h, w = image.shape[:2]
            if not image.flags.c_contiguous:
                image = np.ascontiguousarray(image)
            self._array = image
            self._image = QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self._boxes = boxes
        self.update()

    # painting ------------------------------------------------------------------------
    def _target(self) -> tuple[QRectF, float]:
        iw, ih = self._image.width(), self._image.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h), s

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#000000"))
        if self._image is None:
            p.setPen(QColor(style.MUTED))
            p.setFont(_font(style.BASE_POINT_SIZE + 3))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        target, _ = self._target()
        p.drawImage(target, self._image)
        for box in self._boxes:
            self._paint_box(p, box, target)
        p.end()
        self.frames_painted += 1
        if not self._shown_first:
            self._shown_first = True
            self.first_frame_shown.emit()

    def box_rect(self, box: FaceBox) -> QRectF:
        """Where ``box`` is drawn, in widget coordinates."""
        target, s = self._target()
        x0, y0, x1, y1 = box.bbox
        return QRectF(target.left() + x0 * s, target.top() + y0 * s, (x1 - x0) * s, (y1 - y0) * s)

    def _paint_box(self, p: QPainter, box: FaceBox, target: QRectF) -> None:
        r = self.box_rect(box)
        color = QColor(style.color_for(box.label))
        p.setBrush(Qt.BrushStyle.NoBrush)
        if box.speaking:  # a soft halo around the speaker's box
            p.setPen(QPen(_qcolor(style.SPEECH_ON, 110), 9))
            p.drawRoundedRect(r.adjusted(-3, -3, 3, 3), 6, 6)
        p.setPen(QPen(color, 3))
        p.drawRoundedRect(r, 4, 4)

        # caption pill above the box (below it when the box touches the top)
        p.setFont(_font(style.BASE_POINT_SIZE + 1, bold=True))
        fm = p.fontMetrics()
        text = box.caption
        tw, th = fm.horizontalAdvance(text) + 14, fm.height() + 6
        top = r.top() - th - 3 if r.top() - th - 3 >= target.top() else r.bottom() + 3
        pill = QRectF(r.left() - 1.5, top, tw, th)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(_qcolor(style.BACKGROUND, 215))
        p.drawRoundedRect(pill, 5, 5)
        p.setBrush(color)
        p.drawRoundedRect(QRectF(pill.left(), pill.top(), 5, pill.height()), 2, 2)
        p.setPen(QColor(style.TEXT))
        p.drawText(pill.adjusted(9, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)

        if box.speaking:
            self._paint_speaking(p, r)

    def _paint_speaking(self, p: QPainter, r: QRectF) -> None:
        """A loudspeaker glyph and "speaking" at the box's top-right corner."""
        p.setFont(_font(style.BASE_POINT_SIZE, bold=True))
        fm = p.fontMetrics()
        label = "speaking"
        h = fm.height() + 6
        w = fm.horizontalAdvance(label) + h + 16
        pill = QRectF(r.right() - w, r.top() + 4, w, h)
        if pill.left() < r.left():
            pill.moveLeft(r.left())
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(_qcolor(style.SPEECH_ON, 230))
        p.drawRoundedRect(pill, h / 2, h / 2)
        # speaker: a box and a cone, then two arcs
        cx, cy, u = pill.left() + 8, pill.center().y(), h / 6
        body = QPainterPath()
        body.moveTo(cx, cy - u)
        body.lineTo(cx + u, cy - u)
        body.lineTo(cx + 2.4 * u, cy - 2.2 * u)
        body.lineTo(cx + 2.4 * u, cy + 2.2 * u)
        body.lineTo(cx + u, cy + u)
        body.lineTo(cx, cy + u)
        body.closeSubpath()
        ink = QColor("#0b2e13")
        p.setBrush(ink)
        p.drawPath(body)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(ink, max(1.2, u * 0.55)))
        for k in (1, 2):
            rad = u * (1.3 + 1.1 * k)
            p.drawArc(QRectF(cx + 2.4 * u - rad, cy - rad, 2 * rad, 2 * rad), -45 * 16, 90 * 16)
        p.drawText(pill.adjusted(h + 8, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, label)


# -- probability bars -------------------------------------------------------------------
class ProbabilityBars(QWidget):
    """The fused distribution: the top label, one bar per class, and the face/voice shares.

    Each bar is the fused probability; a cyan tick marks what the face said for that
    class and a pink one what the voice said, so the contribution of each is visible."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(300, 300)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._fused: np.ndarray | None = None
        self._face: np.ndarray | None = None
        self._voice: np.ndarray | None = None
        self._shares: dict[str, float] = {}
        self._label: str | None = None
        self._confidence = 0.0
        self._va: tuple[float, float] | None = None
        self._note = "waiting for the first result"

    def sizeHint(self) -> QSize:
        return QSize(420, 380)

    # model ---------------------------------------------------------------------------
    def values(self) -> dict[str, float] | None:
        """The fused probabilities shown, by class (None: nothing shown)."""
        if self._fused is None:
            return None
        return {e: float(v) for e, v in zip(EMOTIONS, self._fused)}

    def shares(self) -> dict[str, float]:
        return dict(self._shares)

    def set_note(self, text: str) -> None:
        self._note = text
        self.update()

    def set_result(self, result: FrameResult | None) -> None:
        fused = result.fused if result is not None else None
        if fused is None:
            self._fused = None
            self._note = "no face and no speech" if result is not None else self._note
        else:
            self._fused = np.asarray(fused.probs, dtype=np.float64)
            self._label, self._confidence = fused.label, float(fused.confidence)
            self._shares = {k: float(v) for k, v in fused.shares.items()}
            self._va = (float(fused.valence), float(fused.arousal))
        primary = result.primary_face if result is not None else None
        self._face = None if primary is None else np.asarray(primary.emotion)
        self._voice = None if result is None or result.voice is None or not np.any(result.voice) else np.asarray(result.voice)
        self.update()

    # painting ------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(style.PANEL))
        W, H = self.width(), self.height()
        pad = 14
        y = pad

        # headline: the fused label and confidence, valence / arousal
        p.setFont(_font(style.BASE_POINT_SIZE + 9, bold=True))
        fm = p.fontMetrics()
        if self._fused is not None:
            p.setPen(QColor(style.color_for(self._label)))
            head = f"{self._label.upper()}  {self._confidence:.0%}"
        else:
            p.setPen(QColor(style.MUTED))
            head = "—"
        p.drawText(QRectF(pad, y, W - 2 * pad, fm.height()), Qt.AlignmentFlag.AlignLeft, head)
        y += fm.height() + 2
        p.setFont(_font(style.BASE_POINT_SIZE))
        fm = p.fontMetrics()
        p.setPen(QColor(style.MUTED))
        if self._fused is not None and self._va is not None:
            sub = f"valence {self._va[0]:+.2f}    arousal {self._va[1]:+.2f}"
        else:
            sub = self._note
        p.drawText(QRectF(pad, y, W - 2 * pad, fm.height()), Qt.AlignmentFlag.AlignLeft, sub)
        y += fm.height() + 10

        # share bar: how much each modality contributed
        y = self._paint_shares(p, pad, y, W - 2 * pad) + 12

        # one bar per class
        label_w = fm.horizontalAdvance("surprise") + 12
        pct_w = fm.horizontalAdvance("100%") + 8
        rows = len(EMOTIONS)
        legend_h = fm.height() + 6
        row_h = max(18.0, min(34.0, (H - y - pad - legend_h) / rows))
        bar_x, bar_w = pad + label_w, W - 2 * pad - label_w - pct_w
        for i, name in enumerate(EMOTIONS):
            ry = y + i * row_h
            bh = row_h * 0.62
            by = ry + (row_h - bh) / 2
            p.setPen(QColor(style.TEXT))
            p.drawText(QRectF(pad, ry, label_w, row_h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, name)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#3c4043"))
            p.drawRoundedRect(QRectF(bar_x, by, bar_w, bh), 3, 3)
            v = None if self._fused is None else float(self._fused[i])
            if v is not None and v > 0:
                p.setBrush(QColor(style.EMOTION_COLORS[name]))
                p.drawRoundedRect(QRectF(bar_x, by, max(3.0, bar_w * min(1.0, v)), bh), 3, 3)
            for probs, modality, up in ((self._face, "face", True), (self._voice, "voice", False)):
                if probs is not None:
                    self._tick(p, bar_x + bar_w * float(probs[i]), by, bh, style.MODALITY_COLORS[modality], up)
            p.setPen(QColor(style.TEXT))
            p.drawText(QRectF(bar_x + bar_w, ry, pct_w, row_h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                       "" if v is None else f"{v:.0%}")
        # legend for the ticks
        ly = y + rows * row_h + 4
        x = bar_x
        for modality in ("face", "voice"):
            self._tick(p, x + 4, ly + 2, fm.height() - 4, style.MODALITY_COLORS[modality], modality == "face")
            p.setPen(QColor(style.MUTED))
            text = f"{modality} says"
            p.drawText(QRectF(x + 12, ly, 120, fm.height()), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
            x += fm.horizontalAdvance(text) + 34
        p.end()

    @staticmethod
    def _tick(p: QPainter, x: float, by: float, bh: float, color: str, up: bool) -> None:
        """A thin vertical mark with a small triangle (above the bar: face; below: voice)."""
        p.setPen(QPen(QColor(color), 2))
        p.drawLine(QPointF(x, by - 2), QPointF(x, by + bh + 2))
        tri = QPainterPath()
        y = by - 2 if up else by + bh + 2
        d = -5 if up else 5
        tri.moveTo(x - 4, y + d)
        tri.lineTo(x + 4, y + d)
        tri.lineTo(x, y)
        tri.closeSubpath()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(color))
        p.drawPath(tri)

    def _paint_shares(self, p: QPainter, x: float, y: float, w: float) -> float:
        fm = p.fontMetrics()
        h = fm.height() + 6
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#3c4043"))
        p.drawRoundedRect(QRectF(x, y, w, h), 4, 4)
        shares = self._shares if self._fused is not None else {}
        cx = x
        for modality in ("face", "voice"):
            share = shares.get(modality, 0.0)
            if share <= 0:
                continue
            seg = QRectF(cx, y, w * share, h)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(_qcolor(style.MODALITY_COLORS[modality], 200))
            p.drawRoundedRect(seg, 4, 4)
            text = f"{modality} {share:.0%}"
            if fm.horizontalAdvance(text) + 10 < seg.width():
                p.setPen(QColor("#101214"))
                p.drawText(seg, Qt.AlignmentFlag.AlignCenter, text)
            cx += seg.width()
        if not shares:
            p.setPen(QColor(style.MUTED))
            p.drawText(QRectF(x, y, w, h), Qt.AlignmentFlag.AlignCenter, "share of face / voice")
        return y + h


# -- audio level ------------------------------------------------------------------------
class LevelMeter(QWidget):
    """RMS level of the audio (dBFS, -60..0) with a peak hold, and a speech light."""

    FLOOR = -60.0

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(62)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.level: float | None = None
        self.peak: float | None = None
        self.speech: float | None = None
        self.speaking = False
        self.available = True
        self.voice = True  # False: the voice path is off (no speech detection)
        self._note = "no audio"

    def sizeHint(self) -> QSize:
        return QSize(420, 64)

    def set_available(self, available: bool, note: str = "no audio") -> None:
        self.available, self._note = available, note
        if not available:
            self.level = self.peak = self.speech = None
            self.speaking = False
        self.update()

    def push(self, levels: list[tuple[float, float]], dt: float) -> None:
        """New (t, dBFS) levels since the last call; ``dt`` seconds since then (peak decay)."""
        if levels:
            self.level = max(db for _, db in levels)
            self.peak = self.level if self.peak is None else max(self.level, self.peak - 12.0 * dt)
        elif self.peak is not None:
            self.peak = max(self.FLOOR, self.peak - 12.0 * dt)
        self.update()

    def set_voice(self, on: bool, why: str = "") -> None:
        self.voice = on
        self.setToolTip("" if on else f"Speech detection is off: {why}")
        self.update()

    def set_speech(self, speech: float | None, threshold: float) -> None:
        self.speech = speech
        self.speaking = speech is not None and speech > threshold
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(style.PANEL))
        pad = 14
        p.setFont(_font(style.BASE_POINT_SIZE))
        fm = p.fontMetrics()
        light_w = fm.horizontalAdvance("SPEECH") + 24
        W = self.width()
        bar = QRectF(pad, 8, W - 3 * pad - light_w, 14)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#3c4043"))
        p.drawRoundedRect(bar, 3, 3)

        def x_of(db: float) -> float:
            return bar.left() + bar.width() * (min(0.0, max(self.FLOOR, db)) - self.FLOOR) / -self.FLOOR

        if self.available and self.level is not None:
            # green up to -18 dBFS, amber to -6, red above
            for lo, hi, color in ((self.FLOOR, -18.0, "#66bb6a"), (-18.0, -6.0, "#ffca28"), (-6.0, 0.0, "#ef5350")):
                if self.level > lo:
                    p.setBrush(QColor(color))
                    p.drawRect(QRectF(x_of(lo), bar.top(), x_of(min(hi, self.level)) - x_of(lo), bar.height()))
            if self.peak is not None:
                p.setBrush(QColor(style.TEXT))
                p.drawRect(QRectF(x_of(self.peak) - 1, bar.top() - 2, 2, bar.height() + 4))
        # scale and reading
        p.setPen(QColor(style.MUTED))
        for db in (-60, -40, -20, -6, 0):
            p.drawText(QRectF(x_of(db) - 20, bar.bottom() + 2, 40, fm.height()), Qt.AlignmentFlag.AlignHCenter, f"{db}")
        if not self.available:
            reading = self._note
        elif self.level is None:
            reading = "level —"
        else:
            reading = f"{self.level:.0f} dBFS" if self.level >= self.FLOOR else f"below {self.FLOOR:.0f} dBFS (silence)"
        p.setPen(QColor(style.TEXT))
        p.drawText(QRectF(pad, bar.bottom() + 2 + fm.height(), bar.width(), fm.height()), Qt.AlignmentFlag.AlignLeft, reading)
        # speech light
        light = QRectF(W - pad - light_w, 6, light_w, 22)
        on = self.available and self.voice and self.speaking
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(style.SPEECH_ON) if on else QColor("#3c4043"))
        p.drawRoundedRect(light, 11, 11)
        p.setPen(QColor("#0b2e13") if on else QColor(style.MUTED))
        p.drawText(light, Qt.AlignmentFlag.AlignCenter, "SPEECH")
        if not self.voice:
            p.setPen(QColor(style.MUTED))
            p.drawText(QRectF(light.left() - 20, light.bottom() + 2, light_w + 40, fm.height()),
                       Qt.AlignmentFlag.AlignHCenter, "voice off")
        elif self.available and self.speech is not None:
            p.setPen(QColor(style.MUTED))
            p.drawText(QRectF(light.left() - 10, light.bottom() + 2, light_w + 20, fm.height()), Qt.AlignmentFlag.AlignHCenter,
                       f"p = {self.speech:.2f}")
        p.end()


# -- banner -----------------------------------------------------------------------------
class Banner(QFrame):
    """What went wrong and what to do, in the window (never only in a terminal)."""

    COLORS = {"error": ("#5c1a1a", "#ef5350"), "warning": ("#4d3d10", "#ffca28"), "info": ("#17324d", "#42a5f5")}

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.severity = "info"
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setFont(_font(style.BASE_POINT_SIZE + 1, bold=True))
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.hint)
        self.action = QPushButton()
        self.action.hide()
        self._action_cb = None
        self.action.clicked.connect(self._on_action)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 8, 8)
        row.addLayout(text, 1)
        row.addWidget(self.action, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, severity: str, message: str, hint: str | None = None, action: tuple[str, object] | None = None) -> None:
        self.severity = severity
        bg, edge = self.COLORS[severity]
        self.setStyleSheet(f"QFrame#banner {{ background: {bg}; border-left: 5px solid {edge}; border-radius: 4px; }}"
                           f"QFrame#banner QLabel {{ background: transparent; }}")
        prefix = {"error": "Error: ", "warning": "Warning: ", "info": ""}[severity]
        self.title.setText(prefix + message)
        self.hint.setText(f"What to do: {hint}" if hint else "")
        self.hint.setVisible(bool(hint))
        if action is not None:
            self.action.setText(action[0])
            self._action_cb = action[1]
            self.action.show()
        else:
            self._action_cb = None
            self.action.hide()
        self.show()

    def add_note(self, text: str) -> None:
        """One more line under what is shown (e.g. a recording saved after an error)."""
        self.hint.setText(f"{self.hint.text()}\n{text}".strip())
        self.hint.show()

    def text(self) -> str:
        return f"{self.title.text()}\n{self.hint.text()}".strip()

    def _on_action(self) -> None:
        if self._action_cb is not None:
            self._action_cb()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(math.floor(seconds)))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"
