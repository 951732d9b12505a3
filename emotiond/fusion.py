"""Late fusion of per-modality emotion distributions.  Pure, no I/O.

The math (also in docs/fusion.md):

For modalities m with distribution p_m over their covered classes S_m,
reliability r_m ∈ [0, 1] and configured weight w_m, the effective weight is
a_m = w_m · r_m · (1 − d_m · p_m(neutral)) (d_voice = 0.95: a calm voice does not
dilute a confident face) and π_m = a_m / Σ a.

A modality that covers only some classes (a voice model without "neutral")
says nothing about the others.  It is extended to all classes against a
reference q — the pooled distribution of the full-coverage modalities present,
or the uniform distribution when there are none:

    p̃_m(c) = p_m(c) · q(S_m)   for c ∈ S_m
    p̃_m(c) = q(c)              for c ∉ S_m

so it keeps q's total mass on the classes it cannot see and only redistributes
the mass inside S_m.  The instantaneous fused distribution is the linear
opinion pool f = Σ π_m p̃_m.  With no modality present (Σ a = 0) there
is no result.

Shares are each modality's real influence: f is decomposed exactly into
non-negative contributions C_m (Σ C_m = f; the mass a partial modality borrows
from the reference q on classes it cannot see is credited to the full
modalities that make q) and share_m = Σ_c C_m(c) — the largest total-variation
change of f that changing m's output alone can cause.  Arousal is the
share-weighted mean of the modalities' own arousal estimates.

Temporal smoothing is an exponential moving average with time constant τ on
irregular timestamps: s ← s + (1 − e^(−Δt/τ)) (f − s).  After ``reset_after``
seconds without evidence the average restarts from the next f.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from emotiond.labels import EMOTIONS, valence_arousal
from emotiond.types import FusedResult, ModalityEvidence

K = len(EMOTIONS)
ALL = np.ones(K, dtype=bool)
_NEUTRAL = EMOTIONS.index("neutral")


def normalised_entropy(probs: np.ndarray, covered: np.ndarray | None = None) -> float:
    """Entropy of ``probs`` over the covered classes, divided by its maximum (0 = certain, 1 = uniform)."""
    p = np.asarray(probs, dtype=np.float64)
    if covered is not None:
        p = p[np.asarray(covered, dtype=bool)]
    n = p.size
    if n <= 1:
        return 0.0
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(n))


def confidence_factor(probs: np.ndarray, covered: np.ndarray | None = None, floor: float = 0.25) -> float:
    """Reliability factor from model entropy: ``floor`` for a uniform output, 1 for a certain one."""
    return floor + (1.0 - floor) * (1.0 - normalised_entropy(probs, covered))


def evidence(name: str, probs: np.ndarray, reliability: float, covered: np.ndarray | None = None,
             arousal: float | None = None) -> ModalityEvidence:
    """Build a validated :class:`ModalityEvidence` (renormalised over the covered classes)."""
    cov = ALL.copy() if covered is None else np.asarray(covered, dtype=bool)
    p = np.where(cov, np.clip(np.asarray(probs, dtype=np.float64), 0.0, None), 0.0)
    total = p.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"{name}: probabilities over the covered classes sum to {total}")
    return ModalityEvidence(name=name, probs=p / total, covered=cov, reliability=float(np.clip(reliability, 0.0, 1.0)),
                            arousal=None if arousal is None else float(np.clip(arousal, -1.0, 1.0)))


@dataclass
class Pooled:
    """One instant of fusion: the fused distribution and how it decomposes into modalities."""

    fused: np.ndarray  # [K], sums to 1
    weights: dict[str, float]  # effective weight a_m
    contributions: dict[str, np.ndarray]  # [K] per modality; they sum to ``fused``
    shares: dict[str, float]  # total mass of each contribution (sums to 1)
    arousal: float  # share-weighted mean of the modalities' arousal

    def as_tuple(self) -> tuple[np.ndarray, dict[str, float]]:
        return self.fused, self.shares


DEFAULT_NEUTRAL_DISCOUNT = {"voice": 0.95}


def effective_weight(e: ModalityEvidence, weights: dict[str, float], neutral_discount: dict[str, float]) -> float:
    """a_m = w_m · r_m · (1 − d_m · p_m(neutral)).

    ``d_m`` (``neutral_discount``, 0.95 for the voice by default) makes a calm voice weak
    evidence: a voice that hears neutral speech says little about what the face shows, so it
    must not dilute a confident face.  Alone, a modality's weight does not matter (the pool
    is normalised), so voice-only neutral speech still comes out neutral."""
    a = weights.get(e.name, 1.0) * e.reliability
    d = neutral_discount.get(e.name, 0.0)
    if d and e.covered[_NEUTRAL]:
        a *= 1.0 - d * float(e.probs[_NEUTRAL])
    return max(0.0, a)


def pool_detail(items: list[ModalityEvidence], weights: dict[str, float],
                neutral_discount: dict[str, float] | None = None) -> Pooled | None:
    """The instantaneous fused distribution with its exact decomposition; ``None`` when nothing
    usable is present.  See docs/fusion.md for the definitions."""
    nd = DEFAULT_NEUTRAL_DISCOUNT if neutral_discount is None else neutral_discount
    active = [(e, effective_weight(e, weights, nd)) for e in items]
    active = [(e, a) for e, a in active if a > 0]
    total = sum(a for _, a in active)
    if total <= 0:
        return None
    full = [(e, a) for e, a in active if e.covered.all()]
    a_full = sum(a for _, a in full)
    ref = np.asarray(sum(a * e.probs for e, a in full) / a_full, dtype=float) if full else np.full(K, 1.0 / K)
    fused = np.zeros(K)
    contrib = {e.name: np.zeros(K) for e, _ in active}
    borrowed = np.zeros(K)  # mass partial modalities take from the reference on classes they cannot see
    for e, a in active:
        pi = a / total
        if e.covered.all():
            ext = e.probs
            contrib[e.name] += pi * e.probs
        else:
            ext = np.where(e.covered, e.probs * ref[e.covered].sum(), ref)
            own = np.where(e.covered, ext, 0.0)
            contrib[e.name] += pi * own
            if full:
                borrowed += pi * np.where(e.covered, 0.0, ref)
            else:  # no full-coverage modality: the uniform reference is this modality's own "don't know"
                contrib[e.name] += pi * np.where(e.covered, 0.0, ref)
        fused += a * ext
    fused /= total
    if full:  # the reference is the full modalities' pool: split borrowed mass by what each put there
        num = {e.name: a * e.probs for e, a in full}
        den = sum(num.values())
        for name, v in num.items():
            contrib[name] += borrowed * np.divide(v, den, out=np.zeros(K), where=den > 0)
    mass = sum(float(c.sum()) for c in contrib.values())  # 1 up to rounding
    shares = {name: float(c.sum()) / mass for name, c in contrib.items()}
    arousal = 0.0
    for e, _ in active:
        own_a = e.arousal if e.arousal is not None else valence_arousal(e.probs)[1]
        arousal += shares[e.name] * own_a
    for e in items:
        shares.setdefault(e.name, 0.0)
    return Pooled(fused, {e.name: a for e, a in active}, contrib, shares, float(arousal))


def pool(items: list[ModalityEvidence], weights: dict[str, float],
         neutral_discount: dict[str, float] | None = None) -> tuple[np.ndarray, dict[str, float]] | None:
    """Instantaneous fused distribution and shares; ``None`` when nothing usable is present."""
    p = pool_detail(items, weights, neutral_discount)
    return None if p is None else p.as_tuple()


class FusionScorer:
    """Stateful wrapper: pooling plus exponential smoothing over time."""

    def __init__(self, weights: dict[str, float] | None = None, smoothing_tau: float = 0.5, reset_after: float = 2.0,
                 neutral_discount: dict[str, float] | None = None):
        self.weights = dict(weights or {})
        self.neutral_discount = dict(DEFAULT_NEUTRAL_DISCOUNT if neutral_discount is None else neutral_discount)
        self.smoothing_tau = smoothing_tau
        self.reset_after = reset_after
        self.reset()

    def reset(self) -> None:
        self._state: np.ndarray | None = None
        self._arousal = 0.0
        self._shares: dict[str, float] = {}
        self._last_t: float | None = None

    def update(self, t: float, items: list[ModalityEvidence]) -> FusedResult | None:
        pooled = pool_detail(items, self.weights, self.neutral_discount)
        if pooled is None:
            if self._last_t is not None and t - self._last_t > self.reset_after:
                self.reset()
            return None
        fused, shares = pooled.fused, pooled.shares
        if self._state is None or self._last_t is None or t - self._last_t > self.reset_after or self.smoothing_tau <= 0:
            self._state, self._shares, self._arousal = fused, shares, pooled.arousal
        else:
            alpha = 1.0 - math.exp(-max(0.0, t - self._last_t) / self.smoothing_tau)
            self._state = self._state + alpha * (fused - self._state)
            self._arousal = self._arousal + alpha * (pooled.arousal - self._arousal)
            names = set(self._shares) | set(shares)
            self._shares = {
                n: self._shares.get(n, 0.0) + alpha * (shares.get(n, 0.0) - self._shares.get(n, 0.0)) for n in names
            }
        self._last_t = t
        probs = self._state / self._state.sum()
        total_share = sum(self._shares.values()) or 1.0
        idx = int(np.argmax(probs))
        v, _ = valence_arousal(probs)
        a = float(np.clip(self._arousal, -1.0, 1.0))
        return FusedResult(
            probs=probs,
            label=EMOTIONS[idx],
            confidence=float(probs[idx]),
            shares={n: s / total_share for n, s in sorted(self._shares.items())},
            valence=v,
            arousal=a,
        )
