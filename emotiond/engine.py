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

import os
import time
from dataclasses import dataclass

import numpy as np

from emotiond import registry
from emotiond.config import Config
from emotiond.face.tracker import FaceTracker, largest
from emotiond.fusion import FusionScorer, confidence_factor, evidence
from emotiond.sources.base import SourceInfo
from emotiond.types import AudioChunk, FaceObservation, FrameResult, VideoFrame


@dataclass
class ModelStatus:
    name: str
    file: str
    sha256: str
    provider: str


class Engine:
    def __init__(self, config: Config | None = None, source_info: SourceInfo | None = None, paced: bool | None = None):
        """``paced``: results are watched as they happen (live, GUI, realtime clock); default:
        the source is live.  Paced engines warm the voice features up in advance."""
        self._closed = False
        self._landmarkers: list = []  # one mediapipe landmarker per worker
        try:
            self._load(config, source_info, paced)
        except BaseException:
            self.close()  # a half-built engine must not leave mediapipe open
            raise

    def _load(self, config: Config | None, source_info: SourceInfo | None, paced: bool | None) -> None:
        from emotiond.config import load_config

        self.config = config or load_config()
        self.source_info = source_info
        _limit_blas_threads()
        cfg = self.config
        models_dir = cfg.models_dir
        self.models: list[ModelStatus] = []

        self.video = source_info is None or source_info.has_video
        self.independent_frames = source_info is not None and source_info.kind in ("image", "images")
        self._face_model = None
        if self.video:
            from emotiond.face.emotion import FaceEmotionModel

            n = cfg.face.workers or max(1, min(2, os.cpu_count() or 1))
            for _ in range(n):
                self._landmarkers.append(open_landmarker(cfg, video=not self.independent_frames))
            lm_card = self._landmarkers[0].card
            self.models.append(ModelStatus("face_landmarker", lm_card.path.name, lm_card.sha256, "mediapipe (CPU)"))
            self._face_model = FaceEmotionModel.from_registry(models_dir, provider=cfg.provider, threads=cfg.threads)
            fc = self._face_model.card
            self.models.append(ModelStatus(fc.name, fc.path.name, fc.sha256, self._face_model.provider))
        self._tracker = FaceTracker(cfg.face.track_iou, cfg.face.track_max_gap)

        self.voice = None
        has_audio = source_info is None or source_info.has_audio
        if cfg.voice.enabled and has_audio:
            from emotiond.voice import VoiceTrack

            # Live sources evaluate the voice model on a worker thread so a frame never waits
            # for it; files stay synchronous, which keeps their logs deterministic.
            live = source_info is not None and source_info.live
            self.voice = VoiceTrack.from_config(cfg, background=live, warm_up=live if paced is None else paced)
            self.models.extend(ModelStatus(*m) for m in self.voice.model_status())
        self._fusion = FusionScorer(
            weights={"face": cfg.fusion.face_weight, "voice": cfg.fusion.voice_weight},
            smoothing_tau=cfg.fusion.smoothing_tau,
            reset_after=cfg.fusion.reset_after,
        )
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

    def set_smoothing(self, tau: float) -> None:
        self._fusion.smoothing_tau = max(0.0, float(tau))

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
            face_emotions(self._face_model, frame.image, faces)
        result = self._result(frame.t, frame.index, frame, faces)
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
        items = []
        primary = largest([f for f in faces if f.emotion is not None])
        if primary is not None:
            rel = primary.quality * confidence_factor(primary.emotion)
            items.append(evidence("face", primary.emotion, rel))
        voice_probs = speech = None
        if self.voice is not None:
            ev = self.voice.evidence(t)
            voice_probs, speech = self.voice.current_probs(t), self.voice.speech(t)
            if ev is not None:
                items.append(ev)
        if self.independent_frames:
            self._fusion.reset()
        fused = self._fusion.update(t, items)
        return FrameResult(t=t, frame=index, faces=faces, voice=voice_probs, speech=speech, fused=fused)

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
        if self._closed:
            return
        self._closed = True
        for lm in self._landmarkers:
            lm.close()
        if getattr(self, "voice", None) is not None:
            self.voice.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_landmarker(cfg: Config, video: bool = True):
    """The verified face landmarker with the configuration's thresholds (engine and eval share it)."""
    from emotiond.face.landmarks import FaceLandmarker

    card = registry.resolve("face_landmarker", cfg.models_dir)
    lm = FaceLandmarker(
        card.path,
        max_faces=cfg.face.max_faces,
        min_detection_confidence=cfg.face.min_detection_confidence,
        min_presence_confidence=cfg.face.min_presence_confidence,
        min_tracking_confidence=cfg.face.min_tracking_confidence,
        min_face_size=cfg.face.min_face_size,
        video=video,
    )
    lm.card = card
    return lm


def face_emotions(model, image, faces) -> None:
    """Crop every face upright and set its ``emotion`` (one batched model call)."""
    from emotiond.face.align import face_crop

    if not faces:
        return
    probs = model.predict(np.stack([face_crop(image, f.landmarks) for f in faces]))
    for f, p in zip(faces, probs):
        f.emotion = p


def _limit_blas_threads() -> None:
    """One BLAS thread: the models are small and the other core runs the other pipeline stage
    (multithreaded OpenBLAS made the voice features ~5x slower on a busy 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
    except ImportError:  # threadpoolctl comes with scikit-learn (librosa); without it, no limit
        pass
