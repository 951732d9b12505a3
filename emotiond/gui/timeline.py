"""The scrolling timeline: the fused emotions and valence/arousal over the last minute.

pyqtgraph is imported when the plot is first built (:meth:`Timeline.build`), which the
window does right after the first frame is on screen: importing it costs ~0.5 s that
would otherwise delay the window.  Points that arrive before are kept in the buffer.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from emotiond.gui import style
from emotiond.gui.worker import TimelinePoint
from emotiond.labels import EMOTIONS


class TimelineBuffer:
    """A growing-then-trimmed store of (t, probs[7], valence, arousal), NaN where no result:
    the fused result, or with ``selected`` (a track id) that face's own distribution."""

    def __init__(self, seconds: float = style.TIMELINE_SECONDS, capacity: int = 4096):
        self.seconds = seconds
        self.t = np.empty(0)
        self.values = np.empty((0, len(EMOTIONS) + 2))  # probs..., valence, arousal
        self.points: list[TimelinePoint] = []  # what t / values are built from
        self.selected: int | None = None
        self._pending: list[TimelinePoint] = []
        self._capacity = capacity
        self._dirty = False

    def add(self, points: list[TimelinePoint]) -> None:
        self._pending.extend(points)

    def select(self, track_id: int | None) -> None:
        if track_id != self.selected:
            self.selected = track_id
            self._dirty = True

    def _row(self, p: TimelinePoint, out: np.ndarray) -> None:
        from emotiond.labels import valence_arousal

        n = len(EMOTIONS)
        if self.selected is None:
            if p.probs is not None:
                out[:n] = p.probs
            out[n], out[n + 1] = p.valence, p.arousal
        elif p.faces and self.selected in p.faces:
            probs = p.faces[self.selected]
            out[:n] = probs
            out[n], out[n + 1] = valence_arousal(probs)

    def flush(self) -> bool:
        """Move pending points into the arrays; keep one minute (plus a margin).  True if any."""
        if not self._pending and not self._dirty:
            return False
        pts, self._pending = self._pending, []
        if pts and self.points and pts[0].t < self.points[-1].t - 1.0:  # time went back: a new source or a seek
            self.points = []
        self.points.extend(pts)
        if self.points:
            last = self.points[-1].t
            k = 0
            while k < len(self.points) and self.points[k].t < last - self.seconds * 1.1:
                k += 1
            k = max(k, len(self.points) - self._capacity)  # very high result rates: keep the newest
            if k > 0:
                del self.points[:k]
        if self._dirty:  # the selection changed: rebuild every row
            self._dirty = False
            pts = self.points
            self.t, self.values = np.empty(0), np.empty((0, len(EMOTIONS) + 2))
        n = len(EMOTIONS)
        rows = np.full((len(pts), n + 2), np.nan)
        for i, p in enumerate(pts):
            self._row(p, rows[i])
        t = np.fromiter((p.t for p in pts), float, len(pts))
        if self.t.size and t.size and t[0] < self.t[-1] - 1.0:
            self.t, self.values = np.empty(0), np.empty((0, n + 2))
        self.t = np.concatenate([self.t, t])
        self.values = np.concatenate([self.values, rows])
        if self.t.size > len(self.points):  # trimmed above: keep the same newest rows
            drop = self.t.size - len(self.points)
            self.t, self.values = self.t[drop:], self.values[drop:]
        return True

    def clear(self) -> None:
        self.t = np.empty(0)
        self.values = np.empty((0, len(EMOTIONS) + 2))
        self.points = []
        self._pending = []

    @property
    def span(self) -> tuple[float, float] | None:
        return (float(self.t[0]), float(self.t[-1])) if self.t.size else None


class Timeline(QWidget):
    """Clicking the plot asks to play from that time (``seek_requested``)."""

    seek_requested = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.buffer = TimelineBuffer()
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._placeholder = QLabel("timeline")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet(f"color: {style.MUTED};")
        self._layout.addWidget(self._placeholder)
        self._plot = None
        self._curves: dict[str, object] = {}
        self._emotion_plot = self._va_plot = None
        self.redraws = 0

    def sizeHint(self) -> QSize:
        return QSize(1280, 220)

    @property
    def built(self) -> bool:
        return self._plot is not None

    def add(self, points: list[TimelinePoint]) -> None:
        self.buffer.add(points)

    def clear(self) -> None:
        self.buffer.clear()
        self.redraw(force=True)

    def build(self) -> None:
        if self._plot is not None:
            return
        import pyqtgraph as pg

        pg.setConfigOptions(antialias=True, background=style.BACKGROUND, foreground=style.MUTED)
        glw = pg.GraphicsLayoutWidget()
        glw.ci.layout.setContentsMargins(4, 2, 8, 2)
        glw.ci.layout.setHorizontalSpacing(4)
        axis_font = self.font()
        axis_font.setPointSizeF(style.BASE_POINT_SIZE - 1)

        legends = []
        for col, n in ((0, len(EMOTIONS)), (1, 2)):
            legend = pg.LegendItem(colCount=n, labelTextColor=style.TEXT, labelTextSize=f"{style.BASE_POINT_SIZE - 1}pt",
                                   horSpacing=14, verSpacing=-6)
            legend.setMaximumHeight(26)
            glw.addItem(legend, row=0, col=col)
            legends.append(legend)
        emo = glw.addPlot(row=1, col=0)
        va = glw.addPlot(row=1, col=1)
        for plot, title in ((emo, "fused p"), (va, "valence · arousal")):
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            for name in ("left", "bottom"):
                ax = plot.getAxis(name)
                ax.setStyle(tickFont=axis_font)
                ax.setTextPen(style.MUTED)
            plot.setLabel("left", title, color=style.TEXT, size=f"{style.BASE_POINT_SIZE - 1}pt")
            plot.setLabel("bottom", "seconds", color=style.MUTED, size=f"{style.BASE_POINT_SIZE - 1}pt")
        emo.setYRange(0, 1, padding=0.02)
        va.setYRange(-1, 1, padding=0.04)
        va.addLine(y=0, pen=pg.mkPen("#5f6368", width=1))
        glw.ci.layout.setColumnStretchFactor(0, 3)
        glw.ci.layout.setColumnStretchFactor(1, 2)

        for name in EMOTIONS:
            self._curves[name] = emo.plot(pen=pg.mkPen(style.EMOTION_COLORS[name], width=2.2), connect="finite")
        self._curves["valence"] = va.plot(pen=pg.mkPen(style.VALENCE_COLOR, width=2.2), connect="finite")
        self._curves["arousal"] = va.plot(pen=pg.mkPen(style.AROUSAL_COLOR, width=2.2, style=Qt.PenStyle.DashLine),
                                          connect="finite")
        for name in EMOTIONS:
            legends[0].addItem(self._curves[name], name)
        for name in ("valence", "arousal"):
            legends[1].addItem(self._curves[name], name)
        va.setMinimumWidth(150)  # never collapses beside the emotion plot
        glw.setMinimumWidth(380)
        self._emotion_plot, self._va_plot = emo, va
        glw.scene().sigMouseClicked.connect(self._on_click)
        glw.setToolTip("Click to play from that moment (files and recorded sessions)")
        self._layout.removeWidget(self._placeholder)
        self._placeholder.deleteLater()
        self._layout.addWidget(glw)
        self._plot = glw
        self.redraw(force=True)

    def select(self, track_id: int | None) -> None:
        """Show the fused result (None) or one face's own distribution."""
        self.buffer.select(track_id)
        if self._emotion_plot is not None:
            title = "fused p" if track_id is None else f"face #{track_id} p"
            self._emotion_plot.setLabel("left", title, color=style.TEXT, size=f"{style.BASE_POINT_SIZE - 1}pt")
        self.redraw(force=True)

    def time_at(self, scene_pos) -> float | None:
        for plot in (self._emotion_plot, self._va_plot):
            if plot is not None and plot.vb.sceneBoundingRect().contains(scene_pos):
                return float(plot.vb.mapSceneToView(scene_pos).x())
        return None

    def _on_click(self, event) -> None:
        t = self.time_at(event.scenePos())
        if t is not None and self.buffer.span is not None:
            self.seek_requested.emit(max(0.0, t))

    def redraw(self, force: bool = False) -> bool:
        """Take the pending points and redraw (only when built).  True if anything changed."""
        changed = self.buffer.flush()
        if self._plot is None or not (changed or force):
            return changed
        b = self.buffer
        n = len(EMOTIONS)
        t = b.t
        for i, name in enumerate(EMOTIONS):
            self._curves[name].setData(t, b.values[:, i])
        self._curves["valence"].setData(t, b.values[:, n])
        self._curves["arousal"].setData(t, b.values[:, n + 1])
        # a strip chart: the first minute fills from the left, then the last minute scrolls
        span = style.TIMELINE_SECONDS
        start = max(float(t[0]), float(t[-1]) - span) if t.size else 0.0
        for plot in (self._emotion_plot, self._va_plot):
            plot.setXRange(start, start + span, padding=0)
        self.redraws += 1
        return True
