"""Everything loaded once per process: :class:`Models`.  Qt-free.

A :class:`Models` holds what is expensive and stateless (or whose state is
reset per source): the verified model cards, the face-expression, VAD and voice
onnxruntime sessions (created once; onnxruntime sessions may be run from
several threads) and the mediapipe face landmarkers (one per landmark worker).
An :class:`~emotiond.engine.Engine` is the per-source state (tracker, voice
track, fusion, smoothing) built from a ``Models``; many engines may be built
from one ``Models``, one after another (a worker analysing many files) or at
once (several sources in one process).

Landmarkers are *leased*: mediapipe's VIDEO mode tracks faces from call to
call, so a landmarker that has seen one source carries state into the next.
:meth:`Models.lease_landmarkers` hands out landmarkers that have seen nothing
(the ones created at load time first; a returned, used one is replaced by a
fresh one built from the already verified model file, ~0.1 s), which is what
makes a reused ``Models`` give the same results as a fresh process.

``close()`` releases everything; a ``Models`` built by an engine for itself is
closed by that engine.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from emotiond.config import Config
from emotiond.errors import EmotiondError

log = logging.getLogger(__name__)


@dataclass
class ModelStatus:
    name: str
    file: str
    sha256: str
    provider: str


def default_workers(cfg: Config) -> int:
    """Landmark workers: the configured number, else one per core, at most 2."""
    return cfg.face.workers or max(1, min(2, os.cpu_count() or 1))


class Models:
    """The loaded models of one process, shared by every source analysed in it."""

    def __init__(self, config: Config | None = None, *, face: bool = True, voice: bool | None = None,
                 workers: int | None = None, warm_up: bool = False, video: bool = True):
        """``face``: load the landmarker and the expression model; ``voice``: the VAD and the voice
        model (default: ``config.voice.enabled``).  ``workers``: landmarkers loaded now (more are
        made on demand); ``video``: their mode (False: still images, as ``emotiond eval`` reads).
        ``warm_up``: run the voice features once on a thread of this object (the first log-mel in
        a process costs ~3 s of imports and JIT; paced runs want it done before the first
        utterance)."""
        from emotiond.config import load_config

        self.config = config or load_config()
        self.face = face
        self.voice = self.config.voice.enabled if voice is None else bool(voice)
        self.workers = workers or default_workers(self.config)
        self._video = bool(video)
        self.status: list[ModelStatus] = []
        self.face_model: Any = None  # emotiond.face.emotion.FaceEmotionModel
        self.vad_model: Any = None  # emotiond.runtime.OrtModel of silero's VAD (state lives in VoiceActivity)
        self.voice_model: Any = None  # emotiond.audio.voice_model.VoiceEmotionModel
        self.voice_cards: list = []
        self.landmarker_card = None
        self._lock = threading.Lock()
        self._idle: dict[bool, list] = {True: [], False: []}  # video mode -> unused landmarkers
        self._leased: set[int] = set()
        self._all: list = []
        self._closed = False
        self._warm: threading.Thread | None = None
        self.voice_ready = threading.Event()  # set once the voice features are warm (or not warming)
        self.voice_ready.set()
        try:
            self._load()
            if warm_up:
                self.warm_up_voice()
        except BaseException:
            self.close()  # a half-loaded set must not leave mediapipe open
            raise

    def _load(self) -> None:
        from emotiond import registry

        cfg = self.config
        _limit_blas_threads()
        if self.face:
            from emotiond.face.emotion import FaceEmotionModel

            self.landmarker_card = registry.resolve("face_landmarker", cfg.models_dir)
            for _ in range(self.workers):
                self._idle[self._video].append(self._new_landmarker(video=self._video))
            c = self.landmarker_card
            self.status.append(ModelStatus("face_landmarker", c.path.name, c.sha256, "mediapipe (CPU)"))
            if cfg.face.small_faces:
                d = registry.resolve("face_detector_full_range", cfg.models_dir)
                self.status.append(ModelStatus(d.name, d.path.name, d.sha256, "mediapipe (CPU)"))
            self.face_model = FaceEmotionModel.from_registry(cfg.models_dir, provider=cfg.provider, threads=cfg.threads,
                                                             name=cfg.face.model)
            fc = self.face_model.card
            self.status.append(ModelStatus(fc.name, fc.path.name, fc.sha256, self.face_model.provider))
        if self.voice:
            from emotiond import runtime
            from emotiond.audio.vad import MODEL_NAME as VAD_NAME
            from emotiond.audio.voice_model import VoiceEmotionModel

            vad_card = registry.resolve(VAD_NAME, cfg.models_dir)
            self.vad_model = runtime.load(vad_card.path, provider="cpu", threads=1)
            # voice.model (a user-trained model) or the shipped one
            self.voice_model, voice_card = VoiceEmotionModel.from_config(cfg)
            self.voice_cards = [vad_card, voice_card]
            for c, p in zip(self.voice_cards, [self.vad_model.provider, self.voice_model.provider]):
                self.status.append(ModelStatus(c.name, c.path.name, c.sha256, p))
        log.debug("models loaded: %s", ", ".join(s.name for s in self.status) or "none")

    # -- landmarkers -------------------------------------------------------------------------
    def _new_landmarker(self, video: bool):
        from emotiond.face.landmarks import FaceLandmarker

        f = self.config.face
        detector = None
        if video and f.small_faces:  # one full-range detector per landmarker (each on its own thread)
            from emotiond.face.detector import FaceDetector

            detector = FaceDetector.from_registry(self.config.models_dir)
        lm = FaceLandmarker(
            self.landmarker_card.path,
            max_faces=f.max_faces,
            min_detection_confidence=f.min_detection_confidence,
            min_presence_confidence=f.min_presence_confidence,
            min_tracking_confidence=f.min_tracking_confidence,
            min_face_size=f.min_face_size,
            video=video,
            detector=detector,
            owns_detector=True,
        )
        lm.card = self.landmarker_card
        self._all.append(lm)
        return lm

    def lease_landmarkers(self, n: int | None = None, *, video: bool = True) -> list:
        """``n`` (default: ``workers``) landmarkers that have seen no frame, for one source."""
        if not self.face:
            return []
        n = n or self.workers
        with self._lock:
            self._check_open()
            out = []
            while len(out) < n:
                pool = self._idle[video]
                out.append(pool.pop() if pool else self._new_landmarker(video))
            self._leased.update(id(lm) for lm in out)
        return out

    def release_landmarkers(self, landmarkers: list) -> None:
        """Give leased landmarkers back.  They have state now: they are closed, and the next
        lease gets fresh ones."""
        with self._lock:
            for lm in landmarkers:
                self._leased.discard(id(lm))
                lm.close()
                if lm in self._all:
                    self._all.remove(lm)

    # -- voice -------------------------------------------------------------------------------
    def voice_track(self, *, background: bool = False, executor=None):
        """A new :class:`~emotiond.voice.VoiceTrack` (per-source state) on the shared sessions."""
        from emotiond.audio.vad import VoiceActivity
        from emotiond.voice import VoiceTrack

        if self.voice_model is None:
            return None
        self._check_open()
        v = self.config.voice
        track = VoiceTrack(VoiceActivity(self.vad_model), self.voice_model, hop=v.hop, decay_tau=v.decay_tau,
                           vad_threshold=v.vad_threshold, background=background, ready=self.voice_ready,
                           executor=executor)
        track.cards = self.voice_cards
        return track

    def warm_up_voice(self) -> None:
        """Start warming the voice features up on a thread this object owns (once)."""
        if self.voice_model is None or self._warm is not None:
            return
        self.voice_ready.clear()
        self._warm = threading.Thread(target=self._warm_up, name="emotiond-voice-warmup", daemon=True)
        self._warm.start()

    def _warm_up(self) -> None:
        import numpy as np

        try:
            noise = np.random.default_rng(0).normal(0.0, 0.05, self.voice_model.params.window_samples)
            self.voice_model.predict(noise.astype(np.float32))
        except Exception:  # a real problem shows up again, with its message, on first use
            log.debug("voice warm-up failed", exc_info=True)
        finally:
            self.voice_ready.set()

    # -- life cycle ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise EmotiondError("the models were closed", "this is a bug in emotiond: a source outlived its models")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float = 10.0) -> bool:
        """Release the landmarkers (the onnxruntime sessions go with the object).  Waits at most
        ``timeout`` s for the warm-up thread; False (and a log warning) if it did not stop."""
        if self._closed:
            return True
        self._closed = True
        ok = True
        if self._warm is not None:
            self._warm.join(timeout)
            if self._warm.is_alive():
                ok = False
                log.warning("the voice warm-up thread did not stop within %.0f s", timeout)
        with self._lock:
            if self._leased:
                log.warning("models closed while %d landmarker(s) are still leased", len(self._leased))
            for lm in self._all:
                if id(lm) not in self._leased:  # a leased one may be in use: its engine closes it
                    lm.close()
            self._all = [lm for lm in self._all if id(lm) in self._leased]
            self._idle = {True: [], False: []}
        return ok

    def __enter__(self) -> Models:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _limit_blas_threads() -> None:
    """One BLAS thread: the models are small and the other core runs the other pipeline stage
    (multithreaded OpenBLAS made the voice features ~5x slower on a busy 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
    except ImportError:  # threadpoolctl comes with scikit-learn (librosa); without it, no limit
        pass
