"""The GUI on the offscreen platform, driving the real engine on the product owner's clips."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets", reason="the GUI needs the `gui` extra: pip install -e '.[gui]'")

from emotiond.config import load_config  # noqa: E402
from emotiond.labels import EMOTIONS  # noqa: E402
from emotiond.types import FaceObservation, FrameResult, FusedResult  # noqa: E402

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def qapp():
    """pytest-qt's QApplication, made the way the product makes it (cv2's Qt variables
    removed, the PySide6 6.12 refcount guard, the style)."""
    from emotiond.gui.app import create_application

    return create_application()


@pytest.fixture
def make_window(qtbot, qapp):
    from emotiond.gui.main_window import MainWindow

    def make(pace: bool = True, sessions_dir=None, voice: bool = False, **overrides):
        # the face path only, unless the test is about the voice
        cfg = load_config(overrides={"voice.enabled": voice, **overrides})
        w = MainWindow(cfg, pace=pace, sessions_dir=sessions_dir)
        qtbot.addWidget(w)  # closed (worker stopped) at teardown
        w.show()
        return w

    return make


def state(w) -> str | None:
    return w.last_update.state if w.last_update is not None else None


def color_near(qimage, x: float, y: float, hex_: str, tol: int = 40) -> bool:
    """Whether a pixel within 2 px of (x, y) has the colour ``hex_``."""
    want = np.array([int(hex_[i : i + 2], 16) for i in (1, 3, 5)])
    for dx in range(-2, 3):
        for dy in range(-2, 3):
            c = qimage.pixelColor(int(round(x)) + dx, int(round(y)) + dy)
            if np.abs(np.array([c.red(), c.green(), c.blue()]) - want).max() <= tol:
                return True
    return False


def test_clip_shows_overlay_bars_and_a_moving_timeline(make_window, qtbot, single_face_mp4):
    from emotiond.gui import style

    w = make_window()
    w.open_spec(str(single_face_mp4))
    qtbot.waitUntil(lambda: w.video.has_frame(), timeout=15000)  # a frame, possibly before the models
    qtbot.waitUntil(lambda: bool(w.video.faces()), timeout=30000)

    # the overlay: a box with track id, top emotion and confidence, in that emotion's colour
    face = w.video.faces()[0]
    assert face.track_id == 1 and face.label in EMOTIONS and 0.0 < face.confidence <= 1.0
    assert face.caption.startswith("#1  ") and face.label in face.caption and face.caption.endswith("%")
    x0, y0, x1, y1 = face.bbox
    assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360
    rect = w.video.box_rect(face)
    shot = w.video.grab().toImage()
    assert color_near(shot, rect.left(), rect.center().y(), style.color_for(face.label)), "box not drawn"
    assert color_near(shot, rect.right(), rect.center().y(), style.color_for(face.label)), "box not drawn"

    # the bars: a distribution over the 7 classes, with the face's share
    values = w.bars.values()
    assert set(values) == set(EMOTIONS)
    assert sum(values.values()) == pytest.approx(1.0, abs=1e-3)
    assert w.bars.shares() == {"face": pytest.approx(1.0)}

    # the timeline advances while the clip plays (paced at media time)
    qtbot.waitUntil(lambda: w.timeline.built and w.timeline.buffer.span is not None, timeout=5000)
    first_end, first_redraws = w.timeline.buffer.span[1], w.timeline.redraws
    qtbot.waitUntil(lambda: w.timeline.buffer.span[1] > first_end + 0.5, timeout=5000)
    qtbot.waitUntil(lambda: state(w) == "ended", timeout=20000)
    start, end = w.timeline.buffer.span
    assert start == pytest.approx(0.0, abs=0.1) and end == pytest.approx(2.37, abs=0.1)
    assert w.timeline.redraws > first_redraws
    assert np.isfinite(w.timeline.buffer.values).any()

    # end of clip: said in the window, with a way to play it again; the status bar is filled in
    assert w.banner.isVisible() and "End of single_face.mp4" in w.banner.text()
    assert w.banner.action.text() == "Play again"
    assert "ExecutionProvider" in w.provider_label.text()
    assert w.latency_label.text().startswith("latency ") and w.latency_label.text().endswith(" ms")
    assert w.meter.level is not None, "the clip's audio track should move the level meter"


def test_pause_smoothing_and_switching_source(make_window, qtbot, pexels_mp4, no_face_mp4):
    w = make_window()
    w.open_spec(str(pexels_mp4))
    qtbot.waitUntil(lambda: state(w) == "running" and w.last_update.results > 5, timeout=30000)

    w.smoothing.setValue(20)
    assert w.smoothing_label.text() == "2.0 s"
    assert w.worker.engine.smoothing_tau == pytest.approx(2.0)

    w.pause_button.click()
    qtbot.waitUntil(lambda: state(w) == "paused", timeout=2000)
    # what was already in the pipeline's queues drains (slowly on a loaded machine), then nothing more
    prev = -1
    for _ in range(30):
        if w.last_update.results == prev:
            break
        prev = w.last_update.results
        qtbot.wait(400)
    held = w.last_update.results
    qtbot.wait(700)
    assert w.last_update.results == held, "a paused file must not advance"
    w.pause_button.click()
    qtbot.waitUntil(lambda: w.last_update.results > held + 3, timeout=5000)
    assert state(w) == "running"

    # picking another source stops this one without blocking the window
    old = w.worker
    t0 = time.perf_counter()
    w.open_spec(str(no_face_mp4))
    assert time.perf_counter() - t0 < 0.5
    qtbot.waitUntil(lambda: not old.alive, timeout=5000)
    qtbot.waitUntil(lambda: w.last_update.results > 3, timeout=30000)
    assert w.video.faces() == [] and w.bars.values() is None


def test_unreadable_file_is_shown_in_the_window(make_window, qtbot, tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"this is not a video\n" * 100)
    w = make_window()
    w.open_spec(str(bad))
    qtbot.waitUntil(lambda: state(w) == "error", timeout=10000)
    assert w.banner.isVisible() and w.banner.severity == "error"
    text = w.banner.text()
    assert "holiday.mp4" in text and "not a media file" in text
    assert "What to do:" in text  # the hint, not only the problem
    assert "Traceback" not in text
    assert w.banner.action.text() == "Open file…"
    assert not w.video.has_frame()


def test_missing_model_is_shown_after_the_first_frame(make_window, qtbot, tmp_path, single_face_mp4):
    w = make_window(**{"models_dir": str(tmp_path)})  # an empty models folder
    w.open_spec(str(single_face_mp4))
    qtbot.waitUntil(lambda: state(w) == "error", timeout=15000)
    assert w.video.has_frame(), "the first frame is shown while the models load"
    assert "model" in w.banner.text() and "What to do:" in w.banner.text()


def test_speaker_is_marked_while_speech_is_heard(make_window, qtbot, single_face_mp4, tmp_path):
    """The real voice path: a face clip whose audio track is real speech (from 1.0 s on)."""
    from tests.mediautil import transcode

    clip = tmp_path / "face_speech.mkv"
    transcode(single_face_mp4, clip, "libx264", "aac", audio_from=REPO / "tests" / "data" / "speech_en_espeak.flac")
    w = make_window(voice=True)
    seen: list = []
    show = w.video.set_frame
    w.video.set_frame = lambda image, boxes: (seen.append((list(boxes), w.meter.speaking, w.bars.shares())), show(image, boxes))
    w.open_spec(str(clip))

    def marked():  # the speaker's box marked, the speech light on, the voice's share in the bars
        return (any(boxes and boxes[0].speaking and light for boxes, light, _ in seen)
                and any(shares.get("voice", 0) > 0 for _, _, shares in seen))

    qtbot.waitUntil(marked, timeout=30000)
    quiet = [boxes[0] for boxes, _, _ in seen if boxes and w.last_update and boxes[0].speaking is False]
    assert quiet, "before the speech starts (1 s) the face is not marked"
    assert w.meter.voice and w.meter.level is not None


def test_live_camera_records_and_a_lost_camera_is_shown(make_window, qtbot, single_face_jpg, tmp_path):
    """A simulated camera (the real capture code above it): live analysis, a recording from
    the capture tap, then the camera is unplugged mid-recording."""
    import json

    import cv2

    from emotiond.gui.main_window import SourceChoice
    from emotiond.sources.live import LiveSource
    from tests.simdevices import SimCamera

    image = cv2.imread(str(single_face_jpg))[:560, :570]
    cam = SimCamera(image.shape[1], image.shape[0], 15.0, images=[image])
    w = make_window(sessions_dir=tmp_path, **{"capture.stall_timeout": 0.5})
    w._opener = lambda choice: (lambda: LiveSource(w.config, camera=cam, microphone=False))
    w.open_choice(SourceChoice("camera", 0, "sim camera"))
    qtbot.waitUntil(lambda: bool(w.video.faces()) and w.record_button.isEnabled(), timeout=30000)
    assert w.video.faces()[0].label in EMOTIONS

    w.record_button.click()
    qtbot.waitUntil(lambda: w.record_label.text().startswith("● 00:01"), timeout=5000)
    cam.fail_after_frames = cam._k  # unplugged
    qtbot.waitUntil(lambda: state(w) == "error", timeout=10000)
    assert w.banner.severity == "error" and "sim camera" in w.banner.text() and "What to do:" in w.banner.text()
    assert w.banner.action.text() == "Try again"
    qtbot.waitUntil(lambda: bool(w.saved_sessions), timeout=15000)
    session = w.saved_sessions[0]
    assert "Session saved in" in w.banner.text() and w.banner.severity == "error", "the error stays visible"
    meta = json.loads((session / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["counters"]["frames_written"] >= 10
    assert meta["source"]["live"] is True
    assert (session / "predictions.jsonl").read_text().count("\n") >= 5
    assert not w.record_button.isChecked() and w.recording is None


def _face(bbox, probs, track_id):
    return FaceObservation(landmarks=np.zeros((478, 3), np.float32), blendshapes=np.zeros(52, np.float32),
                           bbox=bbox, quality=1.0, track_id=track_id, emotion=np.asarray(probs, float))


def _result(speech):
    happy = np.array([0.02, 0.01, 0.02, 0.85, 0.03, 0.02, 0.05])
    sad = np.array([0.05, 0.01, 0.04, 0.02, 0.8, 0.03, 0.05])
    faces = [_face((40, 40, 120, 140), sad, 2), _face((300, 60, 520, 330), happy, 1)]  # the second is the largest
    fused = FusedResult(probs=happy, label="happy", confidence=0.85, shares={"face": 0.6, "voice": 0.4},
                        valence=0.7, arousal=0.4)
    voice = np.array([0.1, 0.1, 0.1, 0.6, 0.1, 0.0, 0.0])
    return FrameResult(t=1.0, frame=24, faces=faces, voice=voice, speech=speech, fused=fused, primary=1)


def test_speaking_marker_goes_to_the_primary_face(qtbot, qapp):
    from emotiond.gui import style
    from emotiond.gui.widgets import ProbabilityBars, VideoView, face_boxes

    assert [b.speaking for b in face_boxes(_result(0.9), 0.5)] == [False, True]
    assert [b.speaking for b in face_boxes(_result(0.2), 0.5)] == [False, False]
    assert [b.speaking for b in face_boxes(_result(None), 0.5)] == [False, False]

    view = VideoView()
    qtbot.addWidget(view)
    view.resize(640, 360)
    frame = np.full((360, 640, 3), 40, np.uint8)
    view.set_frame(frame, face_boxes(_result(0.2), 0.5))
    quiet = view.grab().toImage()
    view.set_frame(frame, face_boxes(_result(0.9), 0.5))
    speaking = view.grab().toImage()
    big = view.box_rect(view.faces()[1])
    # the halo just outside the speaker's box, and the "speaking" pill inside its top-right corner
    def greenish(img):
        c = img.pixelColor(int(big.left()) - 5, int(big.center().y()))
        return c.green() - max(c.red(), c.blue())

    assert greenish(speaking) > 25 and abs(greenish(quiet)) < 5
    assert color_near(speaking, big.right() - 12, big.top() + 6 + 8, style.SPEECH_ON, tol=30)

    bars = ProbabilityBars()
    qtbot.addWidget(bars)
    bars.set_result(_result(0.9))
    assert bars.shares() == {"face": 0.6, "voice": 0.4}
    assert sum(bars.values().values()) == pytest.approx(1.0)


def test_record_button_makes_a_session_that_replays(make_window, qtbot, pexels_mp4, tmp_path):
    import json

    w = make_window(sessions_dir=tmp_path)
    assert not w.record_button.isEnabled() and "once a source is being analysed" in w.record_button.toolTip()
    w.open_spec(str(pexels_mp4))
    qtbot.waitUntil(lambda: w.record_button.isEnabled() and w.last_update.results > 3, timeout=30000)
    w.record_button.click()
    assert w.recording is not None and w.recording.path.parent == tmp_path
    qtbot.waitUntil(lambda: w.record_label.text().startswith("● 00:01"), timeout=5000)
    assert "dropped 0" in w.record_label.text()
    w.record_button.click()
    qtbot.waitUntil(lambda: bool(w.saved_sessions), timeout=15000)
    session = w.saved_sessions[0]
    assert "Session saved in" in w.banner.text() and str(session) in w.banner.text()
    meta = json.loads((session / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["counters"]["frames_dropped"] == 0
    written = meta["counters"]["frames_written"]
    assert written >= 20  # ~1 s at 24 frames/s
    predictions = [json.loads(line) for line in (session / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == written and all(p["faces"] for p in predictions)

    # "Replay it" opens the session in the window and it plays like a clip
    w.banner.action.click()
    assert w.choice.target == str(session)
    qtbot.waitUntil(lambda: state(w) == "ended", timeout=30000)
    assert abs(w.last_update.results - written) <= 1
    assert w.video.faces() and w.video.faces()[0].label in EMOTIONS


def test_many_qt_calls_do_not_exhaust_none_or_true(qapp):
    """PySide6 6.12.0 on Python < 3.12 drops a reference to None / True on every void call
    and signal emit; without the guard in create_application this aborts the process."""
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtGui import QPainterPath

    class Emitter(QObject):
        fired = Signal()

    path, emitter = QPainterPath(), Emitter()
    for _ in range(20000):
        path.moveTo(0.0, 0.0)
        emitter.fired.emit()
    assert sys.getrefcount(None) > 1000 and sys.getrefcount(True) > 1000


def test_qt_variables_from_cv2_are_removed():
    code = (
        "import os, cv2\n"
        "from emotiond.gui import fix_qt_environment\n"
        "fix_qt_environment()\n"
        "print([v for v in ('QT_QPA_PLATFORM_PLUGIN_PATH', 'QT_QPA_FONTDIR') if 'cv2' in os.environ.get(v, '')])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_gui_without_a_display_is_a_clean_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "emotiond", "gui", "demo"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("emotiond: error: no display") and "emotiond run" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_command_opens_the_gui_only_where_someone_can_see_it(monkeypatch):
    from emotiond.gui import display_available, gui_available

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # tests, CI: headless
    assert not display_available() and not gui_available()
    monkeypatch.delenv("QT_QPA_PLATFORM")
    assert display_available() and gui_available()
    monkeypatch.delenv("DISPLAY")
    assert not display_available() and not gui_available()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert display_available()
