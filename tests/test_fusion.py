import numpy as np
import pytest

from emotiond.fusion import FusionScorer, confidence_factor, evidence, normalised_entropy, pool, pool_detail
from emotiond.labels import EMOTIONS, INDEX, valence_arousal

K = len(EMOTIONS)


def onehot(name, p=0.9):
    v = np.full(K, (1 - p) / (K - 1))
    v[INDEX[name]] = p
    return v


VOICE_CLASSES = ["angry", "disgust", "fear", "happy", "sad"]
VOICE_COV = np.array([e in VOICE_CLASSES for e in EMOTIONS])


def test_single_modality_passes_through_and_sums_to_one():
    fused, shares = pool([evidence("face", onehot("happy"), 1.0)], {})
    assert fused.sum() == pytest.approx(1.0)
    assert EMOTIONS[int(np.argmax(fused))] == "happy"
    assert shares == {"face": 1.0}


def test_missing_modality_gives_no_result_and_absent_reliability_is_ignored():
    assert pool([], {}) is None
    assert pool([evidence("face", onehot("sad"), 0.0)], {}) is None
    scorer = FusionScorer()
    assert scorer.update(0.0, []) is None


def test_weights_move_with_reliability():
    face = onehot("happy")
    voice_p = np.where(VOICE_COV, 0.0, 0.0)
    voice_p[INDEX["angry"]] = 1.0
    shares_hi = pool([evidence("face", face, 0.9), evidence("voice", voice_p, 0.2, VOICE_COV)], {})[1]
    shares_lo = pool([evidence("face", face, 0.2), evidence("voice", voice_p, 0.9, VOICE_COV)], {})[1]
    assert shares_hi["face"] > shares_hi["voice"]
    assert shares_lo["voice"] > shares_lo["face"]
    assert sum(shares_hi.values()) == pytest.approx(1.0)
    # configured weights scale the same way: the voice holds 3/4 of the weight, and its share is
    # that weight times the mass of the classes it can see (the face puts 0.9667 there)
    shares_w = pool([evidence("face", face, 0.5), evidence("voice", voice_p, 0.5, VOICE_COV)], {"voice": 3.0})[1]
    assert shares_w["voice"] == pytest.approx(0.75 * face[VOICE_COV].sum())


def test_partial_coverage_keeps_reference_mass_on_uncovered_classes():
    face = onehot("neutral", 0.6)
    voice_p = np.zeros(K)
    voice_p[INDEX["sad"]] = 1.0
    fused, _ = pool([evidence("face", face, 1.0), evidence("voice", voice_p, 1.0, VOICE_COV)], {})
    assert fused.sum() == pytest.approx(1.0)
    # the voice cannot see neutral/surprise: their mass is the face's
    for name in ("neutral", "surprise"):
        assert fused[INDEX[name]] == pytest.approx(face[INDEX[name]])
    # inside its classes the voice moves mass to sad
    assert fused[INDEX["sad"]] > face[INDEX["sad"]]


def test_partial_modality_alone_uses_uniform_reference():
    voice_p = np.zeros(K)
    voice_p[INDEX["angry"]] = 1.0
    fused, shares = pool([evidence("voice", voice_p, 1.0, VOICE_COV)], {})
    assert fused.sum() == pytest.approx(1.0)
    assert fused[INDEX["neutral"]] == pytest.approx(1 / K)
    assert EMOTIONS[int(np.argmax(fused))] == "angry"
    assert shares == {"voice": 1.0}


def test_smoothing_time_constant():
    s = FusionScorer(smoothing_tau=1.0)
    s.update(0.0, [evidence("face", onehot("happy", 1.0 - 1e-9), 1.0)])
    r = s.update(1.0, [evidence("face", onehot("sad", 1.0 - 1e-9), 1.0)])
    # after one time constant 1 - 1/e of the step is reached
    assert r.probs[INDEX["sad"]] == pytest.approx(1 - np.exp(-1), abs=1e-3)
    off = FusionScorer(smoothing_tau=0.0)
    off.update(0.0, [evidence("face", onehot("happy"), 1.0)])
    assert off.update(0.1, [evidence("face", onehot("sad"), 1.0)]).label == "sad"


def test_smoothing_restarts_after_a_gap():
    s = FusionScorer(smoothing_tau=10.0, reset_after=1.0)
    s.update(0.0, [evidence("face", onehot("happy"), 1.0)])
    assert s.update(0.5, []) is None
    r = s.update(3.0, [evidence("face", onehot("sad"), 1.0)])
    assert r.label == "sad" and r.probs[INDEX["sad"]] == pytest.approx(0.9)


def test_entropy_and_confidence():
    assert normalised_entropy(np.full(K, 1 / K)) == pytest.approx(1.0)
    assert normalised_entropy(onehot("happy", 1.0)) == pytest.approx(0.0, abs=1e-9)
    assert confidence_factor(np.full(K, 1 / K)) == pytest.approx(0.25)
    assert confidence_factor(onehot("happy", 0.99)) > 0.9


def test_evidence_rejects_garbage():
    with pytest.raises(ValueError):
        evidence("face", np.zeros(K), 1.0)


def test_valence_arousal_mapping():
    v, a = valence_arousal(onehot("happy", 1.0))
    assert v > 0.5 and a > 0.3
    v, a = valence_arousal(onehot("sad", 1.0))
    assert v < -0.5 and a < 0
    assert valence_arousal(onehot("neutral", 1.0)) == pytest.approx((0.0, 0.0))


def _voice(name, p=1.0, cov=VOICE_COV):
    v = np.where(cov, (1 - p) / max(1, cov.sum() - 1), 0.0)
    v[INDEX[name]] = p
    return v


@pytest.mark.parametrize("face_label,voice_label,cov", [
    ("happy", "angry", VOICE_COV), ("neutral", "sad", VOICE_COV), ("surprise", "fear", VOICE_COV),
    ("happy", "sad", np.array([e != "surprise" for e in EMOTIONS])), ("sad", "happy", np.ones(K, bool)),
])
@pytest.mark.parametrize("r_face,r_voice", [(0.9, 0.3), (0.4, 0.8)])
def test_shares_equal_each_modalitys_influence(face_label, voice_label, cov, r_face, r_voice):
    """Recomputation: the voice's share is exactly how far its output can move the fused
    distribution (total variation, weights held fixed), and the contributions add up to it."""
    face = onehot(face_label, 0.8)
    detail = pool_detail([evidence("face", face, r_face), evidence("voice", _voice(voice_label, 0.7, cov), r_voice, cov)],
                         {}, neutral_discount={})
    assert sum(detail.contributions.values()) == pytest.approx(detail.fused)
    assert sum(detail.shares.values()) == pytest.approx(1.0)
    for name, c in detail.contributions.items():
        assert detail.shares[name] == pytest.approx(c.sum()) and np.all(c >= -1e-12)
    # move the voice to every point mass it can express (weights fixed): the largest TV change
    fused = {}
    for e in np.array(EMOTIONS)[cov]:
        fused[e] = pool([evidence("face", face, r_face), evidence("voice", _voice(e, 1.0, cov), r_voice, cov)], {},
                        neutral_discount={})[0]
    tv = max(0.5 * np.abs(fused[a] - fused[b]).sum() for a in fused for b in fused)
    assert detail.shares["voice"] == pytest.approx(tv, abs=1e-9)
    # and the voice changes the fused mass of the classes it cannot see by nothing at all
    for f in fused.values():
        assert np.allclose(f[~cov], detail.fused[~cov])
    # the face's share is the rest: what the voice does not decide
    assert detail.shares["face"] == pytest.approx(1.0 - tv)


def test_a_voice_that_cannot_see_the_faces_class_has_almost_no_share():
    """The old complaint: a voice without neutral got 32-55 % of a neutral face's result."""
    face = onehot("neutral", 0.9)
    shares = pool([evidence("face", face, 0.9), evidence("voice", _voice("angry"), 0.9, VOICE_COV)], {})[1]
    assert shares["voice"] == pytest.approx(0.5 * face[VOICE_COV].sum())
    assert shares["voice"] < 0.06


def test_neutral_voice_does_not_dilute_a_confident_face():
    cov = np.array([e != "surprise" for e in EMOTIONS])
    face = onehot("happy", 0.9)
    face_only = pool([evidence("face", face, 0.8)], {})[0]
    both = pool_detail([evidence("face", face, 0.8), evidence("voice", _voice("neutral", 0.9, cov), 0.8, cov)], {})
    assert EMOTIONS[int(np.argmax(both.fused))] == "happy"
    assert both.fused[INDEX["happy"]] > 0.85 * face_only[INDEX["happy"]]
    assert valence_arousal(both.fused)[0] > 0.85 * valence_arousal(face_only)[0]
    # alone, the same neutral voice is still heard as neutral
    alone = pool([evidence("voice", _voice("neutral", 0.9, cov), 0.8, cov)], {})[0]
    assert EMOTIONS[int(np.argmax(alone))] == "neutral"


def test_fused_arousal_mixes_the_voices_own_estimate_by_share():
    cov = np.array([e != "surprise" for e in EMOTIONS])
    face = onehot("neutral", 0.9)
    calm = pool_detail([evidence("face", face, 0.5), evidence("voice", _voice("angry", 0.6, cov), 0.5, cov, arousal=-0.5)], {})
    loud = pool_detail([evidence("face", face, 0.5), evidence("voice", _voice("angry", 0.6, cov), 0.5, cov, arousal=0.9)], {})
    face_a = valence_arousal(face)[1]
    assert calm.arousal == pytest.approx(calm.shares["face"] * face_a + calm.shares["voice"] * -0.5)
    assert loud.arousal > calm.arousal
    r = FusionScorer(smoothing_tau=0).update(0.0, [evidence("voice", _voice("angry", 0.6, cov), 0.5, cov, arousal=0.9)])
    assert r.arousal == pytest.approx(0.9)


@pytest.mark.parametrize("reliability, label", [(0.029, "uncertain"), (0.9, "sad")])
def test_a_voice_alone_gets_a_label_only_as_far_as_its_model_was_measured(reliability, label):
    """No face: the frame's result is the voice's.  A voice model measured near chance on corpora it
    was not trained on (the shipped card: 0.029) says "uncertain"; a reliable one names its class."""
    from emotiond.people import People

    people = People({"face": 1.0, "voice": 1.0}, uncertain_below=0.3)
    voice = evidence("voice", onehot("sad"), reliability, VOICE_COV)
    res = people.update(0.0, [], None, voice)
    assert res.primary is None and res.fused is res.offscreen and res.fused is not None
    assert res.fused.label == label
    assert np.argmax(res.fused.probs) == INDEX["sad"]  # the distribution is kept either way
