"""The shipped voice-emotion model (models/voice_emotion.onnx), run for real."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emotiond import labels, registry
from emotiond.audio import features
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


def test_output_is_a_distribution_over_covered_classes(model, speech_16k):
    p = model.predict(speech_16k)
    assert p.shape == (len(labels.EMOTIONS),) and p.dtype == np.float32
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(p >= 0) and np.all(p[~model.covered] == 0)
    card = registry.card("voice_emotion")
    expect = np.array([e in {labels.canonical(c) for c in card.classes} for e in labels.EMOTIONS])
    assert np.array_equal(model.covered, expect)
    assert not model.covered[labels.INDEX["neutral"]]  # EmoFilm has no neutral class


def test_window_and_logmel_inputs_agree(model, speech_16k):
    window = speech_16k[16000 : 16000 + model.params.window_samples]
    by_samples = model.predict(window)
    by_logmel = model.predict(features.log_mel(window, model.params))
    assert np.allclose(by_samples, by_logmel, atol=1e-6)
    # batch of windows: one distribution per window, mean over them for an utterance
    k = model.predict_logmel(model.features(speech_16k))
    assert k.shape == (len(features.windows(speech_16k, model.params)), len(model.class_names))
    assert np.allclose(k.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError):
        model.predict_logmel(np.zeros((1, 1, 40, 100), np.float32))


def test_silence_gives_no_evidence(model):
    silent = np.zeros(32000, np.float32)
    p = model.predict(silent)
    assert np.allclose(p[model.covered], 1.0 / model.covered.sum())
    ev = model.evidence(silent, speech=0.9)
    assert ev.reliability == 0.0 and ev.name == "voice"
    assert model.evidence(np.zeros(0, np.float32)).reliability == 0.0


def test_card_features_are_the_inference_params(model):
    card = registry.resolve("voice_emotion")
    assert features.FeatureParams.from_dict(card.data["features"]) == model.params
    assert model.params == features.DEFAULT_PARAMS  # training used the defaults
    inp = model._model.session.get_inputs()[0]
    assert inp.name == "logmel" and inp.shape[1:] == [1, model.params.n_mels, model.params.frames]
    assert card.size < 5_000_000


def _copy_models(tmp_path: Path) -> Path:
    src = registry.default_models_dir()
    dst = tmp_path / "models"
    dst.mkdir()
    for name in ("voice_emotion.onnx", "voice_emotion.card.toml"):
        shutil.copy(src / name, dst / name)
    return dst


def test_corrupt_model_raises_model_error(tmp_path):
    d = _copy_models(tmp_path)
    onnx = d / "voice_emotion.onnx"
    # truncated file: the registry refuses it
    onnx.write_bytes(onnx.read_bytes()[:1000])
    with pytest.raises(ModelError, match="truncated"):
        VoiceEmotionModel.from_registry(d)
    # garbage whose card matches (sha256 and size updated): onnxruntime refuses it
    junk = b"not an onnx model" * 100
    onnx.write_bytes(junk)
    card = (d / "voice_emotion.card.toml").read_text(encoding="utf-8")
    card = re.sub(r'(?m)^sha256 = ".*"$', f'sha256 = "{hashlib.sha256(junk).hexdigest()}"', card)
    card = re.sub(r"(?m)^size = \d+$", f"size = {len(junk)}", card)
    (d / "voice_emotion.card.toml").write_text(card, encoding="utf-8")
    with pytest.raises(ModelError, match="cannot load"):
        VoiceEmotionModel.from_registry(d)


def test_card_without_features_raises_model_error(tmp_path):
    d = _copy_models(tmp_path)
    p = d / "voice_emotion.card.toml"
    text = p.read_text(encoding="utf-8")
    p.write_text(text.replace("[features]", "[features_gone]"), encoding="utf-8")
    with pytest.raises(ModelError, match="features"):
        VoiceEmotionModel.from_registry(d)


def test_evaluate_voice_dir_scores_covered_and_skips_the_rest(tmp_path, speech_16k, model):
    from emotiond.evaluate import evaluate_voice_dir

    for label in ("anger", "sadness", "neutral"):
        (tmp_path / label).mkdir()
        sf.write(tmp_path / label / f"spk_{label}.wav", speech_16k[:40000], 16000)
    result = evaluate_voice_dir(tmp_path, provider="cpu")
    assert result.confusion.sum() == 2  # angry and sad scored
    assert result.skipped == {"neutral": 1}  # the model has no neutral class
    assert result.class_names == [e for e, c in zip(labels.EMOTIONS, model.covered) if c]
    assert "UA (mean recall)" in result.report() and "1 × neutral" in result.report()
