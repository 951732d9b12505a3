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
    primary: bool = False  # the face the fused result speaks for

    @property
    def caption(self) -> str:
        head = f"#{self.track_id}" if self.track_id >= 0 else "face"
        if self.label is None:
            return head
        return f"{head}  {self.label}  {self.confidence:.0%}"


SPEAKING = 0.5  # P(speaking) from which a face is marked as the speaker


def face_boxes(result: FrameResult | None, speech_threshold: float) -> list[FaceBox]:
    """The overlay's model of a result.  The speaking marker goes to the face the active-speaker
    stage judges to be talking (``faces[].speaking``); without speaker detection (no audio, or
    switched off) to the primary face while the voice activity is above the threshold."""
    if result is None:
        return []
    heard = result.speech is not None and result.speech > speech_threshold
    primary = result.primary_face
    boxes = []
    for f in result.faces:
        label = conf = None
        if f.emotion is not None:
            k = int(np.argmax(f.emotion))
            label, conf = f.label or EMOTIONS[k], float(f.emotion[k])  # "uncertain" when unreadable
        speaking = f.speaking >= SPEAKING if f.speaking is not None else heard and f is primary
        boxes.append(FaceBox(f.track_id, tuple(map(float, f.bbox)), label, conf, speaking, f is primary))
    return boxes


def _person(face) -> str:
    """How the bars name the primary person: "face #3", "face #3 (speaking)"."""
    return f"face #{face.track_id}" + (" (speaking)" if (face.speaking or 0.0) >= SPEAKING else "")


def face_count_text(result: FrameResult | None, max_faces: int) -> str:
    """What the overlay's corner says about how many faces there are."""
    if result is None or not result.faces:
        return ""
    n = len(result.faces)
    m = sum(f.emotion is not None for f in result.faces)
    text = f"{n} face{'s' if n != 1 else ''}" + (f" ({m} analysed)" if m != n else "")
    if n >= max_faces:
        text += f" — the limit (max faces {max_faces}): more may be present, raise it in Settings"
    return text


def layout_captions(boxes: list[QRectF], sizes: list[tuple[float, float]], bounds: QRectF, gap: float = 3.0) -> list[QRectF]:
    """Where each box's caption goes: above its box (below when there is no room), kept
    inside ``bounds`` and moved down until it overlaps no caption placed before it."""
    placed: list[QRectF] = []
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i].top(), boxes[i].left()))
    out: list[QRectF | None] = [None] * len(boxes)
    for i in order:
        r, (w, h) = boxes[i], sizes[i]
        w = min(w, bounds.width())
        x = min(max(r.left() - 1.5, bounds.left()), bounds.right() - w)
        candidates = [r.top() - h - gap, r.bottom() + gap, r.top() + gap]
        pill = None
        for y in candidates:
            y = min(max(y, bounds.top()), bounds.bottom() - h)
            trial = QRectF(x, y, w, h)
            if not any(trial.intersects(q) for q in placed):
                pill = trial
                break
        if pill is None:  # everything near the box is taken: go down (then up) until free
            y = min(max(candidates[0], bounds.top()), bounds.bottom() - h)
            pill = QRectF(x, y, w, h)
            for step in range(1, 200):
                for sign in (1, -1):
                    yy = y + sign * step * (h / 2)
                    if bounds.top() <= yy <= bounds.bottom() - h:
                        trial = QRectF(x, yy, w, h)
                        if not any(trial.intersects(q) for q in placed):
                            pill = trial
                            break
                else:
                    continue
                break
        placed.append(pill)
        out[i] = pill
    return out  # type: ignore[return-value]


class VideoView(QWidget):
    """The newest frame, scaled to fit, with a box, id, emotion and confidence per face.
    Clicking a face selects it (``face_clicked``: its track id, -1 for none)."""

    first_frame_shown = Signal()
    face_clicked = Signal(int)

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
        self.selected: int | None = None  # track id drawn as selected
        self.corner_text = ""  # "N faces (M analysed)"
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Click a face to show its result in the panels; click elsewhere for the largest face")

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
            self._paint_box(p, box)
        for box, pill in zip(self._boxes, self.caption_rects()):
            self._paint_caption(p, box, pill)
        if self.corner_text:
            p.setFont(_font(style.BASE_POINT_SIZE, bold=True))
            fm = p.fontMetrics()
            text = fm.elidedText(self.corner_text, Qt.TextElideMode.ElideRight, int(target.width() - 16))
            r = QRectF(target.left() + 6, target.bottom() - fm.height() - 10, fm.horizontalAdvance(text) + 12, fm.height() + 6)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(_qcolor(style.BACKGROUND, 215))
            p.drawRoundedRect(r, 5, 5)
            p.setPen(QColor(style.TEXT))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
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

    def caption_rects(self) -> list[QRectF]:
        """Where each face's caption is drawn (widget coordinates): inside the picture,
        never overlapping another caption."""
        if self._image is None or not self._boxes:
            return []
        from PySide6.QtGui import QFontMetricsF

        fm = QFontMetricsF(_font(style.BASE_POINT_SIZE + 1, bold=True))
        sizes = [(fm.horizontalAdvance(b.caption) + 16, fm.height() + 6) for b in self._boxes]
        target, _ = self._target()
        return layout_captions([self.box_rect(b) for b in self._boxes], sizes, target)

    def face_at(self, x: float, y: float) -> FaceBox | None:
        """The face whose box (or caption) is at widget point (x, y); the smallest box wins."""
        hits = [b for b, pill in zip(self._boxes, self.caption_rects())
                if self.box_rect(b).contains(QPointF(x, y)) or pill.contains(QPointF(x, y))]
        return min(hits, key=lambda b: (b.bbox[2] - b.bbox[0]) * (b.bbox[3] - b.bbox[1]), default=None)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._image is not None:
            box = self.face_at(event.position().x(), event.position().y())
            self.face_clicked.emit(box.track_id if box is not None else -1)
        super().mousePressEvent(event)

    def _paint_box(self, p: QPainter, box: FaceBox) -> None:
        r = self.box_rect(box)
        color = QColor(style.color_for(box.label))
        p.setBrush(Qt.BrushStyle.NoBrush)
        if box.speaking:  # a soft halo around the speaker's box
            p.setPen(QPen(_qcolor(style.SPEECH_ON, 110), 9))
            p.drawRoundedRect(r.adjusted(-3, -3, 3, 3), 6, 6)
        if self.selected is not None and box.track_id == self.selected:  # a white outline: the panels show this face
            p.setPen(QPen(QColor(style.SELECTED), 2, Qt.PenStyle.DashLine))
            p.drawRoundedRect(r.adjusted(-5, -5, 5, 5), 6, 6)
        p.setPen(QPen(color, 3))
        p.drawRoundedRect(r, 4, 4)
        if box.speaking:
            self._paint_speaking(p, r)

    def _paint_caption(self, p: QPainter, box: FaceBox, pill: QRectF) -> None:
        color = QColor(style.color_for(box.label))
        p.setFont(_font(style.BASE_POINT_SIZE + 1, bold=True))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(_qcolor(style.BACKGROUND, 225))
        p.drawRoundedRect(pill, 5, 5)
        p.setBrush(color)
        p.drawRoundedRect(QRectF(pill.left(), pill.top(), 5, pill.height()), 2, 2)
        p.setPen(QColor(style.TEXT))
        text = p.fontMetrics().elidedText(box.caption, Qt.TextElideMode.ElideRight, int(pill.width() - 12))
        p.drawText(pill.adjusted(9, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)

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
        self.setMinimumSize(280, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._fused: np.ndarray | None = None
        self._face: np.ndarray | None = None
        self._voice: np.ndarray | None = None
        self._shares: dict[str, float] = {}
        self._label: str | None = None
        self._confidence = 0.0
        self._va: tuple[float, float] | None = None
        self._note = "waiting for the first result"
        self.whose = ""  # what the panel shows: whose result, fused and smoothed or one face's own
        self.selected: int | None = None  # the face shown (its own face-model result), None: fused
        self.smoothing = 0.0

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

    def set_result(self, result: FrameResult | None, selected: int | None = None, smoothing: float | None = None) -> None:
        """Show ``result``'s fused distribution (the primary face's), or with ``selected`` (a
        track id present in the result) that face's: its own fusion with the voice
        (``FrameResult.fused_by_track``) when the engine gives one, else its face model alone."""
        if smoothing is not None:
            self.smoothing = float(smoothing)
        face = None
        if result is not None and selected is not None:
            face = next((f for f in result.faces if f.track_id == selected and f.emotion is not None), None)
        self.selected = selected if face is not None else None
        if face is not None:
            from emotiond.labels import valence_arousal

            own = (getattr(result, "fused_by_track", None) or {}).get(selected)
            face_probs = np.asarray(face.emotion, dtype=np.float64)
            self._face = face_probs
            self._voice = None if result.voice is None or not np.any(result.voice) else np.asarray(result.voice)
            if own is not None:
                self._fused = np.asarray(own.probs, dtype=np.float64)
                self._label, self._confidence = own.label, float(own.confidence)
                self._shares = {k: float(v) for k, v in own.shares.items()}
                self._va = (float(own.valence), float(own.arousal))
                sm = f"smoothed over {self.smoothing:.1f} s" if self.smoothing > 0 else "not smoothed"
                with_voice = " + voice" if "voice" in self._shares else ""
                self.whose = f"face #{selected} (selected){with_voice} — fused, {sm}"
            else:
                k = int(np.argmax(face_probs))
                self._fused, self._label, self._confidence = face_probs, EMOTIONS[k], float(face_probs[k])
                self._shares = {"face": 1.0}
                self._va = tuple(float(v) for v in valence_arousal(face_probs))
                self._voice = None
                self.whose = f"face #{selected} (selected) — its face model alone, this frame, not smoothed"
            self.update()
            return
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
        self._face = None if primary is None or primary.emotion is None else np.asarray(primary.emotion)
        self._voice = None if result is None or result.voice is None or not np.any(result.voice) else np.asarray(result.voice)
        if fused is None:
            self.whose = ""
        else:
            parts = ([_person(primary)] if primary is not None else []) + (["voice"] if "voice" in self._shares else [])
            if primary is None and result.faces:
                parts = ["off-screen voice"]  # speech no visible face is making
            sm = f"smoothed over {self.smoothing:.1f} s" if self.smoothing > 0 else "not smoothed"
            self.whose = f"fused: {' + '.join(parts) or 'no evidence'} — {sm}"
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
        y += fm.height() + 2
        if self._fused is not None and self.whose:  # whose result this is, and whether it is smoothed
            p.setPen(QColor(style.SELECTED if self.selected is not None else style.MUTED))
            whose = fm.elidedText(self.whose, Qt.TextElideMode.ElideRight, int(W - 2 * pad))
            p.drawText(QRectF(pad, y, W - 2 * pad, fm.height()), Qt.AlignmentFlag.AlignLeft, whose)
        y += fm.height() + 8

        # share bar: how much each modality contributed
        y = self._paint_shares(p, pad, y, W - 2 * pad) + 12

        # one bar per class
        label_w = fm.horizontalAdvance("surprise") + 12
        pct_w = fm.horizontalAdvance("100%") + 8
        rows = len(EMOTIONS)
        legend_h = fm.height() + 6
        row_h = max(16.0, min(34.0, (H - y - pad - legend_h) / rows))
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

    def reset(self) -> None:
        """A new source: nothing measured yet."""
        self.level = self.peak = self.speech = None
        self.speaking = False
        self.set_available(True)
        self.set_voice(True)

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
            reading = f"{self.level:.0f} dBFS" if self.level >= self.FLOOR else f"silence (< {self.FLOOR:.0f} dBFS)"
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


# -- valence / arousal circumplex ------------------------------------------------------
class Circumplex(QWidget):
    """Valence (x) and arousal (y) on Russell's circumplex: where each class sits, the
    current point, and the trajectory of the last ``seconds`` (fading)."""

    def __init__(self, seconds: float = 10.0, parent=None):
        super().__init__(parent)
        self.seconds = seconds
        self.setMinimumSize(150, 110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.trail: list[tuple[float, float, float]] = []  # (t, valence, arousal)
        self.whose = "fused"
        self.setToolTip("Valence (x, unpleasant → pleasant) and arousal (y, calm → excited): the shown result "
                        "and its trajectory over the last 10 s (docs/fusion.md)")

    def sizeHint(self) -> QSize:
        return QSize(220, 200)

    def clear(self) -> None:
        self.trail = []
        self.update()

    def push(self, t: float, valence: float, arousal: float) -> None:
        if not (math.isfinite(valence) and math.isfinite(arousal)):
            return
        if self.trail and t < self.trail[-1][0] - 1.0:  # time went back (a seek): start again
            self.trail = []
        self.trail.append((float(t), float(valence), float(arousal)))
        cut = self.trail[-1][0] - self.seconds
        while self.trail and self.trail[0][0] < cut:
            self.trail.pop(0)
        self.update()

    def current(self) -> tuple[float, float] | None:
        return (self.trail[-1][1], self.trail[-1][2]) if self.trail else None

    def paintEvent(self, event) -> None:
        from emotiond.labels import CIRCUMPLEX

        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(style.PANEL))
        p.setFont(_font(style.BASE_POINT_SIZE - 1))
        fm = p.fontMetrics()
        pad = 8
        size = max(40.0, min(self.width() - 2 * pad, self.height() - 2 * pad - fm.height()))
        cx, cy = self.width() / 2, pad + fm.height() + size / 2
        rad = size / 2

        def at(v: float, a: float) -> QPointF:
            return QPointF(cx + v * rad, cy - a * rad)

        p.setPen(QColor(style.MUTED))
        title = fm.elidedText(f"valence · arousal ({self.whose})", Qt.TextElideMode.ElideRight, self.width() - 8)
        p.drawText(QRectF(0, 2, self.width(), fm.height()), Qt.AlignmentFlag.AlignHCenter, title)
        p.setPen(QPen(QColor("#5f6368"), 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(QPointF(cx, cy), rad, rad)
        p.drawLine(at(-1, 0), at(1, 0))
        p.drawLine(at(0, -1), at(0, 1))
        # where each class's name goes beside its dot (angry, fear and disgust sit close together)
        place = {"fear": "left", "angry": "above", "disgust": "below-left", "sad": "below", "happy": "below",
                 "surprise": "above"}
        for name, (v, a) in CIRCUMPLEX.items():
            if name == "neutral":
                continue
            q = at(v, a)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(_qcolor(style.EMOTION_COLORS[name], 170))
            p.drawEllipse(q, 3, 3)
            p.setPen(_qcolor(style.EMOTION_COLORS[name], 220))
            tw, th = fm.horizontalAdvance(name), fm.height()
            where = place.get(name, "below")
            x = {"left": q.x() - tw - 5, "below-left": q.x() - tw + 2}.get(where, q.x() - tw / 2)
            y = {"above": q.y() - th - 3, "left": q.y() - th / 2}.get(where, q.y() + 3)
            p.drawText(QRectF(x, y, tw + 2, th), Qt.AlignmentFlag.AlignLeft, name)
        if self.trail:
            t_end = self.trail[-1][0]
            for (t0, v0, a0), (_, v1, a1) in zip(self.trail, self.trail[1:]):
                alpha = int(40 + 200 * max(0.0, 1 - (t_end - t0) / self.seconds))
                p.setPen(QPen(_qcolor(style.TEXT, alpha), 2))
                p.drawLine(at(v0, a0), at(v1, a1))
            _, v, a = self.trail[-1]
            p.setPen(QPen(QColor(style.BACKGROUND), 2))
            p.setBrush(QColor(style.TEXT))
            p.drawEllipse(at(v, a), 6, 6)
        p.end()


# -- expression units (blendshapes) -----------------------------------------------------
class ExpressionUnits(QWidget):
    """The strongest facial expression units of the shown face: per-face action units
    where the engine gives them (``FaceObservation.aus``), otherwise mediapipe's 52
    blendshapes (ARKit names), which is what the engine logs today."""

    TOP = 8

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumSize(170, 110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.units: list[tuple[str, float]] = []
        self.title = "expression units"

    def sizeHint(self) -> QSize:
        return QSize(240, 200)

    def set_face(self, face, track_id: int | None) -> None:
        if face is None:
            self.units, self.title = [], "expression units — no face"
            self.update()
            return
        aus = getattr(face, "aus", None)
        if isinstance(aus, dict) and aus:
            items, kind = [(str(k), float(v)) for k, v in aus.items()], "action units"
        else:
            from emotiond.face.landmarks import BLENDSHAPES

            shapes = np.asarray(face.blendshapes, dtype=np.float64)
            items = [(n, float(v)) for n, v in zip(BLENDSHAPES, shapes) if n != "_neutral"]
            kind = "blendshapes"
        self.units = sorted(items, key=lambda kv: -kv[1])[: self.TOP]
        self.title = f"{kind} of face #{track_id}" if track_id is not None and track_id >= 0 else kind
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(style.PANEL))
        p.setFont(_font(style.BASE_POINT_SIZE - 1))
        fm = p.fontMetrics()
        pad = 8
        W = self.width()
        p.setPen(QColor(style.MUTED))
        p.drawText(QRectF(pad, 2, W - 2 * pad, fm.height()), Qt.AlignmentFlag.AlignLeft,
                   fm.elidedText(self.title, Qt.TextElideMode.ElideRight, int(W - 2 * pad)))
        y = fm.height() + 6
        rows = max(1, len(self.units))
        row_h = max(12.0, min(22.0, (self.height() - y - pad) / rows))
        name_w = min(W * 0.55, fm.horizontalAdvance("mouthSmileRight") + 8)
        for name, v in self.units:
            p.setPen(QColor(style.TEXT))
            p.drawText(QRectF(pad, y, name_w, row_h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                       fm.elidedText(name, Qt.TextElideMode.ElideRight, int(name_w - 4)))
            bar = QRectF(pad + name_w, y + row_h * 0.25, max(1.0, (W - 2 * pad - name_w)), row_h * 0.5)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#3c4043"))
            p.drawRoundedRect(bar, 2, 2)
            p.setBrush(QColor(style.MODALITY_COLORS["face"]))
            p.drawRoundedRect(QRectF(bar.left(), bar.top(), bar.width() * min(1.0, max(0.0, v)), bar.height()), 2, 2)
            y += row_h
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
        self.action2 = QPushButton()
        self.action2.hide()
        self._action2_cb = None
        self.action2.clicked.connect(lambda: self._action2_cb() if self._action2_cb is not None else None)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 8, 8)
        row.addLayout(text, 1)
        row.addWidget(self.action, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.action2, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, severity: str, message: str, hint: str | None = None, action: tuple[str, object] | None = None,
                     action2: tuple[str, object] | None = None) -> None:
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
        self._action2_cb = action2[1] if action2 else None
        self.action2.setText(action2[0] if action2 else "")
        self.action2.setVisible(action2 is not None)
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
