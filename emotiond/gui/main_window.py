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

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSlider,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from emotiond.errors import EmotiondError
from emotiond.gui.timeline import Timeline
from emotiond.gui.widgets import Banner, LevelMeter, ProbabilityBars, VideoView, face_boxes, format_duration
from emotiond.gui.worker import AnalysisWorker, Recording, Update

POLL_MS = 33  # display rate
TIMELINE_MS = 100  # the timeline redraws at most 10 times a second
STATUS_MS = 500
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
    def __init__(self, config, *, pace: bool = True, sessions_dir: str | Path | None = None):
        super().__init__()
        self.config = config
        self.pace = pace
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
        self.recording: Recording | None = None
        self._finishing: list[Recording] = []  # stopped recordings still writing their tail
        self.saved_sessions: list[Path] = []
        self.last_update: Update | None = None

        self.setWindowTitle("emotiond")
        self.resize(1280, 720)
        self.setAcceptDrops(True)
        self._build_toolbar()
        self._build_body()
        self._build_statusbar()

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
        self.source_combo.setMinimumContentsLength(22)
        self.source_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source_combo.setToolTip("What to analyse: a camera, a microphone, a file or a recorded session")
        self.source_combo.activated.connect(self._on_source_activated)
        tb.addWidget(self.source_combo)

        tb.addWidget(QLabel(" Mic "))
        self.mic_combo = QComboBox()
        self.mic_combo.setMinimumContentsLength(12)
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
        pause = QAction(self)
        pause.setShortcut(QKeySequence(Qt.Key.Key_Space))
        pause.triggered.connect(self.pause_button.click)
        self.addAction(pause)

        self.record_button = QPushButton("● Record")
        self.record_button.setObjectName("record")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self._on_record)
        tb.addWidget(self.record_button)
        self.record_label = QLabel("")
        self.record_label.setMinimumWidth(120)
        tb.addWidget(self.record_label)
        tb.addSeparator()

        tb.addWidget(QLabel(" Smoothing "))
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 30)  # tenths of a second
        self.smoothing.setFixedWidth(120)
        self.smoothing.setValue(round(self.config.fusion.smoothing_tau * 10))
        self.smoothing.setToolTip("Time constant of the fused result's smoothing (0 = off); see docs/fusion.md")
        self.smoothing.valueChanged.connect(self._on_smoothing)
        tb.addWidget(self.smoothing)
        self.smoothing_label = QLabel()
        self.smoothing_label.setMinimumWidth(48)
        tb.addWidget(self.smoothing_label)
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
        self.video = VideoView()
        top.addWidget(self.video, 3)
        side = QVBoxLayout()
        side.setSpacing(8)
        self.bars = ProbabilityBars()
        side.addWidget(self.bars, 1)
        self.meter = LevelMeter()
        side.addWidget(self.meter, 0)
        top.addLayout(side, 2)
        top_widget = QWidget()
        top_widget.setLayout(top)

        self.timeline = Timeline()
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top_widget)
        split.addWidget(self.timeline)
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
        self.latency_label.setToolTip("From a frame entering the pipeline to its result")
        self.provider_label.setToolTip("The onnxruntime execution provider the emotion model runs on")
        sb.addWidget(self.state_label, 1)
        for w in (self.fps_label, self.latency_label, self.provider_label):
            sb.addPermanentWidget(w)

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
            path, _ = QFileDialog.getOpenFileName(self, "Open a video, audio or image file", "", MEDIA_FILTER)
            if path:
                self.open_choice(SourceChoice("path", path, Path(path).name))
            else:
                self._refresh_sources()
        elif data == "open-session":
            path = QFileDialog.getExistingDirectory(self, "Open a recorded session folder")
            if path:
                self.open_choice(SourceChoice("path", path, f"session {Path(path).name}"))
            else:
                self._refresh_sources()
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

    def open_choice(self, choice: SourceChoice) -> None:
        """Stop what runs (without waiting for it) and start analysing ``choice``."""
        self.stop_recording()
        old = self.worker
        if old is not None:
            old.stop()
        self.choice = choice
        self._seq = -1
        self._last_state = ""
        self.banner.hide()
        self.video.clear(f"Opening {choice.label}…")
        self.bars.set_result(None)
        self.bars.set_note("waiting for the first result")
        self.meter.set_available(True)
        self.meter.set_voice(True)
        self.timeline.clear()
        self.setWindowTitle(f"emotiond — {choice.label}")
        self.pause_button.setChecked(False)
        self.worker = AnalysisWorker(self._opener(choice), self.config, pace=self.pace).start()
        self.worker.set_smoothing(self.smoothing.value() / 10.0)
        self._rate_mark = (time.perf_counter(), 0)
        self._refresh_sources()
        self._update_record_controls()

    # -- controls --------------------------------------------------------------------------
    def _on_pause(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        if self.worker is not None:
            self.worker.set_paused(paused)

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
                elapsed = time.perf_counter() - rec.started
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
                self.video.set_frame(up.frame.image, face_boxes(up.result, threshold))
            if up.result is not None:
                self.bars.set_result(up.result)
                self.meter.set_speech(up.result.speech, threshold)
        self.timeline.add(up.points)
        if now - self._last_timeline >= TIMELINE_MS / 1000:
            self._last_timeline = now
            self.timeline.redraw()
        self.meter.push(up.levels, dt)
        for text in up.warnings:
            self.banner.show_message("warning", text)
        if up.state != self._last_state:
            self._on_state(up.state, w)
        if now - self._last_status >= STATUS_MS / 1000:
            self._last_status = now
            self._update_status(up, w, now)
        if self.recording is not None or self._finishing:
            self._poll_recording(w)

    def _on_state(self, state: str, w: AnalysisWorker) -> None:
        self._last_state = state
        if self.choice is not None and self.choice.kind == "auto" and w.source is not None:
            # "auto" turned out to be the camera or the demo clip: say which
            live = w.source.info.live
            self.choice = SourceChoice("camera", None, "camera") if live else SourceChoice("demo", None, "demo clip")
            self.setWindowTitle(f"emotiond — {self.choice.label}")
            self._refresh_sources()
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
        if state == "ended":
            stats = w.stats
            summary = f" — {stats.frames} frames analysed, {stats.frames_with_face} with a face" if stats else ""
            self.banner.show_message("info", f"End of {name}{summary}.", None,
                                     ("Play again", lambda: self.open_choice(self.choice)))
        self.pause_button.setEnabled(state in ("running", "paused", "loading"))
        self._update_record_controls()

    def _open_file_dialog(self) -> None:
        i = self.source_combo.findData("open-file")
        if i >= 0:
            self.source_combo.setCurrentIndex(i)
            self._on_source_activated(i)

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
        stats = getattr(w.source, "stats", None)
        if callable(stats) and up.state in ("running", "paused"):
            dropped = stats().get("frames_dropped", 0)
            self.fps_label.setToolTip(f"Results per second; {dropped} camera frames skipped to stay current")

    # -- closing ---------------------------------------------------------------------------
    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the worker and wait (briefly) for it to release the devices."""
        self._timer.stop()
        self.stop_recording()
        if self.worker is not None:
            self.worker.stop()
            self.worker.join(timeout)
        deadline = time.monotonic() + 10.0  # let a stopped recording write its last fragment
        for rec in self._finishing:
            rec.done.wait(max(0.0, deadline - time.monotonic()))

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
