"""The streaming voice path used by the engine: resample → VAD → utterances → voice emotion.

Audio arrives in source order at any rate and channel count.  It is resampled
to the features' rate (16 kHz mono, streaming soxr), run through silero's VAD
in 32 ms chunks and segmented into utterances.  While an utterance is open the
voice-emotion model is evaluated every ``voice.hop`` seconds on the last
``window_s`` seconds of audio (the window the model was trained on).

Voice evidence for fusion:

    reliability = R_card × mean VAD probability of the window × speechness
                  × confidence_factor(model output)
                  × exp(−(t − t_end) / decay_tau)   after the utterance ended at t_end

R_card is the model's measured cross-corpus reliability (its card's ``[reliability]``,
at least 0.02), so a model near chance on unseen corpora barely counts; speechness (0..1, from
:func:`emotiond.audio.prosody.speechness`) rejects music, singing, tones and noise the VAD
lets through (below 0.5 the window gives no evidence at all).  The voice speaks only
where there is speech, weighs less when the model is unsure, and fades after the
speaker stops.  Each track keeps a running baseline of its speaker's voice
(:class:`emotiond.audio.prosody.SpeakerBaseline`) that the model's features are
normalised against.  Nothing here does I/O.
"""

from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np

from emotiond.audio.features import Resampler, rms_dbfs
from emotiond.audio.prosody import FrameStream
from emotiond.audio.vad import CHUNK, SAMPLE_RATE, Segmenter, SegmenterParams, VoiceActivity
from emotiond.fusion import confidence_factor, evidence
from emotiond.types import AudioChunk, ModalityEvidence

MIN_RELIABILITY = 0.02  # below this the voice is treated as absent
GAP_FILL_S = 0.1  # a jump in audio timestamps larger than this is filled with silence


class VoiceTrack:
    def __init__(self, vad: VoiceActivity, model, *, hop: float = 0.5, decay_tau: float = 1.5, vad_threshold: float = 0.5,
                 background: bool = False, ready: threading.Event | None = None, executor=None):
        """``ready``: set once the voice features are warm (see :meth:`emotiond.models.Models.warm_up_voice`);
        the first evaluation waits for it (the warm-up and the first log-mel would otherwise both
        pay the ~3 s of imports).  ``background`` (live sources): the model runs on ``executor``
        (a ``concurrent.futures`` executor owned by the caller — this class starts no thread);
        without an executor it runs synchronously."""
        self.vad = vad
        self.model = model
        self.params = model.params
        self.hop = hop
        self.decay_tau = decay_tau
        self.segmenter = Segmenter(SegmenterParams(on=vad_threshold, off=max(0.0, vad_threshold - 0.15)))
        self._window = self.params.window_samples
        self._resampler: Resampler | None = None
        self._rate: int | None = None
        # the last `window` samples at 16 kHz, as a ring (written in place every 32 ms, read in
        # order only when a window is evaluated; zeros before the first samples)
        self._ring = np.zeros(self._window, dtype=np.float32)
        self._ring_pos = 0  # where the next sample goes (= the oldest sample once full)
        self._pending = np.zeros(0, dtype=np.float32)  # resampled audio not yet a whole VAD chunk
        self._vad_probs: deque[tuple[float, float]] = deque(maxlen=int(self.params.window_s * SAMPLE_RATE / CHUNK) + 1)
        self._t0: float | None = None  # source time of the first 16 kHz sample
        self._n = 0  # 16 kHz samples received
        self._next_eval = 0.0
        self._probs: np.ndarray | None = None  # last voice distribution (over labels.EMOTIONS)
        self._arousal: float | None = None  # last voice arousal estimate
        self._base_rel = 0.0
        self.baseline = model.new_baseline()  # this speaker's running baseline
        self._frames = FrameStream(self._window)  # each 10 ms frame analysed once
        self.rejected = 0  # windows judged not speech (music, tones, noise)
        self.last_speechness: float | None = None
        self._ended_at: float | None = None  # end of the last utterance (None while speaking)
        self.evaluations = 0
        # background=True (live sources): the model runs on a worker thread and evidence uses the
        # newest finished evaluation; a window that arrives while one is running is skipped.
        self.background = background and executor is not None
        self._executor = executor
        self._pending_eval = None  # the Future of the evaluation running in the background
        self._result_lock = threading.Lock()
        self._ready = ready

    @classmethod
    def from_config(cls, cfg, background: bool = False) -> VoiceTrack:
        """A track with its own VAD and voice model (tests and tools; the engine builds its
        tracks from a shared :class:`emotiond.models.Models`)."""
        from emotiond import registry
        from emotiond.audio.vad import MODEL_NAME as VAD_NAME
        from emotiond.audio.voice_model import VoiceEmotionModel

        vad = VoiceActivity.from_registry(cfg.models_dir)
        model, voice_card = VoiceEmotionModel.from_config(cfg)
        track = cls(vad, model, hop=cfg.voice.hop, decay_tau=cfg.voice.decay_tau, vad_threshold=cfg.voice.vad_threshold,
                    background=background)
        track.cards = [registry.card(VAD_NAME, cfg.models_dir), voice_card]
        return track

    cards: list = []  # the verified cards of the VAD and the voice model (set by from_config)

    def model_status(self) -> list[tuple[str, str, str, str]]:
        providers = [self.vad.provider, self.model.provider]
        return [(c.name, c.path.name, c.sha256, p) for c, p in zip(self.cards, providers)]

    @property
    def provider(self) -> str:
        return self.model.provider

    @property
    def time(self) -> float:
        """Source time up to which audio has been analysed."""
        return (self._t0 or 0.0) + self._n / SAMPLE_RATE

    def insert(self, chunk: AudioChunk) -> None:
        if self._resampler is None or chunk.rate != self._rate:
            self._resampler, self._rate = Resampler(chunk.rate, SAMPLE_RATE), chunk.rate
        if self._t0 is None:
            self._t0 = chunk.t
            self.vad.reset(chunk.t)
        gap = chunk.t - (self.time + self._pending.size / SAMPLE_RATE)
        if gap > GAP_FILL_S:  # audio missing (a damaged packet, a device hiccup): keep the clock true
            self._step(np.zeros(int(round(gap * SAMPLE_RATE)), np.float32))
        self._step(self._resampler(chunk.samples))

    def finish(self) -> None:
        """End of the stream: the resampler's tail and the last partial VAD chunk (zero-padded)
        are analysed, and an open utterance is closed."""
        if self._resampler is None:
            return
        self._step(self._resampler.flush())
        if self._pending.size:
            self._step(np.zeros(CHUNK - self._pending.size, np.float32))
        for ev in self.segmenter.flush(self.time):
            if ev.kind == "end":
                self._ended_at = ev.t

    def close(self, timeout: float = 10.0) -> bool:
        """Wait (at most ``timeout`` s) for a background evaluation; False if it did not end."""
        fut = self._pending_eval
        if fut is not None:
            from concurrent.futures import wait

            wait([fut], timeout)
            return fut.done()
        return True

    def _step(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        self._pending = np.concatenate([self._pending, x]) if self._pending.size else x
        # Step in VAD chunks so utterance boundaries and evaluations fall where they are in
        # the audio, whatever the size of the chunks the source delivers.
        n_steps = self._pending.size // CHUNK
        for i in range(n_steps):
            piece = self._pending[i * CHUNK : (i + 1) * CHUNK]
            self._write_ring(piece)
            self._frames.push(piece)
            self._n += CHUNK
            for t, p in self.vad.push(piece):
                self._vad_probs.append((t, p))
                for ev in self.segmenter.feed(t, p):
                    if ev.kind == "start":
                        self._ended_at = None
                        self._next_eval = 0.0
                    else:
                        self._ended_at = ev.t
            if self.segmenter.in_speech and self.time >= self._next_eval:
                self._evaluate()
                self._next_eval = self.time + self.hop
        self._pending = self._pending[n_steps * CHUNK :].copy()

    def _write_ring(self, piece: np.ndarray) -> None:
        n, pos = piece.size, self._ring_pos
        if n >= self._window:
            self._ring[:] = piece[-self._window :]
            self._ring_pos = 0
            return
        first = min(n, self._window - pos)
        self._ring[pos : pos + first] = piece[:first]
        self._ring[: n - first] = piece[first:]
        self._ring_pos = (pos + n) % self._window

    def _evaluate(self) -> None:
        # the last `window` samples, oldest first (zero-padded at the front before the ring is full)
        window = np.concatenate([self._ring[self._ring_pos :], self._ring[: self._ring_pos]])
        speech = float(np.mean([p for _, p in self._vad_probs] or [0.0]))
        frames = self._frames.window()
        if not self.background:
            self._score(window, speech, frames)
        elif self._pending_eval is None or self._pending_eval.done():
            self._pending_eval = self._executor.submit(self._score, window, speech, frames)

    def _score(self, window: np.ndarray, speech: float, frames=None) -> None:
        if rms_dbfs(window) < self.params.silence_dbfs:
            return
        if self._ready is not None:
            self._ready.wait(30.0)
        out = self.model.analyse(window, self.baseline, frames)
        with self._result_lock:
            self.evaluations += 1
            self.last_speechness = out.speechness
            if not out.is_speech:  # music, singing, a tone, noise: no voice evidence
                self.rejected += 1
                self._probs, self._arousal, self._base_rel = None, None, 0.0
                return
            self._probs, self._arousal = out.probs, out.arousal
            self._base_rel = speech * out.speechness * confidence_factor(out.probs, self.model.covered)
        self.baseline.update(out.features)

    @property
    def ended_at(self) -> float | None:
        """End time of the last utterance; None while one is open (or before any)."""
        return self._ended_at

    def _current(self, t: float) -> tuple[np.ndarray | None, float]:
        """The newest voice distribution and its reliability at time ``t`` (decayed after speech)."""
        with self._result_lock:
            probs, rel = self._probs, self._base_rel
        if probs is None:
            return None, 0.0
        if self._ended_at is not None:
            rel *= math.exp(-max(0.0, t - self._ended_at) / self.decay_tau)
        return probs, rel

    def evidence(self, t: float) -> ModalityEvidence | None:
        probs, rel = self._current(t)
        if rel < MIN_RELIABILITY:
            return None
        # the card's measured cross-corpus reliability scales the weight (a model at chance gets the
        # floor: heard when alone, a few per cent next to a face)
        return evidence("voice", probs, rel * self.model.fusion_reliability, self.model.covered, arousal=self._arousal)

    def arousal(self, t: float) -> float | None:
        """The voice's arousal estimate (-1 calm .. 1 aroused) while its evidence counts at ``t``."""
        _, rel = self._current(t)
        return self._arousal if rel >= MIN_RELIABILITY else None

    def current_probs(self, t: float) -> np.ndarray | None:
        """The voice distribution while it still counts at time ``t`` (else None)."""
        probs, rel = self._current(t)
        return probs if rel >= MIN_RELIABILITY else None

    def speech(self, t: float) -> float | None:
        return self.vad.last_prob if self._t0 is not None else None
