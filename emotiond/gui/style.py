"""Colours and fonts shared by every widget: one colour per emotion everywhere
(overlay box, probability bar, timeline curve), one per modality."""

from __future__ import annotations

from emotiond.labels import EMOTION_COLORS  # noqa: F401  (re-exported for the widgets)

MODALITY_COLORS: dict[str, str] = {"face": "#26c6da", "voice": "#f06292"}
VALENCE_COLOR = "#80cbc4"
AROUSAL_COLOR = "#ffab91"
UNKNOWN_COLOR = "#9e9e9e"

BACKGROUND = "#1e1f22"
PANEL = "#2b2d31"
TEXT = "#e8eaed"
MUTED = "#9aa0a6"
SPEECH_ON = "#66bb6a"
FOCUS = "#8ab4f8"  # the keyboard-focus ring
SELECTED = "#ffffff"  # the selected face's box

BASE_POINT_SIZE = 11  # the application font; widgets scale from it
TIMELINE_SECONDS = 60.0


def color_for(label: str | None) -> str:
    return EMOTION_COLORS.get(label or "", UNKNOWN_COLOR)


STYLESHEET = f"""
QMainWindow, QWidget {{ background: {BACKGROUND}; color: {TEXT}; }}
QToolBar {{ background: {PANEL}; border: none; spacing: 8px; padding: 4px; }}
QToolBar QLabel {{ background: transparent; }}
QStatusBar {{ background: {PANEL}; color: {MUTED}; }}
QStatusBar QLabel {{ color: {TEXT}; padding: 0 8px; }}
QComboBox, QPushButton, QToolButton {{
    background: #3c4043; color: {TEXT}; border: 1px solid #5f6368; border-radius: 4px; padding: 4px 10px;
}}
QPushButton:disabled, QToolButton:disabled, QComboBox:disabled {{ color: #6b6f75; border-color: #45484c; }}
QPushButton:checked {{ background: #5f6368; }}
QPushButton#record:checked {{ background: #b71c1c; border-color: #ef5350; }}
QComboBox QAbstractItemView {{ background: {PANEL}; color: {TEXT}; selection-background-color: #5f6368; }}
QSlider::groove:horizontal {{ height: 4px; background: #5f6368; border-radius: 2px; }}
QSlider::handle:horizontal {{ width: 14px; margin: -6px 0; border-radius: 7px; background: {TEXT}; }}
QToolTip {{ background: {PANEL}; color: {TEXT}; border: 1px solid #5f6368; }}
QPushButton:focus, QToolButton:focus, QComboBox:focus, QListWidget:focus, QTableWidget:focus,
QSpinBox:focus, QDoubleSpinBox:focus, QLineEdit:focus, QCheckBox:focus {{ border: 2px solid {FOCUS}; }}
QSlider:focus {{ border: 1px solid {FOCUS}; border-radius: 3px; }}
QMenuBar {{ background: {PANEL}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: #5f6368; }}
QMenu {{ background: {PANEL}; border: 1px solid #5f6368; }}
QTableWidget {{ gridline-color: #45484c; }}
QHeaderView::section {{ background: {PANEL}; color: {TEXT}; border: none; padding: 4px; }}
"""
