"""Smoke test of the voice training recipe: a tiny synthetic folder-per-label corpus,
one epoch, a loadable ONNX model and card in tmp_path."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("torch")


@pytest.mark.slow  # mostly the torch import (~5-10 s)
def test_recipe_trains_exports_and_loads(tmp_path):
    from emotiond.audio.features import DEFAULT_PARAMS, FeatureParams
    from emotiond.audio.voice_model import VoiceEmotionModel
    from emotiond.training import voice

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for label, f0 in (("angry", 220.0), ("sad", 110.0), ("joy", 330.0)):
        for spk in ("s1", "s2", "s3", "s4"):
            rate = 22050
            t = np.arange(int(rate * rng.uniform(0.8, 1.5))) / rate
            x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(len(t))
            (data / label).mkdir(parents=True, exist_ok=True)
            sf.write(data / label / f"{spk}_{label}.wav", x.astype(np.float32), rate)
    out = tmp_path / "models"
    rc = voice.main(["--dataset", "folder", "--data-dir", str(data), "--out", str(out), "--epochs", "1",
                     "--folds", "2", "--threads", "1", "--width", "4"])
    assert rc == 0
    card = tomllib.loads((out / "voice_emotion.card.toml").read_text(encoding="utf-8"))
    assert card["task"] == "voice-emotion"
    assert card["classes"] == ["angry", "happy", "sad"]
    assert FeatureParams.from_dict(card["features"]) == DEFAULT_PARAMS
    acc = card["accuracy"]
    assert sum(acc["n_test_per_class"]) == acc["n_test"] == 6  # 2 of 4 speakers held out
    assert np.asarray(acc["confusion"]).sum() == acc["n_test"]

    model = VoiceEmotionModel.from_registry(out, provider="cpu")
    p = model.predict((0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32))
    assert p.shape == (7,) and p.sum() == pytest.approx(1.0, abs=1e-5)
    assert model.covered.tolist() == [True, False, False, True, True, False, False]
