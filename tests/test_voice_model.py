"""The shipped voice-emotion model (models/voice_emotion.onnx), run for real with onnxruntime."""

from __future__ import annotations

import hashlib
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotiond import labels, registry
from emotiond.audio import features, prosody
from emotiond.audio.voice_model import VoiceEmotionModel
from emotiond.errors import ModelError

SPEECH = Path(__file__).parent / "data" / "speech_en_espeak.flac"


@pytest.fixture(scope="module")
def model():
    return VoiceEmotionModel.from_registry(provider="cpu")


@pytest.fixture(scope="module")
def speech_16k():
    x, rate = sf.read(SPEECH, dtype="float32")
    return features.to_16k_mono(x, rate)


@pytest.fixture(scope="module")
def card():
    return tomllib.loads(registry.card("voice_emotion").card_path.read_text(encoding="utf-8"))


def test_output_is_a_distribution_over_covered_classes_including_neutral(model, speech_16k):
    p = model.predict(speech_16k)
    assert p.shape == (len(labels.EMOTIONS),) and p.dtype == np.float32
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(p >= 0) and np.all(p[~model.covered] == 0)
    c = registry.card("voice_emotion")
    expect = np.array([e in {labels.canonical(k) for k in c.classes} for e in labels.EMOTIONS])
    assert np.array_equal(model.covered, expect)
    assert model.covered[labels.INDEX["neutral"]], "the model must be able to say neutral"


def test_analyse_gives_probs_arousal_and_speechness(model, speech_16k):
    out = model.analyse(speech_16k[16000:48000])
    assert out.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert -1.0 <= out.arousal <= 1.0
    assert out.is_speech and out.features.shape == (prosody.N_FEATURES,)
    # a speaker baseline changes what the model sees (a known speaker), the cold one is the population
    b = model.new_baseline()
    for w in model.windows(speech_16k):
        b.update(prosody.utterance_features(w))
    warm = model.analyse(speech_16k[16000:48000], b)
    assert not np.allclose(warm.probs, out.probs)


def test_silence_gives_no_evidence(model):
    silent = np.zeros(32000, np.float32)
    p = model.predict(silent)
    assert np.allclose(p[model.covered], 1.0 / model.covered.sum())
    ev = model.evidence(silent, speech=0.9)
    assert ev.reliability == 0.0 and ev.name == "voice"
    assert model.evidence(np.zeros(0, np.float32)).reliability == 0.0


def test_card_describes_the_model_and_its_measured_reliability(model, card):
    c = registry.resolve("voice_emotion")
    assert c.size < 5_000_000, "model <= 5 MB"
    inp = model._model.session.get_inputs()[0]
    assert inp.name == "features" and inp.shape[1] == prosody.N_FEATURES
    assert card["input"]["feature_names"] == prosody.FEATURE_NAMES
    assert [o.name for o in model._model.session.get_outputs()] == ["probs", "arousal"]
    assert card["reliability"]["cross_corpus"] == pytest.approx(model.reliability)
    assert 0.0 <= model.reliability <= 1.0
    assert card["calibration"]["temperature"] > 0
    acc = card["accuracy"]
    assert set(acc["in_corpus"]) >= {"emofilm", "polish"}
    loco = acc["leave_one_corpus_out"]
    assert set(loco) >= {"emofilm", "polish"}
    for held, modes in loco.items():
        for mode in ("speaker_baseline", "cold"):
            s = modes[mode]
            assert held not in s["trained_on"]
            cm = np.asarray(s["confusion"])
            assert cm.shape == (len(s["classes"]), len(s["predicted_classes"])) and cm.sum() == s["n"]
            assert 0 <= s["ece"] <= 1 and 0 <= s["unweighted_accuracy"] <= 1
            assert s["ua_seeds"][0] == s["unweighted_accuracy"]  # the other figures are the first seed's
            assert s["ua_mean"] == pytest.approx(np.mean(s["ua_seeds"]), abs=1e-4)
    # the fusion weight is the chance-corrected leave-one-corpus-out UA (mean over the training seeds),
    # as the card says
    kappas = [max(0.0, (m["speaker_baseline"]["ua_mean"] - m["speaker_baseline"]["chance_ua"])
                  / (1 - m["speaker_baseline"]["chance_ua"])) for m in loco.values()]
    assert model.reliability == pytest.approx(np.mean(kappas), abs=1e-3)


def test_onnx_matches_the_card_temperature_and_baseline(model, speech_16k):
    """What the graph computes from normalised features is a softmax: rows sum to 1; zero
    features (= exactly the speaker's baseline) give a valid distribution and arousal."""
    probs, arousal = model.run(np.zeros((3, prosody.N_FEATURES), np.float32))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5) and arousal.shape == (3,)
    with pytest.raises(ValueError):
        model.run(np.zeros((1, 7), np.float32))


def _copy_models(tmp_path: Path, name: str = "voice_emotion") -> Path:
    src = registry.default_models_dir()
    dst = tmp_path / "models"
    dst.mkdir(exist_ok=True)
    shutil.copy(src / "voice_emotion.onnx", dst / f"{name}.onnx")
    text = (src / "voice_emotion.card.toml").read_text(encoding="utf-8")
    (dst / f"{name}.card.toml").write_text(text.replace('file = "voice_emotion.onnx"', f'file = "{name}.onnx"'),
                                           encoding="utf-8")
    return dst


def test_corrupt_model_raises_model_error(tmp_path):
    d = _copy_models(tmp_path)
    onnx = d / "voice_emotion.onnx"
    onnx.write_bytes(onnx.read_bytes()[:100])
    with pytest.raises(ModelError, match="truncated"):
        VoiceEmotionModel.from_registry(d)
    junk = b"not an onnx model" * 100
    onnx.write_bytes(junk)
    card = (d / "voice_emotion.card.toml").read_text(encoding="utf-8")
    card = re.sub(r'(?m)^sha256 = ".*"$', f'sha256 = "{hashlib.sha256(junk).hexdigest()}"', card)
    card = re.sub(r"(?m)^size = \d+$", f"size = {len(junk)}", card)
    (d / "voice_emotion.card.toml").write_text(card, encoding="utf-8")
    with pytest.raises(ModelError, match="cannot load"):
        VoiceEmotionModel.from_registry(d)


@pytest.mark.parametrize("table", ["[baseline]", "[input]"])
def test_card_without_baseline_or_input_raises_model_error(tmp_path, table):
    d = _copy_models(tmp_path)
    p = d / "voice_emotion.card.toml"
    p.write_text(p.read_text(encoding="utf-8").replace(table, table[:-1] + "_gone]"), encoding="utf-8")
    with pytest.raises(ModelError, match="not usable"):
        VoiceEmotionModel.from_registry(d)


def test_user_model_by_path_and_its_card_reliability(tmp_path):
    """voice.model = path: a user-trained model (here: the shipped one under another name, its card
    claiming another reliability) is loaded from its card, and that reliability is its weight."""
    d = _copy_models(tmp_path, "my_voice")
    p = d / "my_voice.card.toml"
    p.write_text(re.sub(r"(?m)^cross_corpus = .*$", "cross_corpus = 0.5", p.read_text(encoding="utf-8")),
                 encoding="utf-8")
    for path in (d / "my_voice.onnx", d / "my_voice.card.toml"):
        m = VoiceEmotionModel.from_path(path, provider="cpu")
        assert m.name == "my_voice" and m.reliability == 0.5
    with pytest.raises(ModelError, match="no voice model card"):
        VoiceEmotionModel.from_path(tmp_path / "nothing.onnx")


def test_voice_track_uses_the_configured_model(tmp_path):
    from emotiond.config import load_config
    from emotiond.voice import VoiceTrack

    d = _copy_models(tmp_path, "my_voice")
    cfg = load_config(overrides={"voice.model": str(d / "my_voice.onnx")})
    track = VoiceTrack.from_config(cfg)
    assert track.model.name == "my_voice"
    assert track.cards[1].path == d / "my_voice.onnx"
    track.close()


def test_evaluate_voice_dir_scores_lacking_classes_as_errors(tmp_path, speech_16k, model):
    """A class the model cannot output (surprise) is scored: all its clips are errors, and the
    confusion matrix shows where they went; several corpora are reported one by one."""
    from emotiond.evaluate import evaluate_voice_dir

    corpora = []
    for k in range(2):
        root = tmp_path / f"corpus{k}"
        for label in ("anger", "surprised", "neutral"):
            (root / label).mkdir(parents=True)
            for spk in ("a", "b"):
                sf.write(root / label / f"{spk}_{label}.wav", speech_16k[8000 * k : 8000 * k + 40000], 16000)
        corpora.append(root)
    one = evaluate_voice_dir(corpora[0], provider="cpu")
    assert "surprise" in one.class_names and one.lacking == ["surprise"]
    s = one.class_names.index("surprise")
    assert one.confusion[s].sum() == 2 and one.confusion[s, s] == 0  # scored, and wrong
    assert one.confusion.sum() == 6
    assert "cannot output" in one.report() and "surprise" in one.report()
    assert one.ua <= 2 / 3 + 1e-9  # surprise recall is 0 and counts in the mean
    both = evaluate_voice_dir(corpora, provider="cpu")
    assert set(both.by_corpus) == {"corpus0", "corpus1"} and both.confusion.sum() == 12
    assert "== corpus1" in both.report()
