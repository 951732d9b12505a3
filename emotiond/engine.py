"""The engine: frames and audio in, :class:`~emotiond.types.FrameResult` out.  Qt-free.

The engine is a state machine with no I/O of its own (models are loaded once,
at construction).  It is split into two stages so the runner can overlap them
on several threads:

* :meth:`Engine.detect` — mediapipe face landmarks (the heavy part); one
  landmarker per worker, ``Engine.workers`` of them may run at once;
* :meth:`Engine.analyse` — track ids, face crops → emotion model, voice, fusion;
  called in source order.

:meth:`Engine.insert_audio` takes audio chunks in source order.  With a fixed
frame → worker assignment the results do not depend on thread timing, which is
what makes replays deterministic.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from emotiond import registry
from emotiond.config import Config
from emotiond.errors import ModelError
from emotiond.face.speaking import SpeakingParams, SyncSpeakerDetector
from emotiond.face.tracker import FaceTracker
from emotiond.models import Models, ModelStatus
from emotiond.people import People
from emotiond.sources.base import SourceInfo
from emotiond.types import AudioChunk, FaceObservation, FrameResult, VideoFrame

log = logging.getLogger(__name__)


class Engine:
    """The per-source state (tracker, voice track, per-track fusion and smoothing) on shared
    :class:`~emotiond.models.Models`."""

    def __init__(self, config: Config | None = None, source_info: SourceInfo | None = None, paced: bool | None = None,
                 *, models: Models | None = None, executor=None):
        """``paced``: results are watched as they happen (live, GUI, realtime clock); default:
        the source is live.  Paced engines warm the voice features up in advance.
        ``models``: the loaded models to use (not closed by the engine); None: the engine loads
        its own and closes them with itself.  ``executor``: where a live source's voice model runs
        (owned by the caller, see :class:`emotiond.app.Analysis`); for a live source without one
        the engine makes a one-thread executor and shuts it down in :meth:`close`."""
        self._closed = False
        self._landmarkers: list = []  # one mediapipe landmarker per worker, leased from the models
        self.voice = None
        self.loaded: Models | None = None
        self._owns_models = models is None
        self._executor = executor
        self._owns_executor = False
        try:
            self._load(config, source_info, paced, models)
        except BaseException:
            self.close()  # a half-built engine must not leave mediapipe open
            raise

    def _load(self, config: Config | None, source_info: SourceInfo | None, paced: bool | None, models: Models | None) -> None:
        from emotiond.config import load_config

        self.config = config or (models.config if models is not None else load_config())
        self.source_info = source_info
        cfg = self.config
        self.video = source_info is None or source_info.has_video
        has_audio = source_info is None or source_info.has_audio
        want_voice = cfg.voice.enabled and has_audio
        if models is None:
            models = Models(cfg, face=self.video, voice=want_voice)
        self.loaded = models
        # no silent fallback: shared models without a path this source needs are a caller's bug
        if self.video and not models.face:
            raise ModelError("the shared models were loaded without the face path, and this source has video",
                             "load Models(config, face=True) for video sources")
        if want_voice and models.voice_model is None:
            raise ModelError("the shared models were loaded without the voice path, and voice analysis is on",
                             "load Models(config, voice=True), or turn voice off (--no-voice)")
        self.independent_frames = source_info is not None and source_info.kind in ("image", "images")
        self._face_model = None
        self.models: list[ModelStatus] = []  # what this engine uses (logged in session metadata)
        if self.video and models.face:
            self._landmarkers = models.lease_landmarkers(video=not self.independent_frames)
            self._face_model = models.face_model
            self.models.extend(s for s in models.status if s.name in ("face_landmarker", "face_detector_full_range", self._face_model.card.name))
        self._tracker = FaceTracker(cfg.face.track_iou, cfg.face.track_max_gap, cfg.face.reentry_gap)

        if want_voice and models.voice_model is not None:
            # Live sources evaluate the voice model on a worker thread so a frame never waits
            # for it; files stay synchronous, which keeps their logs deterministic.
            live = source_info is not None and source_info.live
            if live if paced is None else paced:
                models.warm_up_voice()
            if live and self._executor is None:
                from concurrent.futures import ThreadPoolExecutor

                self._executor = ThreadPoolExecutor(1, thread_name_prefix="emotiond-voice")
                self._owns_executor = True
            self.voice = models.voice_track(background=live, executor=self._executor if live else None)
            names = {c.name for c in models.voice_cards}
            self.models.extend(s for s in models.status if s.name in names)
        # one fusion state per person (face track) and the off-screen voice: emotiond/people.py
        self._people = People(
            weights={"face": cfg.fusion.face_weight, "voice": cfg.fusion.voice_weight},
            smoothing_tau=cfg.fusion.smoothing_tau,
            reset_after=cfg.fusion.reset_after,
            threshold=cfg.speaking.threshold,
            forget_after=max(cfg.face.track_max_gap, 0.0) + 1e-6,
            uncertain_below=cfg.face.uncertain_below,
        )
        # who is talking: needs both pictures and sound
        self._speaking = None
        if self.video and has_audio and cfg.speaking.enabled and not self.independent_frames:
            sp = cfg.speaking
            self._speaking = SyncSpeakerDetector(SpeakingParams(
                window=sp.window, short_window=sp.short_window, lag_min=sp.lag_min, lag_max=sp.lag_max, offset=sp.av_offset))
        self._next_audio_tick: float | None = None

    # -- providers -------------------------------------------------------------
    @property
    def provider(self) -> str:
        """The onnxruntime execution provider of the face emotion model (or voice, for audio-only)."""
        if self._face_model is not None:
            return self._face_model.provider
        if self.voice is not None:
            return self.voice.provider
        return "none"

    @property
    def smoothing_tau(self) -> float:
        """The fusion smoothing time constant (seconds) of every track's fusion state."""
        return self._people.smoothing_tau

    def set_smoothing(self, tau: float) -> None:
        self._people.set_smoothing(tau)

    def set_focus(self, track_id: int | None) -> None:
        """Make this face track the primary person while nobody visible is talking (a GUI
        click, ``--focus``); None: back to the largest face.  Safe to call from any thread."""
        self._people.set_focus(track_id)

    # -- stage 1 ----------------------------------------------------------------
    @property
    def workers(self) -> int:
        """How many landmark workers :meth:`detect` can be called with in parallel."""
        return max(1, len(self._landmarkers))

    def detect(self, frame: VideoFrame, worker: int = 0) -> list[FaceObservation]:
        """Faces in ``frame`` (no track ids yet).  Each worker owns one mediapipe landmarker
        in VIDEO mode and must see its frames in time order; different workers may run at
        once.  The runner gives frame k to worker k mod workers, which keeps results
        deterministic."""
        if not self._landmarkers:
            return []
        return self._landmarkers[worker].detect(frame.image, frame.t)

    # -- audio ------------------------------------------------------------------
    def insert_audio(self, chunk: AudioChunk) -> list[FrameResult]:
        """Feed audio in source order.  For audio-only sources this returns one
        result per voice hop; with video, results come with the frames."""
        if self._speaking is not None:
            self._speaking.insert_audio(chunk)
        if self.voice is None:
            return []
        self.voice.insert(chunk)
        if self.video:
            return []
        out = []
        hop = self.config.voice.hop
        end = self.voice.time
        if self._next_audio_tick is None:
            self._next_audio_tick = chunk.t + hop
        while self._next_audio_tick <= end:
            out.append(self._result(self._next_audio_tick, -1, None, []))
            self._next_audio_tick += hop
        return out

    # -- stage 2 ----------------------------------------------------------------
    def analyse(self, frame: VideoFrame, faces: list[FaceObservation]) -> FrameResult:
        """Track ids, face emotion, voice and fusion; call in source order."""
        t0 = time.perf_counter()
        if self.independent_frames:  # unrelated stills: no track, no smoothing across them
            self._tracker.reset()
        self._tracker.update(faces, frame.t)
        if self._face_model is not None:
            face_emotions(self._face_model, frame.image, faces, self.config.face.uncertain_below)
        result = self._result(frame.t, frame.index, frame, faces)
        result.faces_unanalysed = getattr(faces, "unanalysed", 0)
        result.timings["analyse"] = time.perf_counter() - t0
        return result

    def process_frame(self, frame: VideoFrame) -> FrameResult:
        """Both stages on the calling thread (landmark worker 0)."""
        t0 = time.perf_counter()
        faces = self.detect(frame)
        t1 = time.perf_counter()
        result = self.analyse(frame, faces)
        result.timings["landmarks"] = t1 - t0
        return result

    def _result(self, t: float, index: int, frame: VideoFrame | None, faces: list[FaceObservation]) -> FrameResult:
        """Who is talking (emotiond/face/speaking.py), then one fused result per person with the
        voice joining its speaker, the off-screen voice, and the primary person (emotiond/people.py)."""
        voice_ev = voice_probs = speech = voice_arousal = None
        if self.voice is not None:
            voice_ev = self.voice.evidence(t)
            voice_probs, speech = self.voice.current_probs(t), self.voice.speech(t)
            voice_arousal = self.voice.arousal(t)
        state = None
        if self._speaking is not None:
            state = self._speaking.update(t, faces, speech)
            for f in faces:
                f.speaking = state.speaking.get(f.track_id)
        people = self._people.update(t, faces, state, voice_ev, independent=self.independent_frames)
        return FrameResult(t=t, frame=index, faces=faces, voice=voice_probs, speech=speech, fused=people.fused,
                           primary=people.primary, fused_by_track=people.by_track, offscreen=people.offscreen,
                           voice_arousal=voice_arousal)

    def finish(self) -> list[FrameResult]:
        """End of the source: analyse the audio tail; for audio-only sources, one last result
        for the final partial hop."""
        if self.voice is None:
            return []
        self.voice.finish()
        if self.video or self._next_audio_tick is None:
            return []
        end = self.voice.time
        if end > self._next_audio_tick - self.config.voice.hop + 1e-6:
            return [self._result(end, -1, None, [])]
        return []

    def close(self) -> None:
        """Give the landmarkers back and close the models the engine loaded itself.  The caller
        must have stopped every thread that uses the engine (the runner joins them)."""
        if self._closed:
            return
        self._closed = True
        if self.voice is not None and not self.voice.close():
            log.warning("a voice evaluation was still running when the engine closed")
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self.loaded is not None:
            self.loaded.release_landmarkers(self._landmarkers)
            self._landmarkers = []
            if self._owns_models:
                self.loaded.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_landmarker(cfg: Config, video: bool = True):
    """A verified face landmarker with the configuration's thresholds, outside any `Models` (tests and
    benchmarks; the engine and `emotiond eval` lease theirs from :class:`~emotiond.models.Models`)."""
    from emotiond.face.landmarks import FaceLandmarker

    card = registry.resolve("face_landmarker", cfg.models_dir)
    detector = None
    if video and cfg.face.small_faces:
        from emotiond.face.detector import FaceDetector

        detector = FaceDetector.from_registry(cfg.models_dir)
    lm = FaceLandmarker(
        card.path,
        max_faces=cfg.face.max_faces,
        min_detection_confidence=cfg.face.min_detection_confidence,
        min_presence_confidence=cfg.face.min_presence_confidence,
        min_tracking_confidence=cfg.face.min_tracking_confidence,
        min_face_size=cfg.face.min_face_size,
        video=video,
        detector=detector,
        owns_detector=True,
    )
    lm.card = card  # type: ignore[attr-defined]  # the card it was verified against
    return lm


def face_emotions(model, image, faces, uncertain_below: float = 0.0) -> None:
    """Crop every face upright and set its ``emotion`` (one batched model call), its
    ``reliability`` (emotiond/face/reliability.py) and its ``label`` ("uncertain" when the
    reliability is under ``uncertain_below``)."""
    from emotiond.face import reliability as rel
    from emotiond.face.align import face_crop
    from emotiond.labels import EMOTIONS

    if not faces:
        return
    gray = [face_crop(image, f.landmarks) for f in faces]  # 64×64: what the reliability reads
    same = getattr(model, "crop_size", 64) == 64 and getattr(model, "color", "gray") == "gray"
    probs = model.predict(np.stack(gray if same else [model.crop(image, f.landmarks) for f in faces]))
    for f, p, c in zip(faces, probs, gray):
        f.emotion = p
        f.reliability = rel.reliability(f.quality, rel.signals(c, f.landmarks, f.bbox))
        f.label = rel.UNCERTAIN if f.reliability < uncertain_below else EMOTIONS[int(np.argmax(p))]

