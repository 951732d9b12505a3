"""Late fusion of per-modality emotion distributions.  Pure, no I/O.

The math (also in docs/fusion.md):

For modalities m with distribution p_m over their covered classes S_m,
reliability r_m ∈ [0, 1] and configured weight w_m, the effective weight is
a_m = w_m · r_m and modality m's share of the result is a_m / Σ a.

A modality that covers only some classes (a voice model without "neutral")
says nothing about the others.  It is extended to all classes against a
reference q — the pooled distribution of the full-coverage modalities present,
or the uniform distribution when there are none:

    p̃_m(c) = p_m(c) · q(S_m)   for c ∈ S_m
    p̃_m(c) = q(c)              for c ∉ S_m

so it keeps q's total mass on the classes it cannot see and only redistributes
the mass inside S_m.  The instantaneous fused distribution is the linear
opinion pool f = Σ a_m p̃_m / Σ a_m.  With no modality present (Σ a = 0) there
is no result.

Temporal smoothing is an exponential moving average with time constant τ on
irregular timestamps: s ← s + (1 − e^(−Δt/τ)) (f − s).  After ``reset_after``
seconds without evidence the average restarts from the next f.
"""

from __future__ import annotations

import math

import numpy as np

from emotiond.labels import EMOTIONS, valence_arousal
from emotiond.types import FusedResult, ModalityEvidence

K = len(EMOTIONS)
ALL = np.ones(K, dtype=bool)


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


def evidence(name: str, probs: np.ndarray, reliability: float, covered: np.ndarray | None = None) -> ModalityEvidence:
    """Build a validated :class:`ModalityEvidence` (renormalised over the covered classes)."""
    cov = ALL.copy() if covered is None else np.asarray(covered, dtype=bool)
    p = np.where(cov, np.clip(np.asarray(probs, dtype=np.float64), 0.0, None), 0.0)
    total = p.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"{name}: probabilities over the covered classes sum to {total}")
    return ModalityEvidence(name=name, probs=p / total, covered=cov, reliability=float(np.clip(reliability, 0.0, 1.0)))


def pool(items: list[ModalityEvidence], weights: dict[str, float]) -> tuple[np.ndarray, dict[str, float]] | None:
    """Instantaneous fused distribution and shares; ``None`` when nothing usable is present."""
    active = [(e, weights.get(e.name, 1.0) * e.reliability) for e in items]
    active = [(e, a) for e, a in active if a > 0]
    total = sum(a for _, a in active)
    if total <= 0:
        return None
    full = [(e, a) for e, a in active if e.covered.all()]
    if full:
        ref = sum(a * e.probs for e, a in full) / sum(a for _, a in full)
    else:
        ref = np.full(K, 1.0 / K)
    fused = np.zeros(K)
    for e, a in active:
        if e.covered.all():
            ext = e.probs
        else:
            ext = np.where(e.covered, e.probs * ref[e.covered].sum(), ref)
        fused += a * ext
    fused /= total
    shares = {e.name: a / total for e, a in active}
    for e in items:
        shares.setdefault(e.name, 0.0)
    return fused, shares


class FusionScorer:
    """Stateful wrapper: pooling plus exponential smoothing over time."""

    def __init__(self, weights: dict[str, float] | None = None, smoothing_tau: float = 0.5, reset_after: float = 2.0):
        self.weights = dict(weights or {})
        self.smoothing_tau = smoothing_tau
        self.reset_after = reset_after
        self.reset()

    def reset(self) -> None:
        self._state: np.ndarray | None = None
        self._shares: dict[str, float] = {}
        self._last_t: float | None = None

    def update(self, t: float, items: list[ModalityEvidence]) -> FusedResult | None:
        pooled = pool(items, self.weights)
        if pooled is None:
            if self._last_t is not None and t - self._last_t > self.reset_after:
                self.reset()
            return None
        fused, shares = pooled
        if self._state is None or self._last_t is None or t - self._last_t > self.reset_after or self.smoothing_tau <= 0:
            self._state, self._shares = fused, shares
        else:
            alpha = 1.0 - math.exp(-max(0.0, t - self._last_t) / self.smoothing_tau)
            self._state = self._state + alpha * (fused - self._state)
            names = set(self._shares) | set(shares)
            self._shares = {
                n: self._shares.get(n, 0.0) + alpha * (shares.get(n, 0.0) - self._shares.get(n, 0.0)) for n in names
            }
        self._last_t = t
        probs = self._state / self._state.sum()
        total_share = sum(self._shares.values()) or 1.0
        idx = int(np.argmax(probs))
        v, a = valence_arousal(probs)
        return FusedResult(
            probs=probs,
            label=EMOTIONS[idx],
            confidence=float(probs[idx]),
            shares={n: s / total_share for n, s in sorted(self._shares.items())},
            valence=v,
            arousal=a,
        )
