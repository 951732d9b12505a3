"""The window's dialogs: About, keyboard shortcuts, Settings, the session browser and the
end-of-run summary.  Each keeps its content in plain attributes so tests can read it."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
)

from emotiond.errors import ConfigError, EmotiondError
from emotiond.gui.widgets import format_duration

SHORTCUTS = [
    ("Ctrl+O", "Open a file"),
    ("Ctrl+Shift+O", "Open a recorded session (the session browser)"),
    ("Space", "Pause / resume"),
    ("← / →", "Back / forward 5 s (files and sessions)"),
    ("Ctrl+R", "Start / stop recording"),
    ("Ctrl+E", "Export the log of this run (JSONL or CSV)"),
    ("Ctrl+Shift+S", "Save a snapshot (PNG)"),
    ("Ctrl+,", "Settings"),
    ("F11", "Full screen"),
    ("Esc", "Leave full screen"),
    ("F1", "This list"),
    ("Ctrl+Q", "Quit"),
    ("Tab", "Move the keyboard focus (shown by a blue outline)"),
]


def open_folder(path: Path) -> bool:
    """Show ``path`` in the desktop's file manager ("Show in folder")."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


# -- About / shortcuts ---------------------------------------------------------------------
def about_html(config) -> str:
    """Versions, and each model's licence and card, from the model registry."""
    import PySide6

    from emotiond import __version__
    from emotiond import registry

    rows = []
    try:
        cards = registry.cards(config.models_dir)
    except EmotiondError as exc:
        cards = []
        rows.append(f"<tr><td colspan=3>models: {exc.message}</td></tr>")
    for c in cards:
        licence = c.data.get("licence") or c.data.get("provenance", {}).get("licence") or "not stated"
        rows.append(f"<tr><td><b>{c.name}</b><br><small>{c.path.name}, {c.size / 1e6:.1f} MB</small></td>"
                    f"<td>{c.task}</td><td>{licence}<br><small>card: {c.card_path}</small></td></tr>")
    versions = {"emotiond": __version__, "Python": sys.version.split()[0], "PySide6 (Qt)": PySide6.__version__}
    for mod in ("onnxruntime", "mediapipe", "av", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = "not installed"
    vers = " · ".join(f"{k} {v}" for k, v in versions.items())
    return (f"<h2>emotiond {__version__}</h2><p>Real-time audio-visual emotion recognition. Everything runs on "
            f"this computer; nothing is sent anywhere.</p><p><small>{vers}</small></p>"
            f"<h3>Models</h3><table cellspacing=6><tr><th align=left>model</th><th align=left>task</th>"
            f"<th align=left>licence · card</th></tr>{''.join(rows)}</table>")


def text_dialog(parent, title: str, html: str, size=(760, 520)) -> QDialog:
    d = QDialog(parent)
    d.setWindowTitle(title)
    lay = QVBoxLayout(d)
    view = QTextBrowser()
    view.setOpenExternalLinks(False)
    view.setHtml(html)
    lay.addWidget(view)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(d.reject)
    lay.addWidget(buttons)
    d.resize(*size)
    d.text = view.toPlainText()
    return d


def shortcuts_html() -> str:
    rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
    return f"<h3>Keyboard shortcuts</h3><table cellspacing=6>{rows}</table>"


# -- Settings -----------------------------------------------------------------------------
def user_config_path() -> Path:
    """The user's config file: $EMOTIOND_CONFIG, else ~/.config/emotiond/config.toml."""
    from emotiond.config import DEFAULT_CONFIG_FILE

    env = os.environ.get("EMOTIOND_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_FILE




def write_settings(path: Path, values: dict) -> None:
    """Set ``values`` ({"face.max_faces": 3, ...}) in the TOML file ``path``, keeping its
    other settings and comments (tomlkit); the file is replaced atomically."""
    import tomlkit

    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.is_file() else tomlkit.document()
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as exc:
        raise ConfigError(f"{path} cannot be read as TOML ({exc})", "fix or remove the file, then save again") from None
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        node = doc
        if section:
            if section not in doc:
                doc[section] = tomlkit.table()
            node = doc[section]
        if value is None:
            node.pop(name, None)
        else:
            node[name] = str(value) if isinstance(value, Path) else value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", "check the folder is writable") from None


class SettingsDialog(QDialog):
    """The settings a user changes most, written to their config.toml."""

    def __init__(self, parent, config, path: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.config = config
        self.path = path or user_config_path()
        form = QFormLayout()
        self.max_faces = QSpinBox()
        self.max_faces.setRange(1, 32)
        self.max_faces.setValue(config.face.max_faces)
        self.max_faces.setToolTip("Most faces analysed per frame (more faces cost more time per frame)")
        self.provider = QComboBox()
        self.provider.addItems(["auto", "cpu", "cuda"])
        self.provider.setCurrentText(config.provider)
        self.voice = QCheckBox("analyse the voice")
        self.voice.setChecked(config.voice.enabled)
        self.face_weight = self._spin(config.fusion.face_weight, 0, 10, 0.1)
        self.voice_weight = self._spin(config.fusion.voice_weight, 0, 10, 0.1)
        self.smoothing = self._spin(config.fusion.smoothing_tau, 0, 10, 0.1, " s")
        self.vad = self._spin(config.voice.vad_threshold, 0, 1, 0.05)
        self.folder = QLineEdit(str(Path(config.record.folder).expanduser()))
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        self.log = QLineEdit(str(config.gui.log) if config.gui.log else "")
        self.log.setPlaceholderText("none (a .jsonl or .csv file: every result is appended, never truncated)")
        form.addRow("Max faces", self.max_faces)
        form.addRow("Provider (onnxruntime)", self.provider)
        form.addRow("Voice", self.voice)
        form.addRow("Face weight (fusion)", self.face_weight)
        form.addRow("Voice weight (fusion)", self.voice_weight)
        form.addRow("Smoothing", self.smoothing)
        form.addRow("Speech threshold (VAD)", self.vad)
        form.addRow("Record folder", folder_row)
        form.addRow("Keep a log in", self.log)
        note = QLabel(f"Saved to {self.path}. Smoothing applies at once; the rest from the next source opened "
                      "(the current one is reopened when you save).")
        note.setWordWrap(True)
        note.setStyleSheet("color: #9aa0a6;")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #ef5350;")
        self.error.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.new_config = None

    @staticmethod
    def _spin(value: float, lo: float, hi: float, step: float, suffix: str = "") -> QDoubleSpinBox:
        s = QDoubleSpinBox()
        s.setRange(lo, hi)
        s.setSingleStep(step)
        s.setDecimals(2)
        s.setSuffix(suffix)
        s.setValue(float(value))
        return s

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Where recordings go", self.folder.text())
        if path:
            self.folder.setText(path)

    def values(self) -> dict:
        return {
            "face.max_faces": self.max_faces.value(),
            "provider": self.provider.currentText(),
            "voice.enabled": self.voice.isChecked(),
            "fusion.face_weight": round(self.face_weight.value(), 3),
            "fusion.voice_weight": round(self.voice_weight.value(), 3),
            "fusion.smoothing_tau": round(self.smoothing.value(), 3),
            "voice.vad_threshold": round(self.vad.value(), 3),
            "record.folder": self.folder.text().strip() or None,
            "gui.log": self.log.text().strip() or None,
        }

    def save(self) -> None:
        """Validate with the config model, then write the file (only what is valid)."""
        values = self.values()
        try:
            data = self.config.model_dump()
            for key, value in values.items():
                section, _, name = key.rpartition(".")
                node = data[section] if section else data
                if value is not None or key == "gui.log":
                    node[name] = value
            new = type(self.config).model_validate(data)
        except Exception as exc:  # pydantic's ValidationError: say which setting
            self.error.setText(f"Not saved: {exc}".splitlines()[0])
            self.error.show()
            return
        try:
            write_settings(self.path, values)
        except ConfigError as exc:
            self.error.setText(f"Not saved: {exc.message} — {exc.hint}")
            self.error.show()
            return
        self.new_config = new
        self.accept()


# -- session browser -------------------------------------------------------------------
def session_summary(path: Path) -> dict | None:
    """One row of the browser: date, duration, faces, dominant emotion; None when ``path``
    is not a session folder (no readable metadata.json)."""
    from collections import Counter

    try:
        md = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(md, dict) or "status" not in md:
        return None
    started = md.get("started_unix")
    stopped = md.get("stopped_unix") or md.get("updated_unix")
    media = md.get("media") or {}
    mv = media.get("video") or {}
    duration = None
    if isinstance(mv.get("last_t"), (int, float)) and isinstance(media.get("t0"), (int, float)):
        duration = mv["last_t"] - media["t0"]
    elif started and stopped:
        duration = stopped - started
    labels: Counter = Counter()
    faces: set = set()
    try:
        with open(path / (md.get("predictions") or "predictions.jsonl"), encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("label"):
                    labels[rec["label"]] += 1
                faces.update(f.get("id") for f in rec.get("faces") or [] if isinstance(f, dict) and f.get("id", -1) >= 0)
    except OSError:
        pass
    return {
        "path": path,
        "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else "?",
        "started": started or 0.0,
        "duration": duration,
        "faces": len(faces),
        "dominant": labels.most_common(1)[0][0] if labels else "—",
        "status": md.get("status"),
    }


def find_sessions(folder: Path, limit: int = 50) -> list[dict]:
    """The recent sessions in ``folder``, newest first."""
    try:
        dirs = [p for p in Path(folder).expanduser().iterdir() if p.is_dir() and (p / "metadata.json").is_file()]
    except OSError:
        return []
    dirs.sort(key=lambda p: (p / "metadata.json").stat().st_mtime, reverse=True)
    rows = [r for r in (session_summary(p) for p in dirs[:limit]) if r is not None]
    rows.sort(key=lambda r: r["started"], reverse=True)
    return rows


class SessionBrowser(QDialog):
    """Recent sessions of the record folder; Open, Show in folder, or another folder."""

    def __init__(self, parent, folder: Path):
        super().__init__(parent)
        self.setWindowTitle("Recorded sessions")
        self.folder = Path(folder).expanduser()
        self.chosen: Path | None = None
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["date", "duration", "faces", "dominant emotion", "folder"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda _: self._open())
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        self.open_button = QPushButton("Open")
        self.open_button.setDefault(True)
        self.open_button.clicked.connect(self._open)
        self.show_button = QPushButton("Show in folder")
        self.show_button.clicked.connect(self._show)
        other = QPushButton("Other folder…")
        other.clicked.connect(self._other)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        row = QHBoxLayout()
        for b in (self.open_button, self.show_button, other):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Sessions in {self.folder}"))
        lay.addWidget(self.table, 1)
        lay.addWidget(self.empty)
        lay.addLayout(row)
        self.resize(760, 420)
        self.reload()

    def reload(self) -> None:
        self.rows = find_sessions(self.folder)
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            dur = format_duration(r["duration"]) if r["duration"] is not None else "?"
            status = "" if r["status"] == "complete" else f" ({r['status']})"
            for j, text in enumerate((r["date"], dur, str(r["faces"]), r["dominant"], r["path"].name + status)):
                item = QTableWidgetItem(text)
                item.setToolTip(str(r["path"]))
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        if self.rows:
            self.table.selectRow(0)
        self.empty.setText("" if self.rows else f"No recorded session in {self.folder} yet: press ● Record "
                           "while a source plays.")
        self.empty.setVisible(not self.rows)
        self.open_button.setEnabled(bool(self.rows))
        self.show_button.setEnabled(bool(self.rows))

    def selected(self) -> Path | None:
        i = self.table.currentRow()
        return self.rows[i]["path"] if 0 <= i < len(self.rows) else None

    def _open(self) -> None:
        path = self.selected()
        if path is not None:
            self.chosen = path
            self.accept()

    def _show(self) -> None:
        path = self.selected()
        if path is not None:
            open_folder(path)

    def _other(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a recorded session folder", str(self.folder))
        if not path:
            return
        if session_summary(Path(path)) is None:
            self.empty.setText(f"{path} is not a recorded session (it has no metadata.json); pick a folder made "
                               "by ● Record or `emotiond run --record`.")
            self.empty.show()
            return
        self.chosen = Path(path)
        self.accept()


# -- end-of-run summary ----------------------------------------------------------------
def summary_text(name: str, s: dict) -> str:
    lines = [f"Summary of {name}"]
    if s["span"] is not None:
        lines.append(f"watched: {format_duration(sum(s['seconds'].values()))} of media, {s['results']} results")
    total = sum(s["seconds"].values()) or 1.0
    for label, secs in sorted(s["seconds"].items(), key=lambda kv: -kv[1]):
        shown = "no face and no speech" if label == "none" else label
        lines.append(f"  {shown:<22} {secs:6.1f} s  {secs / total:5.0%}")
    if s["valence"] is not None:
        lines.append(f"mean valence {s['valence']:+.2f}, mean arousal {s['arousal']:+.2f}")
    faces = s["faces_seen"]
    lines.append(f"faces seen: {len(faces)}" + (f" (ids {', '.join(f'#{i}' for i in faces)})" if faces else ""))
    lines.append("(from the fused, smoothed result of each frame: the largest face and the voice)")
    return "\n".join(lines)


class SummaryDialog(QDialog):
    def __init__(self, parent, name: str, summary: dict, default_dir: Path, check=None):
        super().__init__(parent)
        self.check = check  # path -> None, or raises an EmotiondError (a path that is the source)
        self.setWindowTitle(f"Summary — {name}")
        self.summary = summary
        self.text = summary_text(name, summary)
        self.default_dir = default_dir
        self.saved: Path | None = None
        view = QTextBrowser()
        view.setPlainText(self.text)
        view.setStyleSheet("font-family: monospace;")
        save = QPushButton("Save…")
        save.clicked.connect(self._save)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(save)
        row.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(view, 1)
        lay.addLayout(row)
        self.resize(520, 380)

    def save_to(self, path: Path) -> Path:
        """Write the summary: JSON for .json, else the text."""
        path = Path(path)
        if self.check is not None:
            self.check(path)
        if path.suffix.lower() == ".json":
            doc = dict(self.summary, faces_seen=list(self.summary["faces_seen"]))
            path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        else:
            path.write_text(self.text + "\n", encoding="utf-8")
        self.saved = path
        return path

    def _save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the summary", str(self.default_dir / "summary.txt"),
                                              "Text (*.txt);;JSON (*.json)")
        if path:
            try:
                self.save_to(Path(path))
            except OSError as exc:
                QLabel(f"cannot write {path}: {exc.strerror}", self).show()
            except EmotiondError as exc:
                QLabel(f"not saved: {exc.message}; {exc.hint}", self).show()

