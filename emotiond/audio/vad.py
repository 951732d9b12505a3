"""Voice activity: silero VAD (ONNX, run by onnxruntime) and an utterance segmenter.

:class:`VoiceActivity` streams 16 kHz mono audio through silero's model in
32 ms chunks (512 samples) and returns one speech probability per chunk.  The
protocol follows ``silero_vad.utils_vad.OnnxWrapper`` of silero-vad 6.2.3: each
call gets the last 64 samples of the previous call's input prepended as context
(576 samples in all), the recurrent ``state`` [2, 1, 128] is carried from call
to call, and ``sr`` is an int64 scalar 16000.

:class:`Segmenter` is a pure state machine over ``(t, prob)`` pairs: it turns
them into utterance start/end events with hysteresis, a pre-roll, a hang-over
and a minimum speech duration.  Neither class does I/O; the model file comes
from the registry in :meth:`VoiceActivity.from_registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
CHUNK = 512  # samples per model call at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous call prepended to each call
MODEL_NAME = "silero_vad"


class VoiceActivity:
    """Streaming speech probability, one value per 32 ms chunk of 16 kHz audio."""

    def __init__(self, model):
        """``model``: an :class:`emotiond.runtime.OrtModel` of silero's VAD."""
        self._model = model
        self._sess = model.session
        self._outputs = ["output", "stateN"]
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    @classmethod
    def from_registry(cls, models_dir: Path | None = None, provider: str = "cpu") -> VoiceActivity:
        """Load the verified ``silero_vad`` model.  CPU by default: it is a tiny
        recurrent model called every 32 ms, where a GPU round trip only costs."""
        from emotiond import registry, runtime

        c = registry.resolve(MODEL_NAME, models_dir)
        return cls(runtime.load(c.path, provider=provider, threads=1))

    @property
    def provider(self) -> str:
        return self._model.provider

    def reset(self, t: float = 0.0) -> None:
        """Forget the audio so far; the next sample pushed is at time ``t``."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._t0 = float(t)  # time of the first sample of _pending
        self.last_prob = 0.0

    def push(self, samples_16k: np.ndarray) -> list[tuple[float, float]]:
        """Feed 16 kHz mono samples; returns ``(t, prob)`` for each completed chunk.

        ``t`` is the time of the chunk's first sample (the clock set by :meth:`reset`).
        """
        x = np.asarray(samples_16k, dtype=np.float32).reshape(-1)
        buf = np.concatenate([self._pending, x]) if self._pending.size else x
        n = buf.shape[0] // CHUNK
        out: list[tuple[float, float]] = []
        for i in range(n):
            chunk = buf[i * CHUNK : (i + 1) * CHUNK]
            out.append((self._t0 + i * CHUNK / SAMPLE_RATE, self._step(chunk)))
        self._pending = buf[n * CHUNK :].copy()
        self._t0 += n * CHUNK / SAMPLE_RATE
        return out

    def _step(self, chunk: np.ndarray) -> float:
        inp = np.concatenate([self._context, chunk[None, :]], axis=1)
        prob, self._state = self._sess.run(
            self._outputs, {"input": inp, "state": self._state, "sr": self._sr}
        )
        self._context = inp[:, -CONTEXT:]
        self.last_prob = float(prob.reshape(-1)[0])
        return self.last_prob

    def probabilities(self, samples_16k: np.ndarray) -> np.ndarray:
        """Speech probability per chunk of a whole signal (resets first; tail zero-padded)."""
        self.reset()
        x = np.asarray(samples_16k, dtype=np.float32).reshape(-1)
        pad = (-x.shape[0]) % CHUNK
        if pad:
            x = np.concatenate([x, np.zeros(pad, np.float32)])
        probs = np.array([p for _, p in self.push(x)], dtype=np.float32)
        self.reset()
        return probs


@dataclass(frozen=True)
class SegmenterParams:
    on: float = 0.5  # a chunk with prob >= on is speech (silero's default threshold)
    off: float = 0.35  # once in speech, a chunk is silence only below off (silero: on - 0.15)
    pre_roll_s: float = 0.2  # an utterance starts this long before its first speech chunk
    hang_over_s: float = 0.3  # silence needed to end an utterance; it ends at the last speech + this
    min_speech_s: float = 0.25  # utterances with less speech than this are dropped
    max_utterance_s: float = 15.0  # a longer one is cut (an end event, then a new start)
    chunk_s: float = CHUNK / SAMPLE_RATE  # duration of one (t, prob) step


@dataclass(frozen=True)
class SpeechEvent:
    kind: str  # "start" or "end"
    t: float  # seconds: start includes the pre-roll; end includes the hang-over
    speech_s: float = 0.0  # on "end": seconds of chunks classified as speech


class Segmenter:
    """Utterance boundaries from per-chunk speech probabilities (a pure state machine).

    A start is *confirmed* only once ``min_speech_s`` of speech has been seen,
    so a click never produces events; the confirmed start is back-dated to the
    first speech chunk minus ``pre_roll_s`` (the caller keeps that much audio).
    An utterance ends when the probability stays below ``off`` for
    ``hang_over_s``; its end time is the end of the last speech chunk plus
    ``hang_over_s``.
    """

    def __init__(self, params: SegmenterParams | None = None):
        self.p = params or SegmenterParams()
        self.reset()

    def reset(self) -> None:
        self.state = "silence"  # "silence" | "pending" | "speech"
        self._first_speech = 0.0  # t of the first speech chunk of the current run
        self._last_speech_end = 0.0  # end time of the last speech chunk
        self._speech_s = 0.0
        self._start_t = 0.0  # reported start of the current utterance
        self._silence_s = 0.0
        self._last_end = 0.0  # end of the previous utterance (starts never overlap it)

    @property
    def in_speech(self) -> bool:
        return self.state == "speech"

    def feed(self, t: float, prob: float) -> list[SpeechEvent]:
        p = self.p
        ev: list[SpeechEvent] = []
        if self.state == "silence":
            if prob >= p.on:
                self.state = "pending"
                self._first_speech = t
                self._last_speech_end = t + p.chunk_s
                self._speech_s = p.chunk_s
                self._silence_s = 0.0
                ev += self._maybe_confirm()
            return ev
        speech = prob >= p.off  # hysteresis: stay in speech down to `off`
        if speech:
            self._speech_s += p.chunk_s if prob >= p.on or self.state == "speech" else 0.0
            self._last_speech_end = t + p.chunk_s
            self._silence_s = 0.0
        else:
            self._silence_s += p.chunk_s
        if self.state == "pending":
            if self._silence_s >= p.hang_over_s:  # too short: forget it
                self.state = "silence"
                return ev
            return self._maybe_confirm()
        # state == "speech"
        if self._silence_s >= p.hang_over_s:
            self._last_end = self._last_speech_end + p.hang_over_s
            ev.append(SpeechEvent("end", self._last_end, self._speech_s))
            self.state = "silence"
        elif t + p.chunk_s - self._start_t >= p.max_utterance_s:
            ev.append(SpeechEvent("end", t + p.chunk_s, self._speech_s))
            self._start_t = self._last_end = t + p.chunk_s
            self._first_speech = self._start_t
            self._speech_s = 0.0
            ev.append(SpeechEvent("start", self._start_t))
        return ev

    def _maybe_confirm(self) -> list[SpeechEvent]:
        if self._speech_s + 1e-9 >= self.p.min_speech_s:
            self.state = "speech"
            self._start_t = max(0.0, self._last_end, self._first_speech - self.p.pre_roll_s)
            return [SpeechEvent("start", self._start_t)]
        return []

    def flush(self, t: float) -> list[SpeechEvent]:
        """End of stream at time ``t``: close an open utterance."""
        ev = []
        if self.state == "speech":
            ev.append(SpeechEvent("end", min(t, self._last_speech_end + self.p.hang_over_s), self._speech_s))
        self.state = "silence"
        return ev


def segment(probs: list[tuple[float, float]], params: SegmenterParams | None = None) -> list[tuple[float, float]]:
    """(start, end) utterances of a whole sequence of (t, prob); a convenience for offline use."""
    seg = Segmenter(params)
    events: list[SpeechEvent] = []
    for t, p in probs:
        events += seg.feed(t, p)
    if probs:
        events += seg.flush(probs[-1][0] + seg.p.chunk_s)
    out, start = [], None
    for e in events:
        if e.kind == "start":
            start = e.t
        elif start is not None:
            out.append((start, e.t))
            start = None
    return out
