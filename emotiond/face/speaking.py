"""Active-speaker detection: which visible face is talking.  Pure, no I/O.

A talking mouth opens and closes with the loudness of its voice: mouth opening and the
speech envelope are correlated over a few hundred milliseconds, the sound lagging the lips
by up to ~0.2 s ("audio-visual synchrony": Hershey & Movellan 2000; Chandrasekaran et al.
2009, PLoS Comput Biol 5(7) e1000436).  Learned detectors (TalkNet, Light-ASD) learn the
same cue from pixels and spectrograms; this one measures it directly, for a few tens of
microseconds per face and frame.

Per face track, at every video frame:

* the mouth opening ``o`` = inner-lip aperture (landmarks 13/14) / outer eye-corner
  distance (33/263) + ½ · the ``jawOpen`` blendshape — independent of face size;
* the audio envelope ``e``: RMS of the source's audio in 10 ms bins, averaged over
  ±``smooth`` around the instant asked for;
* the correlation ``r(ℓ)`` of ``o(t)`` with ``e(t + ℓ)`` for lags ``ℓ`` from
  ``offset + lag_min`` to ``offset + lag_max`` (``offset``: the source's known audio–video
  offset), over sliding windows with exponential weights: a long one (time constant
  ``window``, 3 s: is this face in sync at all?), a short one (``short_window``, 0.4 s:
  is it in sync *now*?) and the turn model's (``turn_window``, 0.25 s) — running weighted moments E[o], E[e], E[o²], E[e²], E[o·e] per
  lag, updated once per frame, so each frame costs O(lags) whatever the windows;
* **one lag for every face**: the audio–video lag is a property of the source, not of a
  face, so the detector keeps a slowly averaged lag profile (the correlation per lag of the
  face most in sync while speech is heard, time constant ``lag_window``) and judges every
  face at its peak.  Taking each face's best lag at every frame instead gave every mouth
  several chances per frame to match unrelated speech by accident — the main way an
  off-screen voice used to land on a face;
* how much the mouth moves, ``m = min(1, std(o) / mouth_ref)`` — a still mouth is no
  evidence of speaking, and a mouth that moves while nothing is heard lowers ``r``; a new
  track's correlation is shrunk towards 0 by ``1 − exp(−age / warm)`` (a few samples
  correlate by chance);
* **turns**: who holds the turn is decided by evidence accumulated over time (a state per
  face and one for "nobody visible", decoded online with a switch cost: :meth:`_take_turns`),
  so a chance lead of a moment does not take it while a real change does within a fraction
  of a second;
* the synchrony ``s``: long ``L = m · r_long(lag)``, short ``S = m · r_short(lag)``.  The
  holder of the turn gets ``min(S, max over faces of L)`` — a new speaker is marked as soon
  as it holds the turn, but only while somebody visible has been in sync over the long
  window; every other face gets ``min(S, L)``, so the previous speaker loses the turn as
  fast.  Speech that matches no visible mouth leaves every L low, so nobody is marked
  however the turn moves;
* ``P(speaking) = sigmoid((s − r0) / width) · gate``, where the gate is 0 while no speech
  is heard (the VAD's mean over the last ``presence_span`` s < ``speech_on``) and rises to
  1 at ``speech_full``.

The envelope needs audio up to ``t + lag_max``, so the instant evaluated is
``min(t, audio_end − lag_max)`` — a fraction of a second behind the frame.  Everything
runs on the source's timestamps in the order items arrive, so a replay gives the same
numbers.

:class:`SpeakerDetector` is the interface the engine uses; a learned detector (a model
behind :meth:`~SpeakerDetector.update`) can replace :class:`SyncSpeakerDetector`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from emotiond.types import AudioChunk, FaceObservation

UPPER_LIP, LOWER_LIP = 13, 14  # inner lip midpoints (mediapipe face mesh)
EYE_OUTER_R, EYE_OUTER_L = 33, 263
JAW_OPEN = 25  # index of "jawOpen" in emotiond.face.landmarks.BLENDSHAPES

BIN = 0.01  # seconds per audio envelope bin


def mouth_opening(face: FaceObservation) -> float:
    """Lip aperture / eye-corner distance + ½ jawOpen (dimensionless, ~0 closed … ~0.5 wide open)."""
    pts = face.landmarks[[EYE_OUTER_R, EYE_OUTER_L, UPPER_LIP, LOWER_LIP], :2].tolist()
    iod = math.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1])
    if iod < 1e-6:
        return 0.0
    aperture = math.hypot(pts[3][0] - pts[2][0], pts[3][1] - pts[2][1])
    jaw = float(face.blendshapes[JAW_OPEN]) if face.blendshapes.shape[0] > JAW_OPEN else 0.0
    return aperture / iod + 0.5 * jaw


@dataclass(frozen=True)
class SpeakingParams:
    window: float = 3.0  # s, time constant of the long correlation window: is this face in sync at all
    short_window: float = 0.4  # s, … of the short one: who is in sync now (0: no short window)
    turn_window: float = 0.25  # s, time constant of the synchrony the turn model accumulates
    switch_cost: float = 0.08  # synchrony·seconds a face must gain on the holder of the turn to take it
    nobody_sync: float = 0.2  # the synchrony "nobody visible is speaking" stands for in the turn model
    lag_window: float = 5.0  # s, time constant of the source's lag profile (0: best lag per face and frame)
    warm: float = 0.5  # s, time constant of the shrinkage of a new track's correlation towards 0
    lag_min: float = -0.04  # s, audio earlier than the lips
    lag_max: float = 0.16  # s, audio later than the lips (the usual direction)
    lag_step: float = 0.04
    offset: float = 0.0  # s, known audio–video offset of the source (audio later = positive)
    mouth_ref: float = 0.02  # std of the mouth opening that counts as "moving"
    r0: float = 0.45  # synchrony at which P(speaking) = ½ (before the speech gate)
    width: float = 0.08  # sigmoid width
    speech_on: float = 0.3  # VAD probability (mean over presence_span) from which speech is heard
    speech_full: float = 0.5  # … from which P(speaking) is not reduced any more
    presence_span: float = 0.3  # s before the evaluated instant whose VAD says whether speech is heard
    smooth: float = 0.02  # s, half-width of the envelope's averaging around each instant
    forget_after: float = 2.0  # s a lost track keeps its state


@dataclass(frozen=True, slots=True)
class SpeakingState:
    """What the detector says about the frame it was last updated with."""

    speech: float  # speech presence (mean VAD probability of the last presence_span s), 0..1
    speaking: dict[int, float] = field(default_factory=dict)  # track id -> P(speaking)
    turn: int | None = None  # the track holding the turn (the detector's turn model), if any

    def speaker(self, threshold: float = 0.5) -> int | None:
        """The track judged to be talking: the turn holder if its probability is ≥ threshold
        (two faces can both look like speaking; the turn says whose voice it is), else the
        highest probability ≥ threshold, else None."""
        if self.turn is not None and self.speaking.get(self.turn, 0.0) >= threshold:
            return self.turn
        best = max(self.speaking.items(), key=lambda kv: (kv[1], -kv[0]), default=None)
        return best[0] if best is not None and best[1] >= threshold else None


class SpeakerDetector(Protocol):
    """The interface the engine uses; a learned detector can replace the synchrony one."""

    def insert_audio(self, chunk: AudioChunk) -> None: ...

    def update(self, t: float, faces: list[FaceObservation], vad: float | None) -> SpeakingState: ...

    def reset(self) -> None: ...


@dataclass
class _Track:
    times: deque = field(default_factory=deque)  # frame times
    values: deque = field(default_factory=deque)  # mouth opening per frame
    moments: list | None = None  # per window: exponentially weighted (E[o], E[o²]), E[e], E[e²], E[o·e] per lag
    n: int = 0  # instants accumulated
    first: float | None = None  # the first instant accumulated
    r: np.ndarray | None = None  # correlation per lag, long window
    r_short: np.ndarray | None = None  # correlation per lag, short window
    r_turn: np.ndarray | None = None  # correlation per lag, the turn model's window
    m: float = 0.0  # how much the mouth moves, 0..1
    score: float = 0.0  # synchrony the probability is computed from
    last_seen: float = 0.0


class SyncSpeakerDetector:
    """Audio-visual synchrony detector (see the module docstring)."""

    def __init__(self, params: SpeakingParams | None = None):
        self.p = params or SpeakingParams()
        p = self.p
        if p.lag_max < p.lag_min:
            raise ValueError(f"lag_max ({p.lag_max}) must not be below lag_min ({p.lag_min})")
        n = int(round((p.lag_max - p.lag_min) / p.lag_step)) + 1
        self._lags = p.offset + p.lag_min + p.lag_step * np.arange(n)
        self._windows: tuple[float, ...] = (p.window,)
        if p.short_window > 0:
            self._windows += (p.short_window,)
            if p.turn_window > 0 and p.turn_window != p.short_window:
                self._windows += (p.turn_window,)
        self._keep = max(0.0, p.offset + p.lag_max) + 1.0  # seconds of mouth history kept
        self._keep_audio = self._keep + max(0.0, -(p.offset + p.lag_min)) + p.presence_span + 0.5
        self.reset()

    def reset(self) -> None:
        self._tracks: dict[int, _Track] = {}
        self._bin0: int | None = None  # absolute bin index of _energy[0]
        self._energy = np.zeros(0)  # sum of squares per bin
        self._count = np.zeros(0)  # samples per bin
        self._audio_end: float | None = None
        self._cum: tuple[np.ndarray, np.ndarray] | None = None  # cumulative sums of the bins
        self._vad: deque = deque()  # (t, vad) per frame
        self._last_eval: float | None = None
        self._profile = np.zeros(self._lags.size)  # the speakers' correlation per lag, slowly averaged
        self._holder: int | None = None  # the track holding the turn (None: nobody visible)
        self._turn: dict[int, float] = {}  # track id -> score of holding the turn, relative to the holder's (≤ 0)
        self._nobody = 0.0  # … of "nobody visible holds the turn"

    # -- audio -----------------------------------------------------------------
    def insert_audio(self, chunk: AudioChunk) -> None:
        x = np.asarray(chunk.samples, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if x.size == 0:
            return
        t_samples = chunk.t + np.arange(x.size) / float(chunk.rate)
        bins = np.floor(t_samples / BIN).astype(np.int64)
        if self._bin0 is None:
            self._bin0 = int(bins[0])
        lo = int(bins[0]) - self._bin0
        hi = int(bins[-1]) - self._bin0 + 1
        if lo < 0:  # audio from before the kept history (out of order): ignore it
            keep = bins >= self._bin0
            x, bins = x[keep], bins[keep]
            if x.size == 0:
                return
            lo = 0
        if hi > self._energy.size:
            grow = hi - self._energy.size
            self._energy = np.concatenate([self._energy, np.zeros(grow)])
            self._count = np.concatenate([self._count, np.zeros(grow)])
        idx = bins - self._bin0
        self._energy += np.bincount(idx, weights=x.astype(np.float64) ** 2, minlength=self._energy.size)[: self._energy.size]
        self._count += np.bincount(idx, minlength=self._energy.size)[: self._energy.size]
        self._cum = None
        end = chunk.t + x.size / float(chunk.rate)
        self._audio_end = end if self._audio_end is None else max(self._audio_end, end)
        # forget audio older than the history we can still need
        drop = int((self._audio_end - self._keep_audio) / BIN) - self._bin0
        if drop > 0:
            self._energy, self._count = self._energy[drop:], self._count[drop:]
            self._bin0 += drop
            self._cum = None

    def _envelope(self, times: np.ndarray) -> np.ndarray:
        """RMS over ±``smooth`` around each time (NaN where no audio)."""
        if self._bin0 is None or self._energy.size == 0:
            return np.full(times.shape, np.nan)
        if self._cum is None:
            self._cum = (np.concatenate([[0.0], np.cumsum(self._energy)]), np.concatenate([[0.0], np.cumsum(self._count)]))
        ce, cc = self._cum
        n = self._energy.size
        c = np.floor(times / BIN).astype(np.int64) - self._bin0
        k = int(round(self.p.smooth / BIN))
        lo = np.clip(c - k, 0, n)
        hi = np.clip(c + k + 1, 0, n)
        cnt = cc[hi] - cc[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            rms = np.sqrt((ce[hi] - ce[lo]) / cnt)
        return np.where(cnt > 0, rms, np.nan)

    # -- frames ----------------------------------------------------------------
    def update(self, t: float, faces: list[FaceObservation], vad: float | None) -> SpeakingState:
        """One video frame: the faces (with track ids) and the VAD probability at ``t``
        (None without a VAD: loudness decides whether speech is heard)."""
        p = self.p
        for f in faces:
            tr = self._tracks.setdefault(f.track_id, _Track())
            tr.times.append(t)
            tr.values.append(mouth_opening(f))
            tr.last_seen = t
            while tr.times and tr.times[0] < t - self._keep:
                tr.times.popleft()
                tr.values.popleft()
        for tid in [k for k, tr in self._tracks.items() if t - tr.last_seen > p.forget_after]:
            del self._tracks[tid]
        self._vad.append((t, vad))
        while self._vad and self._vad[0][0] < t - self._keep_audio:
            self._vad.popleft()
        if self._audio_end is None:
            return SpeakingState(speech=0.0, speaking={f.track_id: 0.0 for f in faces})

        # the instant evaluated: audio must exist up to its latest lag
        end = min(t, self._audio_end - max(0.0, p.offset + p.lag_max))
        dt = 0.0 if self._last_eval is None else end - self._last_eval
        fresh = self._last_eval is None or dt > 0
        if fresh:
            self._last_eval = end
        presence = self._presence(end - p.presence_span, end)
        gate = min(1.0, presence / p.speech_full) if presence >= p.speech_on else 0.0
        env = self._envelope(end + self._lags) if fresh else None
        usable = env is not None and bool(np.all(np.isfinite(env)))
        env2 = env * env if usable else None
        trs = [self._tracks[f.track_id] for f in faces]
        if usable:
            for tr in trs:
                self._accumulate(tr, end, dt, env, env2)
        speech = usable and presence >= p.speech_on
        lag = self._lag(trs, dt, speech)
        turn = self._score([f.track_id for f in faces], trs, end, lag, dt if speech else 0.0)
        out = {}
        for f, tr in zip(faces, trs):
            prob = 1.0 / (1.0 + math.exp(-(tr.score - p.r0) / p.width))
            out[f.track_id] = prob * gate
        return SpeakingState(speech=presence, speaking=out, turn=turn)

    def _accumulate(self, tr: _Track, end: float, dt: float, env: np.ndarray, env2: np.ndarray) -> None:
        """Add the instant ``end`` to the track's exponentially weighted moments (time constants
        ``window`` and ``short_window``) and recompute its correlations per lag."""
        if not tr.times or tr.times[0] > end or tr.times[-1] < end - 0.1:
            return  # the face was not seen around that instant
        o = _interp(tr.times, tr.values, end)
        if tr.first is None:
            tr.first = end
        tr.n += 1
        windows = self._windows
        if tr.moments is None:
            tr.moments = [(np.array([o, o * o]), env.copy(), env2.copy(), o * env) for _ in windows]
        else:
            for w, (mo, me, mee, moe) in zip(windows, tr.moments):
                a = max(1.0 - math.exp(-max(dt, 0.0) / w), 1.0 / tr.n)
                mo += a * (np.array([o, o * o]) - mo)
                me += a * (env - me)
                mee += a * (env2 - mee)
                moe += a * (o * env - moe)
        rs = []
        for mo, me, mee, moe in tr.moments:
            vo = max(float(mo[1] - mo[0] * mo[0]), 0.0)
            if tr.n < 4 or vo <= 1e-12:
                rs.append(None)
                continue
            ve = mee - me * me
            r = (moe - mo[0] * me) / np.sqrt(np.maximum(ve, 1e-12) * vo)
            r[ve <= 1e-12] = 0.0
            rs.append(r)
        mo = tr.moments[0][0]
        tr.m = min(1.0, math.sqrt(max(float(mo[1] - mo[0] * mo[0]), 0.0)) / self.p.mouth_ref)
        tr.r = rs[0]
        tr.r_short = rs[1] if len(rs) > 1 else None
        tr.r_turn = rs[2] if len(rs) > 2 else tr.r_short

    def _lag(self, trs: list[_Track], dt: float, speech: bool) -> int | None:
        """The lag (index) every face is judged at: the source's audio–video lag, the peak of the
        lag profile — the correlation per lag of the face most in sync, averaged over
        ``lag_window`` while speech is heard.  None (``lag_window`` 0): each face's best lag."""
        p = self.p
        if p.lag_window <= 0:
            return None
        if speech:
            best = max((tr for tr in trs if tr.r is not None), default=None, key=lambda tr: tr.m * float(tr.r.max()))
            if best is not None:
                self._profile += (1.0 - math.exp(-max(dt, 0.0) / p.lag_window)) * (best.m * best.r - self._profile)
        if not self._profile.any():  # no evidence yet: the lag nearest the known offset
            return int(np.argmin(np.abs(self._lags - p.offset)))
        return int(np.argmax(self._profile))

    def _score(self, ids: list[int], trs: list[_Track], end: float, lag: int | None, dt: float) -> int | None:
        """Each face's synchrony.  Long window: m · r(lag), shrunk towards 0 while the track is
        new.  With a short window, the faces compete for the turn (:meth:`_take_turns`): the
        holder gets min(short, the best long synchrony of all faces) — a new speaker is marked
        as soon as it holds the turn, but only while somebody visible has been in sync over the
        long window; every other face gets min(short, long), so it loses a turn as fast."""
        p = self.p

        def at(r: np.ndarray | None) -> float:
            return 0.0 if r is None else float(r.max() if lag is None else r[lag])

        long, short, turn_sync = [], [], []
        for tr in trs:
            shrink = tr.m * (1.0 - math.exp(-(end - tr.first) / p.warm) if p.warm > 0 and tr.first is not None else 1.0)
            long.append(shrink * at(tr.r))
            short.append(shrink * at(tr.r_short))
            turn_sync.append(shrink * at(tr.r_turn))
        if p.short_window <= 0 or not trs:
            for tr, s in zip(trs, long):
                tr.score = s
            return None
        holder = self._take_turns(ids, turn_sync, dt)
        top = max(long)
        for i, tr in enumerate(trs):
            tr.score = min(short[i], top if ids[i] == holder else long[i])
        return holder

    def _take_turns(self, ids: list[int], sync: list[float], dt: float) -> int | None:
        """Who holds the turn (None: nobody visible): evidence accumulated over time, not the
        lead of one instant.

        One state per face ("this face holds the turn") and one for "nobody visible does",
        decoded online, Viterbi-style: while speech is heard each state's score gains its
        synchrony · dt (the face's synchrony over ``turn_window``; nobody's: ``nobody_sync``),
        and any state may take over from the best at a cost of ``switch_cost``, so scores stay
        within ``switch_cost`` of the holder's.  A challenger therefore takes the turn once its
        synchrony has exceeded the holder's by ``switch_cost`` synchrony·seconds in total (a
        lead of 0.5 in 0.16 s, a chance lead of 0.1 not before 0.8 s), and a holder keeps it
        through a moment's dip.  When the turn changes, every other state starts again from
        the full cost, so the one who just lost it cannot take it straight back on a
        fluctuation.  (A cumulative-sum change detector, Page 1954.)"""
        p = self.p
        turn = self._turn
        for tid in [k for k in turn if k not in self._tracks]:
            del turn[tid]  # a track forgotten
        for tid in ids:
            turn.setdefault(tid, max([self._nobody, *turn.values()]) - p.switch_cost)  # a new face starts as a challenger
        if dt > 0:
            best = max([self._nobody, *turn.values()])
            for tid, g in zip(ids, sync):
                turn[tid] = max(turn[tid], best - p.switch_cost) + g * dt
            self._nobody = max(self._nobody, best - p.switch_cost) + p.nobody_sync * dt
            best = max([self._nobody, *turn.values()])
            for tid in turn:
                turn[tid] -= best
            self._nobody -= best
        # the holder, among the faces in view (ties: the current holder)
        face = max(ids, key=lambda tid: (turn[tid], tid == self._holder, -tid), default=None)
        holder = face
        if face is None or self._nobody > turn[face] or (self._nobody == turn[face] and self._holder is None):
            holder = None
        if holder != self._holder:
            for tid in turn:  # a new turn: every other state starts again from the full cost
                if tid != holder:
                    turn[tid] = -p.switch_cost
            if holder is not None:
                self._nobody = -p.switch_cost
            self._holder = holder
        return holder

    def _presence(self, start: float, end: float) -> float:
        """Speech presence of [start, end]: mean VAD probability of the frames in it; without a
        VAD, the fraction of 40 ms steps louder than −40 dBFS."""
        vals = [v for ts, v in self._vad if start <= ts <= end and v is not None]
        if vals:
            return float(np.mean(vals))
        if any(v is not None for _, v in self._vad):
            return 0.0
        env = self._envelope(np.arange(start, end, BIN * 4))
        env = env[np.isfinite(env)]
        return float(np.mean(env > 0.01)) if env.size else 0.0


def _interp(times: deque, values: deque, t: float) -> float:
    """The mouth opening at ``t``, linearly interpolated between the frames around it."""
    for i in range(len(times) - 1, 0, -1):
        if times[i - 1] <= t:
            t0, t1 = times[i - 1], times[i]
            if t >= t1 or t1 <= t0:
                return float(values[i])
            w = (t - t0) / (t1 - t0)
            return float(values[i - 1] + w * (values[i] - values[i - 1]))
    return float(values[0])
