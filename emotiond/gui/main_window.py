"""The main window: controls, the 30 Hz poll of the worker, and what to show when.

Nothing here waits on the engine.  The worker (:mod:`emotiond.gui.worker`) opens the
source, loads the models and runs the engine on its own threads; a QTimer reads its
newest result ~30 times a second and repaints.  Every problem the worker meets (no
camera, device lost, damaged file, missing model) arrives as an
:class:`~emotiond.errors.EmotiondError` and is shown in the banner with its fix.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSlider,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from emotiond.errors import EmotiondError, SinkError
from emotiond.gui import dialogs
from emotiond.gui.timeline import Timeline
from emotiond.gui.widgets import (
    Banner,
    Circumplex,
    ExpressionUnits,
    LevelMeter,
    ProbabilityBars,
    VideoView,
    face_boxes,
    face_count_text,
    format_duration,
)
from emotiond.gui.worker import AnalysisWorker, RunLog, Update

if TYPE_CHECKING:
    from emotiond.recording import RecordingSpan

POLL_MS = 33  # display rate
TIMELINE_MS = 100  # the timeline redraws at most 10 times a second
STATUS_MS = 500
SEEK_STEP = 5.0  # seconds, ← / →
MAX_RECENT = 8
LATENCY_TIP = ("From a frame leaving the reader to its result: face landmarks (mediapipe), the emotion model per "
               "face and fusion. Each picture is shown with its own result, so the video runs this much behind "
               "the source; more faces and larger frames take longer (~0.2 s for one face at 540p here).")
MEDIA_FILTER = "Media (*.mp4 *.mkv *.mov *.webm *.avi *.m4v *.wav *.flac *.mp3 *.ogg *.m4a *.jpg *.jpeg *.png *.bmp *.webp);;All files (*)"


@dataclass(frozen=True)
class SourceChoice:
    """What the user picked.  kind: auto | demo | path | camera | microphone."""

    kind: str
    target: str | int | None = None
    label: str = ""

    @classmethod
    def from_spec(cls, spec: str | None) -> SourceChoice:
        """A command-line source: a path, ``camera[:N]``, ``demo`` or ``auto``/None."""
        if spec in (None, "", "auto"):
            return cls("auto", None, "camera or demo clip")
        if spec == "demo":
            return cls("demo", None, "demo clip")
        if spec == "camera" or spec.startswith("camera:"):
            which = spec.partition(":")[2] or None
            return cls("camera", which, f"camera {which}" if which else "camera")
        return cls("path", spec, Path(spec).name or spec)

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "microphone")


def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class MainWindow(QMainWindow):
    def __init__(self, config, *, pace: bool = True, sessions_dir: str | Path | None = None,
                 state_dir: str | Path | None = None):
        super().__init__()
        self.config = config
        self.pace = pace
        from emotiond.config import DEFAULT_CONFIG_FILE

        self.state_dir = Path(state_dir) if state_dir else DEFAULT_CONFIG_FILE.parent  # recent.json
        self.run_log: RunLog | None = None
        self.selected_face: int | None = None
        self._origin = 0.0  # media time of the position slider's 0 (a session's t0)
        self._duration: float | None = None
        self._seekable = False
        self._position = 0.0  # media time shown
        self._paused_since: float | None = None
        self._rec_paused = 0.0  # seconds the current recording spent paused
        self.summary_dialog = None
        self._models = None  # emotiond.models.Models shared by every source (see _shared_models)
        self._models_lock = threading.Lock()
        self.worker: AnalysisWorker | None = None
        self.choice: SourceChoice | None = None
        self._seq = -1
        self._last_state = ""
        self._cameras: list = []
        self._microphones: list = []
        self._mic_error: EmotiondError | None = None
        self._devices_ready = threading.Event()
        self._devices_shown = False
        self._last_tick = time.perf_counter()
        self._rate_mark: tuple[float, int] = (time.perf_counter(), 0)
        self._fps = 0.0
        self._updating_combo = False
        self.sessions_dir = Path(sessions_dir) if sessions_dir else Path(config.record.folder).expanduser()
        self.recording: RecordingSpan | None = None
        self._finishing: list[RecordingSpan] = []  # stopped recordings still writing their tail
        self.saved_sessions: list[Path] = []
        self.last_update: Update | None = None

        self.setWindowTitle("emotiond")
        self.setAcceptDrops(True)
        self._build_toolbar()
        self._build_body()
        self._build_statusbar()
        self._build_menus()
        self.resize(*self.initial_size())

        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._last_timeline = 0.0
        self._last_status = 0.0
        self.video.first_frame_shown.connect(self._after_first_frame)
        # pyqtgraph is built after the first frame, or after 1.5 s at the latest (a child
        # timer: it dies with the window)
        self._build_timeline = QTimer(self)
        self._build_timeline.setSingleShot(True)
        self._build_timeline.timeout.connect(self.timeline.build)
        self._build_timeline.start(1500)
        # cameras and microphones are listed on a thread, once the window is up (PortAudio
        # takes a moment to load and need not compete with the first frame)
        self._devices_timer = QTimer(self)
        self._devices_timer.setSingleShot(True)
        self._devices_timer.timeout.connect(
            lambda: threading.Thread(target=self._list_devices, name="emotiond-gui-devices", daemon=True).start())
        self._devices_timer.start(1500)

    # -- construction --------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        tb = QToolBar("controls")
        tb.setMovable(False)
        tb.setFloatable(False)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)

        tb.addWidget(QLabel(" Source "))
        self.source_combo = QComboBox()
        self.source_combo.setMinimumContentsLength(18)
        self.source_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source_combo.setToolTip("What to analyse: a camera, a microphone, a file or a recorded session")
        self.source_combo.activated.connect(self._on_source_activated)
        tb.addWidget(self.source_combo)

        tb.addWidget(QLabel(" Mic "))
        self.mic_combo = QComboBox()
        self.mic_combo.setMinimumContentsLength(10)
        self.mic_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.mic_combo.addItem("system default", None)
        self.mic_combo.addItem("none (video only)", False)
        self.mic_combo.setToolTip("The microphone used with a camera (files use their own audio track)")
        self.mic_combo.activated.connect(self._on_mic_activated)
        tb.addWidget(self.mic_combo)
        tb.addSeparator()

        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Pause / resume the analysis (Space)")
        self.pause_button.toggled.connect(self._on_pause)
        tb.addWidget(self.pause_button)

        self.record_button = QPushButton("● Record")
        self.record_button.setObjectName("record")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._on_record)
        tb.addWidget(self.record_button)
        self.record_label = QLabel("")
        self.record_label.setMinimumWidth(0)  # empty until recording
        tb.addWidget(self.record_label)

        # smoothing lives under the bars (always visible, whatever the window's width)
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 30)  # tenths of a second
        self.smoothing.setValue(round(self.config.fusion.smoothing_tau * 10))
        self.smoothing.setToolTip("Time constant of the fused result's smoothing (0 = off); see docs/fusion.md")
        self.smoothing.valueChanged.connect(self._on_smoothing)
        self.smoothing_label = QLabel()
        self.smoothing_label.setMinimumWidth(48)
        self._on_smoothing(self.smoothing.value())
        self._refresh_sources()
        self._update_record_controls()

    def _build_body(self) -> None:
        body = QWidget()
        outer = QVBoxLayout(body)
        outer.setContentsMargins(8, 8, 8, 4)
        outer.setSpacing(6)
        self.banner = Banner()
        outer.addWidget(self.banner)

        top = QHBoxLayout()
        top.setSpacing(8)
        left = QVBoxLayout()
        left.setSpacing(4)
        self.video = VideoView()
        self.video.face_clicked.connect(self.select_face)
        left.addWidget(self.video, 1)
        pos = QHBoxLayout()
        self.position = QSlider(Qt.Orientation.Horizontal)
        self.position.setRange(0, 0)
        self.position.setEnabled(False)
        self.position.setToolTip("Position in the file or session: drag or click to play from there (← / → 5 s)")
        self.position.sliderReleased.connect(lambda: self.seek(self._origin + self.position.value() / 1000.0))
        self.position.actionTriggered.connect(self._on_position_action)
        self.time_label = QLabel("")
        self.time_label.setMinimumWidth(96)
        pos.addWidget(self.position, 1)
        pos.addWidget(self.time_label)
        pos.setContentsMargins(0, 0, 0, 0)
        self.position_row = QWidget()
        self.position_row.setLayout(pos)
        self.position_row.hide()  # files and sessions only
        left.addWidget(self.position_row)
        top.addLayout(left, 3)
        side = QVBoxLayout()
        side.setSpacing(6)
        self.bars = ProbabilityBars()
        side.addWidget(self.bars, 1)
        smooth = QHBoxLayout()
        smooth.addWidget(QLabel("Smoothing"))
        smooth.addWidget(self.smoothing, 1)
        smooth.addWidget(self.smoothing_label)
        side.addLayout(smooth)
        self.meter = LevelMeter()
        side.addWidget(self.meter, 0)
        top.addLayout(side, 2)
        top_widget = QWidget()
        top_widget.setLayout(top)

        self.timeline = Timeline()
        self.timeline.seek_requested.connect(self.seek)
        self.circumplex = Circumplex()
        self.units = ExpressionUnits()
        self.bottom = QSplitter(Qt.Orientation.Horizontal)
        self.bottom.addWidget(self.timeline)
        self.bottom.addWidget(self.circumplex)
        self.bottom.addWidget(self.units)
        self.bottom.setStretchFactor(0, 4)
        self.bottom.setStretchFactor(1, 1)
        self.bottom.setStretchFactor(2, 1)
        self.bottom.setChildrenCollapsible(False)
        self.bottom.setSizes([1000, 250, 290])  # scaled to the window's width
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top_widget)
        split.addWidget(self.bottom)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([470, 200])
        split.setChildrenCollapsible(False)
        outer.addWidget(split, 1)
        self.setCentralWidget(body)

    def _build_statusbar(self) -> None:
        sb = self.statusBar()
        self.state_label = QLabel("idle")
        self.fps_label = QLabel("— frames/s")
        self.latency_label = QLabel("latency —")
        self.provider_label = QLabel("onnxruntime: —")
        self.fps_label.setToolTip("Results per second of the analysis (the display refreshes at up to 30 Hz)")
        self.latency_label.setToolTip(LATENCY_TIP)
        self.provider_label.setToolTip("The onnxruntime execution provider the emotion model runs on")
        sb.addWidget(self.state_label, 1)
        for w in (self.fps_label, self.latency_label, self.provider_label):
            sb.addPermanentWidget(w)

    def _build_menus(self) -> None:
        mb = self.menuBar()

        def action(menu, text, slot, shortcut=None, tip=None, checkable=False):
            a = QAction(text, self)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if tip:
                a.setStatusTip(tip)
            a.setCheckable(checkable)
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        f = mb.addMenu("&File")
        self.act_open = action(f, "&Open file…", self.open_file_dialog, "Ctrl+O")
        self.act_open_session = action(f, "Open recorded &session…", self.open_session_browser, "Ctrl+Shift+O")
        self.act_camera = action(f, "Open &camera", lambda: self.open_choice(SourceChoice("camera", None, "camera")))
        self.recent_menu = f.addMenu("&Recent")
        self._fill_recent()
        f.addSeparator()
        self.act_export = action(f, "&Export log…", self.export_dialog, "Ctrl+E", "the results of this run as JSONL or CSV")
        self.act_snapshot = action(f, "Save snapshot…", self.snapshot_dialog, "Ctrl+Shift+S")
        self.act_summary = action(f, "Su&mmary…", self.show_summary)
        f.addSeparator()
        self.act_show_sessions = action(f, "Show recordings folder", lambda: self._show_folder(self.sessions_dir))
        self.act_show_log = action(f, "Show log folder", lambda: self._show_folder(
            Path(self.config.gui.log).expanduser().parent if self.config.gui.log else self.sessions_dir))
        self.act_settings = action(f, "Se&ttings…", self.settings_dialog, "Ctrl+,")
        f.addSeparator()
        self.act_quit = action(f, "&Quit", self.close, "Ctrl+Q")

        pm = mb.addMenu("&Playback")
        self.act_pause = action(pm, "Pause / resume", lambda: self.pause_button.click() if self.pause_button.isEnabled() else None,
                                "Space")
        self.act_record = action(pm, "Record / stop", lambda: self.record_button.click() if self.record_button.isEnabled() else None,
                                 "Ctrl+R")
        self.act_back = action(pm, f"Back {SEEK_STEP:.0f} s", lambda: self.step(-SEEK_STEP), "Left")
        self.act_forward = action(pm, f"Forward {SEEK_STEP:.0f} s", lambda: self.step(SEEK_STEP), "Right")
        self.act_play_again = action(pm, "Play from the start", lambda: self.seek(self._origin) if self._seekable else None,
                                     "Home")
        self.act_largest = action(pm, "Show the largest face (fused)", lambda: self.select_face(-1), "Ctrl+L")

        v = mb.addMenu("&View")
        self.act_fullscreen = action(v, "&Full screen", self.toggle_full_screen, "F11", checkable=True)
        self.act_leave_fullscreen = QAction(self)  # Esc leaves full screen
        self.act_leave_fullscreen.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.act_leave_fullscreen.triggered.connect(lambda: self.isFullScreen() and self.toggle_full_screen())
        self.addAction(self.act_leave_fullscreen)
        v.addSeparator()
        self.panel_actions = {}
        for name, widget in (("Timeline", self.timeline), ("Valence / arousal", self.circumplex),
                             ("Expression units", self.units), ("Level meter", self.meter)):
            a = action(v, name, lambda on, w=widget: w.setVisible(on), checkable=True)
            a.setChecked(True)
            self.panel_actions[name] = a

        h = mb.addMenu("&Help")
        self.act_shortcuts = action(h, "Keyboard &shortcuts", self.show_shortcuts, "F1")
        self.act_messages = action(h, "Log &messages", self.show_messages, tip="the last lines emotiond logged")
        self.act_about = action(h, "&About emotiond", self.show_about)
        # Space must reach the pause action even when a button has the focus
        for wdg in (self.pause_button, self.record_button, self.source_combo, self.mic_combo, self.smoothing, self.position):
            wdg.setFocusPolicy(Qt.FocusPolicy.TabFocus)

    def initial_size(self) -> tuple[int, int]:
        """1280x720, or 90 % of the screen when that is smaller (e.g. 150 % scaling on a
        1600x1000 screen: 1067x667 logical pixels)."""
        w, h = 1280, 720
        screen = self.screen()
        if screen is not None:
            avail = screen.availableGeometry()
            w, h = min(w, int(avail.width() * 0.9)), min(h, int(avail.height() * 0.9))
        return max(w, self.minimumSizeHint().width()), max(h, self.minimumSizeHint().height())

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()
        self.act_fullscreen.setChecked(self.isFullScreen())

    # -- menus: dialogs, export -----------------------------------------------------------
    def _show_folder(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if not dialogs.open_folder(path):
            self.banner.show_message("info", f"The folder is {path}", "no file manager could be opened from here")

    def show_about(self):
        self.about = dialogs.text_dialog(self, "About emotiond", dialogs.about_html(self.config))
        self.about.show()
        return self.about

    def show_messages(self):
        """The last lines emotiond logged (emotiond.logs keeps them in memory)."""
        import html

        from emotiond import logs

        lines = logs.recent_lines(300)
        body = ("<pre>" + html.escape("\n".join(lines)) + "</pre>") if lines else (
            "<p>No messages. Warnings and errors appear here; start with <code>emotiond -v gui</code> "
            "(or EMOTIOND_LOG_LEVEL=info) for more.</p>")
        self.messages = dialogs.text_dialog(self, "Log messages", f"<h3>Log messages</h3>{body}", (820, 480))
        self.messages.show()
        return self.messages

    def show_shortcuts(self):
        self.shortcuts = dialogs.text_dialog(self, "Keyboard shortcuts", dialogs.shortcuts_html(), (460, 460))
        self.shortcuts.show()
        return self.shortcuts

    def settings_dialog(self, path: Path | None = None):
        d = dialogs.SettingsDialog(self, self.config, path=path)
        d.finished.connect(lambda code: self.apply_settings(d.new_config) if d.new_config is not None else None)
        d.show()
        self.settings = d
        return d

    def apply_settings(self, config) -> None:
        """Smoothing at once; the rest by reopening what plays (files from where they were)."""
        old = self.config
        self.config = config
        self.sessions_dir = Path(config.record.folder).expanduser()
        self.smoothing.setValue(round(config.fusion.smoothing_tau * 10))
        engine_keys = ("face", "voice", "provider", "models_dir", "threads")
        changed = any(getattr(old, k) != getattr(config, k) for k in engine_keys) or (
            (old.fusion.face_weight, old.fusion.voice_weight) != (config.fusion.face_weight, config.fusion.voice_weight))
        log_changed = old.gui.log != config.gui.log
        if self.choice is not None and (changed or log_changed) and self.recording is None:
            self.open_choice(self.choice, start=self._position if self._seekable else None, keep_log=not log_changed)
        self.banner.show_message("info", "Settings saved" + (" and applied." if changed or log_changed else "."),
                                 "they are in " + str(dialogs.user_config_path()))

    def _fill_recent(self) -> None:
        m = self.recent_menu
        m.clear()
        for path in self.recent():
            a = m.addAction(path)
            a.triggered.connect(lambda _=False, p=path: self.open_choice(self._choice_for_path(p)))
        m.setEnabled(bool(self.recent()))

    def recent(self) -> list[str]:
        import json

        try:
            data = json.loads((self.state_dir / "recent.json").read_text(encoding="utf-8"))
            return [str(p) for p in data if isinstance(p, str)][:MAX_RECENT]
        except (OSError, ValueError):
            return []

    def _remember(self, path: str) -> None:
        import json

        items = [path] + [p for p in self.recent() if p != path]
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            (self.state_dir / "recent.json").write_text(json.dumps(items[:MAX_RECENT], indent=1), encoding="utf-8")
        except OSError:
            return  # a read-only home: no recent list, nothing else changes
        self._fill_recent()

    @staticmethod
    def _choice_for_path(path: str) -> SourceChoice:
        p = Path(path)
        return SourceChoice("path", path, f"session {p.name}" if p.is_dir() else p.name)

    def open_file_dialog(self) -> None:
        start = str(Path(self.choice.target).parent) if self.choice and self.choice.kind == "path" else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a video, audio or image file", start, MEDIA_FILTER)
        if path:
            self.open_choice(SourceChoice("path", path, Path(path).name))
        else:
            self._refresh_sources()

    def open_session_browser(self):
        """The recent sessions of the record folder (only real session folders open)."""
        d = dialogs.SessionBrowser(self, self.sessions_dir)
        d.accepted.connect(lambda: d.chosen is not None and self.open_choice(
            SourceChoice("path", str(d.chosen), f"session {d.chosen.name}")))
        d.rejected.connect(self._refresh_sources)
        d.show()
        self.session_browser = d
        return d

    def check_output(self, path: str | Path, what: str = "export") -> None:
        """Refuse to write an export, snapshot or summary over what is being analysed (the source
        file, or into the source folder: a session being replayed, an image folder) or into a
        session being recorded, as ``emotiond run --log`` refuses a log that is its source."""
        from emotiond.sinks import check_not_source

        sources = []
        src = getattr(self.worker, "source", None)
        uri = getattr(getattr(src, "info", None), "uri", None)
        if uri:
            sources.append(uri)
        if self.choice is not None and self.choice.kind == "path":
            sources.append(str(self.choice.target))
        for source in sources:
            check_not_source(path, source, what)
        target = Path(path).resolve()
        for rec in (self.recording, *self._finishing):
            folder = getattr(rec, "path", None)
            if folder is not None and Path(folder).resolve() in target.parents:
                raise SinkError(f"the {what} {path} is inside the session being recorded in {folder}",
                                f"write the {what} outside that folder")

    def export_log(self, path: str | Path) -> int:
        if self.run_log is None or not len(self.run_log):
            raise EmotiondError("there is nothing to export yet", "open a source and let it play")
        self.check_output(path, "export")
        return self.run_log.export(path)

    def export_dialog(self) -> None:
        name = Path(str(self.choice.target)).stem if self.choice and self.choice.kind == "path" else "emotiond"
        path, _ = QFileDialog.getSaveFileName(self, "Export the log of this run", str(self.sessions_dir / f"{name}.jsonl"),
                                              "JSON lines (*.jsonl);;CSV (*.csv)")
        if path:
            try:
                n = self.export_log(path)
            except EmotiondError as exc:
                self.banner.show_message("error", f"not exported: {exc.message}", exc.hint)
                return
            self.banner.show_message("info", f"Exported {n} results to {path}.", None)

    def snapshot(self, path: str | Path, what: str = "window") -> bool:
        """A PNG of the window, or of the annotated frame (``what="frame"``).  A path that is the
        source (or inside it, or inside a recording) raises a SinkError."""
        self.check_output(path, "snapshot")
        pix = (self.video if what == "frame" else self).grab()
        return pix.save(str(path), "PNG")

    def snapshot_dialog(self) -> None:
        path, flt = QFileDialog.getSaveFileName(self, "Save a snapshot", str(self.sessions_dir / "emotiond.png"),
                                                "The window (*.png);;The annotated frame (*.png)")
        if path:
            try:
                ok = self.snapshot(path, "frame" if flt.startswith("The annotated") else "window")
            except EmotiondError as exc:
                self.banner.show_message("error", f"snapshot not saved: {exc.message}", exc.hint)
                return
            self.banner.show_message("info" if ok else "error", f"Snapshot {'saved to' if ok else 'not saved:'} {path}",
                                     None if ok else "check the folder is writable")

    def show_summary(self):
        if self.run_log is None or not len(self.run_log):
            self.banner.show_message("info", "No summary yet: nothing has been analysed.", None)
            return None
        name = self.choice.label if self.choice else ""
        d = dialogs.SummaryDialog(self, name, self.run_log.summary(), self.sessions_dir,
                                  check=lambda p: self.check_output(p, "summary"))
        d.show()
        self.summary_dialog = d
        return d

    # -- the models, loaded once ---------------------------------------------------------
    def _shared_models(self):
        """The window's :class:`~emotiond.models.Models`, loaded by the first source's loader
        thread and kept for every later one (a seek or another file starts in ~0.1 s instead
        of reloading); rebuilt when Settings change what they load."""
        from emotiond.errors import ModelError
        from emotiond.models import Models

        config = self.config
        with self._models_lock:
            m = self._models
            if m is not None and not m.closed and m.config is config:
                return m
            if m is not None:
                m.close(timeout=0.5)  # landmarkers still leased are closed by their engines
            self._models = None
            try:
                m = Models(config)
            except ModelError:
                return None  # the run loads its own and says what is missing (face-only when only the voice is)
            self._models = m
            return m

    # -- seeking and selection --------------------------------------------------------------
    @property
    def seekable(self) -> bool:
        return self._seekable

    def seek(self, t: float) -> None:
        """Play the file or session from media time ``t`` (the same clock as the log)."""
        if not self._seekable or self.choice is None:
            return
        if self.recording is not None:  # a recording is one continuous stretch of what played
            self.banner.show_message("info", "Seeking is off while recording.", "stop the recording (Ctrl+R) first")
            self._set_position(self._position)  # the slider back where the media is
            return
        end = self._origin + (self._duration or 0.0)
        t = min(max(self._origin, float(t)), max(self._origin, end - 0.05))
        paused = self.pause_button.isChecked()
        self.open_choice(self.choice, start=t, keep_log=True)
        if paused:
            self.pause_button.setChecked(True)

    def step(self, dt: float) -> None:
        self.seek(self._position + dt)

    def _on_position_action(self, action: int) -> None:
        # page steps and clicks on the groove (not drags: those seek on release)
        if action != QSlider.SliderAction.SliderMove:
            QTimer.singleShot(0, lambda: self.seek(self._origin + self.position.value() / 1000.0))

    def select_face(self, track_id: int) -> None:
        """Which face the bars, timeline, circumplex and expression units show (-1: the
        largest face with the voice, fused)."""
        self.selected_face = None if track_id is None or track_id < 0 else int(track_id)
        if self.worker is not None:  # the engine's primary person too (while nobody visible talks)
            self.worker.set_focus(self.selected_face)
        self.video.selected = self.selected_face
        self.timeline.select(self.selected_face)
        self.circumplex.clear()
        up = self.last_update
        if up is not None:
            self._show_result(up)
        self.video.update()

    def _show_result(self, up: Update) -> None:
        result = up.result
        self.bars.set_result(result, self.selected_face, self.smoothing.value() / 10.0)
        if result is None:
            return
        face = None
        if self.bars.selected is not None:
            face = next((f for f in result.faces if f.track_id == self.bars.selected), None)
            self.circumplex.whose = f"face #{self.bars.selected}"
        else:
            face = result.primary_face
            self.circumplex.whose = "fused"
        self.units.set_face(face, face.track_id if face is not None else None)
        va = self.bars._va if self.bars.values() is not None else None
        if va is not None:
            self.circumplex.push(result.t, *va)

    # -- sources -------------------------------------------------------------------------
    def _list_devices(self) -> None:
        """On a thread: listing microphones loads PortAudio, which can take a moment."""
        try:
            from emotiond.capture.devices import list_cameras, list_microphones
        except ImportError:
            self._devices_ready.set()
            return
        try:
            self._cameras = list_cameras()
        except Exception:  # listing must never take the window down; the picker just shows none
            self._cameras = []
        try:
            self._microphones = list_microphones()
        except EmotiondError as exc:
            self._mic_error = exc
        except Exception:
            self._microphones = []
        self._devices_ready.set()

    def _refresh_sources(self) -> None:
        """Rebuild the picker: the current source, cameras, microphones, files, sessions."""
        self._updating_combo = True
        try:
            c = self.source_combo
            c.clear()
            current = self.choice
            if current is not None:
                c.addItem(f"▶ {current.label}", current)
            if current is None or current.kind != "demo":
                c.addItem("Demo clip", SourceChoice("demo", None, "demo clip"))
            live_ok = _module_present("emotiond.sources.live")
            for cam in self._cameras:
                c.addItem(f"Camera {cam.index}: {cam.name}", SourceChoice("camera", cam.index, f"camera {cam.index}: {cam.name}"))
            for mic in self._microphones:
                c.addItem(f"Microphone {mic.index}: {mic.name}", SourceChoice("microphone", mic.index, f"microphone {mic.index}: {mic.name}"))
            model = c.model()
            if not live_ok:
                self._disabled_item("Camera / microphone", "live capture (emotiond.sources.live) is not part of this build")
            elif self._devices_ready.is_set():
                if not self._cameras:
                    self._disabled_item("No camera found", "connect a camera; `emotiond devices` lists what is found")
                if self._mic_error is not None:
                    self._disabled_item("Microphones unavailable", f"{self._mic_error.message} — {self._mic_error.hint}")
                elif not self._microphones:
                    self._disabled_item("No microphone found", "connect a microphone; `emotiond devices` lists what is found")
            c.addItem("Open file…", "open-file")
            c.addItem("Open recorded session…", "open-session")
            if not _module_present("emotiond.sources.session"):
                i = c.count() - 1
                model.item(i).setEnabled(False)
                c.setItemData(i, "recorded sessions (emotiond.sources.session) are not part of this build yet",
                              Qt.ItemDataRole.ToolTipRole)
            c.setCurrentIndex(0)
            # microphones for camera sources
            m = self.mic_combo
            keep = m.currentData()
            while m.count() > 2:
                m.removeItem(2)
            for mic in self._microphones:
                m.addItem(f"{mic.index}: {mic.name}", mic.index)
            i = m.findData(keep)
            m.setCurrentIndex(max(0, i))
            m.setEnabled(live_ok)
        finally:
            self._updating_combo = False

    def _disabled_item(self, text: str, why: str) -> None:
        c = self.source_combo
        c.addItem(text, None)
        i = c.count() - 1
        c.model().item(i).setEnabled(False)
        c.setItemData(i, why, Qt.ItemDataRole.ToolTipRole)

    def _on_source_activated(self, index: int) -> None:
        if self._updating_combo:
            return
        data = self.source_combo.itemData(index)
        if data == "open-file":
            self.open_file_dialog()
        elif data == "open-session":
            self.open_session_browser()
        elif isinstance(data, SourceChoice) and data != self.choice:
            self.open_choice(data)

    def _on_mic_activated(self, index: int) -> None:
        if not self._updating_combo and self.choice is not None and self.choice.kind == "camera":
            self.open_choice(self.choice)

    def _opener(self, choice: SourceChoice):
        """What the worker thread calls to open ``choice`` (reads no widget: it runs off the GUI thread)."""
        config = self.config
        microphone = self.mic_combo.currentData()

        def open_choice():
            from emotiond.app import resolve_source_spec
            from emotiond.sources import open_source

            if choice.kind in ("camera", "microphone"):
                from emotiond.sources.live import LiveSource

                if choice.kind == "microphone":
                    return LiveSource(config, camera=False, microphone=choice.target)
                return LiveSource(config, camera=choice.target, microphone=microphone)
            spec = resolve_source_spec(None if choice.kind == "auto" else "demo" if choice.kind == "demo" else str(choice.target), config)
            return open_source(spec, config)

        return open_choice

    def open_spec(self, spec: str | None) -> None:
        self.open_choice(SourceChoice.from_spec(spec))

    def open_choice(self, choice: SourceChoice, *, start: float | None = None, keep_log: bool = False) -> None:
        """Stop what runs (without waiting for it) and start analysing ``choice`` (from
        media time ``start``: a seek, which keeps this run's log and selection)."""
        self.stop_recording()
        old = self.worker
        if old is not None:
            old.stop()
        seeking = start is not None and keep_log and choice == self.choice
        self.choice = choice
        self.last_update = None  # nothing of the previous run is "current" any more
        self._seq = -1
        self._last_state = ""
        self.banner.hide()
        if not seeking:
            self.video.clear(f"Opening {choice.label}…")
            self.bars.set_result(None)
            self.bars.set_note("waiting for the first result")
            self.select_face(-1)
            self._seekable, self._duration, self._origin = False, None, 0.0
            self.position.setEnabled(False)
            self.position.setRange(0, 0)
            self.time_label.setText("")
            self.position_row.hide()
        self.meter.reset()
        self.timeline.clear()
        self.circumplex.clear()
        self.video.corner_text = ""
        # readouts of the previous source must not carry over
        self.fps_label.setText("— frames/s")
        self.latency_label.setText("latency —")
        self.provider_label.setText("onnxruntime: —")
        self._fps = 0.0
        self.setWindowTitle(f"emotiond — {choice.label}")
        self.pause_button.setChecked(False)
        if not (keep_log and self.run_log is not None):
            if self.run_log is not None:
                self.run_log.close()
            self.run_log = RunLog(self.config.gui.log)
        self.worker = AnalysisWorker(self._opener(choice), self.config, pace=self.pace, start=start, log=self.run_log,
                                     models=self._shared_models).start()
        self.worker.set_smoothing(self.smoothing.value() / 10.0)
        self._rate_mark = (time.perf_counter(), 0)
        if choice.kind == "path" and not seeking:
            self._remember(str(choice.target))
        self._refresh_sources()
        self._update_record_controls()

    # -- controls --------------------------------------------------------------------------
    def _on_pause(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        now = time.perf_counter()
        if paused:
            self._paused_since = now
        elif self._paused_since is not None:
            if self.recording is not None:
                self._rec_paused += now - max(self._paused_since, self.recording.started)
            self._paused_since = None
        if self.worker is not None:
            self.worker.set_paused(paused)
        if paused:  # the frame's per-face details stay readable while paused
            self._show_pause_details()

    def _show_pause_details(self) -> None:
        up = self.last_update
        if up is None or up.result is None or not up.result.faces:
            return
        from emotiond.labels import EMOTIONS

        lines = []
        for f in up.result.faces:
            if f.emotion is None:
                lines.append(f"#{f.track_id}: not analysed")
                continue
            top = sorted(zip(EMOTIONS, f.emotion), key=lambda kv: -kv[1])[:3]
            lines.append(f"#{f.track_id}: " + ", ".join(f"{n} {p:.0%}" for n, p in top) + f" (quality {f.quality:.2f})")
        self.pause_details = f"Paused at {format_duration(up.result.t - self._origin)} — " + "; ".join(lines)
        self.state_label.setText(self.pause_details)
        self.state_label.setToolTip("\n".join(lines))

    def _on_smoothing(self, value: int) -> None:
        tau = value / 10.0
        self.smoothing_label.setText("off" if tau == 0 else f"{tau:.1f} s")
        if self.worker is not None:
            self.worker.set_smoothing(tau)

    def _recording_unavailable_reason(self) -> str | None:
        if not _module_present("emotiond.recording.recorder"):
            return "Recording is not part of this build (emotiond.recording is missing)"
        if self.worker is None or not self.worker.can_record():
            return "Recording starts once a source is being analysed"
        return None

    def _update_record_controls(self) -> None:
        if self.recording is not None:
            return
        why = self._recording_unavailable_reason()
        self.record_button.setEnabled(why is None)
        self.record_button.setToolTip(why or (
            f"Record what is analysed (media, predictions, metadata) into a new session folder in "
            f"{self.sessions_dir}; it replays with Source → Open recorded session or `emotiond replay`"))

    def _new_session_folder(self) -> Path:
        from emotiond.session_layout import new_session_folder

        return new_session_folder(self.sessions_dir)

    def _on_record(self, on: bool) -> None:
        if on == (self.recording is not None):
            return
        if not on:
            self.stop_recording()
            return
        w = self.worker
        try:
            if w is None or not w.can_record():
                raise EmotiondError("there is nothing to record yet", "pick a source and wait until it runs")
            self.recording = w.start_recording(self._new_session_folder())
        except EmotiondError as exc:
            self.record_button.setChecked(False)
            self.banner.show_message("error", f"cannot record: {exc.message}", exc.hint)
            return
        self._rec_paused = 0.0
        if self._paused_since is not None:
            self._paused_since = self.recording.started
        self.record_button.setText("■ Stop")
        self.record_label.setText("● 00:00 · dropped 0")
        self.record_label.setToolTip(f"Recording into {self.recording.path}")

    def stop_recording(self) -> None:
        """Stop recording (the files are finished on a thread; the banner says where the
        session is once it is complete)."""
        rec, self.recording = self.recording, None
        if self.record_button.isChecked():
            self.record_button.blockSignals(True)
            self.record_button.setChecked(False)
            self.record_button.blockSignals(False)
        self.record_button.setText("● Record")
        self.record_label.setText("")
        self.record_label.setToolTip("")
        if rec is not None:
            if self.worker is not None:
                self.worker.stop_recording()
            self._finishing.append(rec)
        self._update_record_controls()

    def _poll_recording(self, w: AnalysisWorker) -> None:
        rec = self.recording
        if rec is not None:
            if w.recording is not rec or rec.failure is not None:
                self.stop_recording()  # stopped by itself: the source ended, or writing failed
            else:
                now = time.perf_counter()
                paused = self._rec_paused + (now - max(self._paused_since, rec.started) if self._paused_since else 0.0)
                elapsed = now - rec.started - paused  # what was recorded, not the time spent paused
                self.record_label.setText(f"● {format_duration(elapsed)} · dropped {rec.recorder.frames_dropped}")
        for rec in [r for r in self._finishing if r.done.is_set()]:
            self._finishing.remove(rec)
            if rec.failure is not None:
                self.banner.show_message("error", f"the recording stopped: {rec.failure.message}", rec.failure.hint)
                continue
            c = rec.recorder.counters()
            self.saved_sessions.append(rec.path)
            saved = f"Session saved in {rec.path} ({c['frames_written']} frames, {c['frames_dropped']} dropped)."
            if self.banner.isVisible() and self.banner.severity == "error":  # e.g. the camera was lost: keep saying so
                self.banner.add_note(saved + " It replays with Source → Open recorded session.")
            else:
                self.banner.show_message("info", saved, None, ("Replay it", lambda p=rec.path: self.open_choice(
                    SourceChoice("path", str(p), f"session {p.name}"))))

    # -- drag and drop ---------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            path = urls[0].toLocalFile()
            self.open_choice(SourceChoice("path", path, Path(path).name))

    # -- the poll --------------------------------------------------------------------------
    def _after_first_frame(self) -> None:
        # build the timeline once the first frame is on screen (pyqtgraph's import is slow)
        if not self.timeline.built:
            self._build_timeline.start(0)

    def _tick(self) -> None:
        now = time.perf_counter()
        dt, self._last_tick = now - self._last_tick, now
        if not self._devices_shown and self._devices_ready.is_set():
            self._devices_shown = True
            self._refresh_sources()
        w = self.worker
        if w is None:
            return
        up = w.poll()
        self.last_update = up
        if up.seq != self._seq:
            self._seq = up.seq
            threshold = self.config.voice.vad_threshold
            if up.frame is not None:
                self.video.corner_text = face_count_text(up.result, self.config.face.max_faces)
                self.video.set_frame(up.frame.image, face_boxes(up.result, threshold))
                self._set_position(up.frame.t)
            if up.result is not None:
                self._show_result(up)
                self.meter.set_speech(up.result.speech, threshold)
                if up.frame is None:
                    self._set_position(up.result.t)
        self.timeline.add(up.points)
        if now - self._last_timeline >= TIMELINE_MS / 1000:
            self._last_timeline = now
            self.timeline.redraw()
        self.meter.push(up.levels, dt)
        for text in up.warnings:
            self.banner.show_message("warning", text)
        if self.run_log is not None and self.run_log.error is not None and not getattr(self.run_log, "_shown", False):
            self.run_log._shown = True
            err = self.run_log.error
            self.banner.show_message("error", f"the log stopped: {err.message}", err.hint)
        if up.state != self._last_state:
            self._on_state(up.state, w)
        if now - self._last_status >= STATUS_MS / 1000:
            self._last_status = now
            self._update_status(up, w, now)
        if self.recording is not None or self._finishing:
            self._poll_recording(w)

    def _set_position(self, t: float) -> None:
        self._position = t
        if not self._seekable:
            self.time_label.setText(format_duration(t - self._origin) if self._duration is None and t >= 0 else self.time_label.text())
            return
        if not self.position.isSliderDown():
            self.position.blockSignals(True)
            self.position.setValue(int(round((t - self._origin) * 1000)))
            self.position.blockSignals(False)
        self.time_label.setText(f"{format_duration(t - self._origin)} / {format_duration(self._duration or 0)}")

    def _source_opened(self, w: AnalysisWorker) -> None:
        """The worker has its source: set up the position slider for files and sessions."""
        info = w.source.info
        seekable = (not info.live) and hasattr(w.source, "seek") and bool(info.duration)
        self._origin = float(info.extra.get("t0", 0.0)) if info.kind == "session" else 0.0
        self._duration = float(info.duration) if info.duration else None
        self._seekable = seekable
        self.position.setEnabled(seekable)
        self.position_row.setVisible(seekable)
        if seekable:
            self.position.setRange(0, int(self._duration * 1000))
            self.position.setPageStep(int(SEEK_STEP * 1000))
            self.position.setSingleStep(1000)
        for a in (self.act_back, self.act_forward, self.act_play_again):
            a.setEnabled(seekable)

    def _on_state(self, state: str, w: AnalysisWorker) -> None:
        self._last_state = state
        if w.source is not None and state in ("loading", "running") and not getattr(w, "_gui_opened", False):
            w._gui_opened = True
            self._source_opened(w)
        if self.choice is not None and self.choice.kind == "auto" and w.source is not None:
            # "auto" turned out to be the camera or the demo clip: say which
            live = w.source.info.live
            self.choice = SourceChoice("camera", None, "camera") if live else SourceChoice("demo", None, "demo clip")
            self.setWindowTitle(f"emotiond — {self.choice.label}")
            self._refresh_sources()
            if not live:  # first run without a camera: say why a clip plays
                self.banner.show_message(
                    "info", "No camera was found, so the bundled demo clip is playing.",
                    "connect a camera and pick it under Source, or open your own file (Ctrl+O)",
                    ("Open file…", self.open_file_dialog))
                self.first_run_banner = True
        name = self.choice.label if self.choice else ""
        text = {
            "opening": f"opening {name}…",
            "loading": "loading the models…",
            "running": f"analysing {name}",
            "paused": f"paused — {name}",
            "ended": f"finished {name}",
            "stopped": "stopped",
            "error": "error",
        }.get(state, state)
        self.state_label.setText(text)
        self.state_label.setToolTip("")
        if state == "paused":
            self._show_pause_details()
        if state == "loading":
            self.video.set_placeholder(f"Loading the models for {name}…")
        if state in ("running", "paused", "loading") and w.source is not None:
            if not w.source.info.has_audio:
                self.meter.set_available(False, "no audio in this source")
            if not w.source.info.has_video:
                self.video.set_placeholder(f"{name}\n(audio only: the voice is analysed, there is no picture)")
        if state == "running":
            if not self.config.voice.enabled:
                self.meter.set_voice(False, "switched off in the configuration (voice.enabled)")
            elif w.voice_disabled is not None:
                self.meter.set_voice(False, w.voice_disabled.message)
        if state == "running" and w.provider:
            self.provider_label.setText(f"onnxruntime: {w.provider}")
        if state == "error" and w.error is not None:
            err = w.error
            again = ("Try again", lambda: self.open_choice(self.choice))
            self.banner.show_message("error", err.message, err.hint,
                                     again if self.choice.live else ("Open file…", self._open_file_dialog))
            if not self.video.has_frame():
                self.video.set_placeholder(f"Could not show {name}")
            self.bars.set_note("no result")
        if state in ("ended", "stopped", "error"):
            self.timeline.redraw()  # the last points, without waiting for the next redraw
        if state in ("ended", "stopped", "error"):
            self.fps_label.setText("— frames/s")  # not frozen at the last rate
        if state == "ended":
            self._on_end(name, w)
        self.pause_button.setEnabled(state in ("running", "paused", "loading"))
        self._update_record_controls()

    def _on_end(self, name: str, w: AnalysisWorker) -> None:
        """End of a file: a short summary; a "session saved" message stays where it is."""
        s = self.run_log.summary() if self.run_log is not None else None
        text = f"End of {name}."
        if s is not None and s["results"]:
            share = s["share"].get(s["dominant"], 0.0) if s["dominant"] else 0.0
            mostly = f" Mostly {s['dominant']} ({share:.0%} of the time)" if s["dominant"] else " No emotion was read"
            va = f", mean valence {s['valence']:+.2f}, arousal {s['arousal']:+.2f}" if s["valence"] is not None else ""
            n = len(s["faces_seen"])
            text += f"{mostly}{va}; {n} face{'s' if n != 1 else ''} seen."
        self.end_text = text
        saved = self.banner.isVisible() and self.banner.title.text().startswith("Session saved")
        if saved or self._finishing:  # B2: never replace where the session went (or is going)
            self.banner.add_note(text)
            return
        again = ("Play again", lambda: self.seek(self._origin) if self._seekable else self.open_choice(self.choice))
        self.banner.show_message("info", text, None, again, ("Summary…", self.show_summary))

    def _open_file_dialog(self) -> None:
        self.open_file_dialog()

    def _update_status(self, up: Update, w: AnalysisWorker, now: float) -> None:
        t0, n0 = self._rate_mark
        if now - t0 >= 1.0:
            self._fps = (up.results - n0) / (now - t0)
            self._rate_mark = (now, up.results)
        if up.state in ("running", "paused"):
            self.fps_label.setText(f"{self._fps:.1f} frames/s")
        self.latency_label.setText("latency —" if up.latency is None else f"latency {up.latency * 1000:.0f} ms")
        if w.provider:
            self.provider_label.setText(f"onnxruntime: {w.provider}")
        src = w.source
        if src is None or up.state not in ("running", "paused"):
            return
        info = src.info
        if info.live:
            stats = getattr(src, "stats", None)
            dropped = stats().get("frames_dropped", 0) if callable(stats) else 0
            tip = f"Results per second; {dropped} camera frames skipped to stay current"
        else:
            rate = f" ({info.fps:.1f} frames/s)" if info.fps else ""
            tip = (f"Results per second of the analysis; a {'session' if info.kind == 'session' else 'file'} plays at "
                   f"its own frame rate{rate}, slower only when the analysis cannot keep up")
        self.fps_label.setToolTip(tip)

    # -- closing ---------------------------------------------------------------------------
    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the worker and wait (briefly) for it to release the devices."""
        if getattr(self, "_shut", False):
            return
        self._shut = True
        self._timer.stop()
        self.stop_recording()
        if self.worker is not None:
            self.worker.stop()
            self.worker.join(timeout)
        deadline = time.monotonic() + 10.0  # let a stopped recording write its last fragment
        for rec in self._finishing:
            rec.done.wait(max(0.0, deadline - time.monotonic()))
        if self.run_log is not None:
            self.run_log.close()
        with self._models_lock:
            models, self._models = self._models, None
        if models is not None and (self.worker is None or not self.worker.alive):
            models.close(timeout=1.0)

    def confirm_close_recording(self) -> bool:
        """Closing mid-recording: ask (the recording is saved either way if closing goes on)."""
        answer = QMessageBox.question(
            self, "Recording in progress",
            f"A recording is in progress in {self.recording.path}.\n\nStop it, save it and quit?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        return answer == QMessageBox.StandardButton.Save

    def closeEvent(self, event) -> None:
        if self.recording is not None and not getattr(self, "_shut", False) and not self.confirm_close_recording():
            event.ignore()
            return
        # the window goes away at once; stopping the threads and finishing a recording
        # happen behind it (a hidden window cannot look frozen)
        self.hide()
        self.shutdown()
        super().closeEvent(event)
