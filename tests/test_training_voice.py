"""The voice training recipe end to end on two tiny corpora made here (folder-per-label and
EMO-DB layouts): features, speaker baseline, cross-validation, leave-one-corpus-out, calibration,
ONNX export and card — and the result loads and runs with onnxruntime."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("onnx")
pytest.importorskip("sklearn")

# label -> (pitch in Hz, syllable rate in Hz): each class is a different "voice"
CLASSES = {"angry": (220.0, 6.0), "sad": (110.0, 2.0), "neutral": (150.0, 4.0)}


def _clip(f0, rate_hz, rng, sr=16000):
    t = np.arange(int(sr * rng.uniform(1.0, 1.6))) / sr
    f = f0 * rng.uniform(0.9, 1.1) * (1 + 0.05 * np.sin(2 * np.pi * 1.3 * t))
    voiced = sum(0.5**k * np.sin(2 * np.pi * (k + 1) * np.cumsum(f) / sr) for k in range(5))
    env = np.clip(np.sin(2 * np.pi * rate_hz * t), 0, None)
    return (0.3 * voiced * env + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.slow
def test_recipe_trains_evaluates_exports_and_loads(tmp_path):
    from emotiond.audio.voice_model import VoiceEmotionModel
    from emotiond.training import voice

    rng = np.random.default_rng(0)
    folder = tmp_path / "mine"
    emodb = tmp_path / "emodb"
    emodb.mkdir()
    codes = {"angry": "W", "sad": "T", "neutral": "N"}
    for label, (f0, rate_hz) in CLASSES.items():
        for spk in ("s1", "s2", "s3", "s4"):
            (folder / label).mkdir(parents=True, exist_ok=True)
            for k in range(2):
                sf.write(folder / label / f"{spk}_{label}{k}.wav", _clip(f0, rate_hz, rng), 16000)
        for spk in ("03", "08"):  # EMO-DB file names: speaker, text, emotion, version
            sf.write(emodb / f"{spk}a0{len(label)}{codes[label]}a.wav", _clip(f0, rate_hz, rng, 22050), 22050)
    out = tmp_path / "models"
    rc = voice.main(["--no-default-corpora", "--corpus", f"folder={folder}", "--corpus", f"emodb={emodb}",
                     "--out", str(out), "--name", "my_voice", "--augment", "1", "--folds", "2"])
    assert rc == 0
    card = tomllib.loads((out / "my_voice.card.toml").read_text(encoding="utf-8"))
    assert card["task"] == "voice-emotion"
    assert card["classes"] == ["sad", "neutral", "angry"] or set(card["classes"]) == set(CLASSES)
    acc = card["accuracy"]
    assert set(acc["in_corpus"]) == {"folder:mine", "emodb:emodb"}
    assert set(acc["leave_one_corpus_out"]) == {"folder:mine", "emodb:emodb"}
    held = acc["leave_one_corpus_out"]["emodb:emodb"]["speaker_baseline"]
    assert held["trained_on"] == ["folder:mine"] and held["n"] == 6
    assert np.asarray(held["confusion"]).sum() == 6
    assert len(held["ua_seeds"]) == 4 and held["ua_mean"] == pytest.approx(np.mean(held["ua_seeds"]), abs=1e-4)
    # separable synthetic classes: both corpora are learnt and transfer
    assert acc["in_corpus"]["folder:mine"]["unweighted_accuracy"] > 0.6
    assert held["unweighted_accuracy"] > 0.6
    assert card["reliability"]["cross_corpus"] > 0.3
    assert card["calibration"]["temperature"] > 0

    model = VoiceEmotionModel.from_path(out / "my_voice.onnx", provider="cpu")
    assert model.reliability == pytest.approx(card["reliability"]["cross_corpus"])
    p = model.predict(_clip(110.0, 2.0, rng))
    assert p.shape == (7,) and p.sum() == pytest.approx(1.0, abs=1e-5)
    assert set(np.flatnonzero(model.covered)) == {0, 4, 6}  # angry, sad, neutral
