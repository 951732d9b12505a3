"""The face-expression model catalogue (face.model): each model's crop and scaling come from
its card.  Real onnxruntime sessions on the committed files, real mediapipe landmarks on the
Pexels clip (../shared/media)."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from emotiond import labels, registry
from emotiond.config import load_config
from emotiond.engine import Engine
from emotiond.errors import ConfigError, ModelError
from emotiond.face.emotion import CATALOGUE, FaceEmotionModel
from emotiond.face.landmarks import FaceLandmarker
from emotiond.runner import run
from emotiond.sinks import JsonlSink
from emotiond.sources import open_source
from tests.conftest import media


@pytest.fixture(scope="module")
def clip_faces():
    want = {10: "sad", 40: "sad", 320: "happy", 380: "happy", 440: "happy"}
    out = []
    with FaceLandmarker(registry.resolve("face_landmarker").path, video=False) as lm, \
            av.open(str(media("WolfgangLanger_Pexels.mp4"))) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in want:
                img = f.to_ndarray(format="rgb24")
                out.append((img, lm.detect(img)[0].landmarks, want[i]))
            if i >= max(want):
                break
    return out


@pytest.mark.parametrize("name", CATALOGUE)
def test_each_catalogue_model_reads_the_clip(name, clip_faces):
    m = FaceEmotionModel.from_registry(provider="cpu", name=name)
    spec = m.card.data["input"]
    assert m.crop_size == spec["shape"][1] and m.color == spec.get("color", "gray")
    crops = np.stack([m.crop(img, lmk) for img, lmk, _ in clip_faces])
    assert crops.shape[1:] == ((m.crop_size, m.crop_size) if m.color == "gray" else (m.crop_size, m.crop_size, 3))
    p = m.predict(crops)
    assert p.shape == (len(clip_faces), 7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    got = [labels.EMOTIONS[int(q.argmax())] for q in p]
    assert got == [want for *_, want in clip_faces], got


def test_faceapi_card_classes_are_mapped_to_ours():
    m = FaceEmotionModel.from_registry(provider="cpu", name="face_emotion_faceapi")
    # one-hot logits through the reorder: the card's "fearful" is our "fear", "disgusted" "disgust"
    assert [labels.canonical(c) for c in m.card.classes] == ["neutral", "happy", "sad", "angry", "fear", "disgust",
                                                               "surprise"]
    with pytest.raises(ValueError):
        m.predict(np.zeros((1, 64, 64), np.uint8))  # a fer-sized gray crop is refused


def test_face_model_is_chosen_by_config(tmp_path):
    cfg = load_config(overrides={"voice.enabled": False, "face.model": "face_emotion_faceapi"})
    src = open_source(media("single_face.mp4"))
    log = tmp_path / "f.jsonl"
    sink = JsonlSink(log)
    with Engine(cfg, source_info=src.info) as engine:
        assert any(m.name == "face_emotion_faceapi" for m in engine.models)
        run(src, engine, [sink], progress=False)
    sink.close()
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    assert sum(bool(r["faces"]) for r in recs) >= 0.9 * len(recs)
    with pytest.raises(ConfigError):
        load_config(overrides={"face.model": "no_such_model"})
    with pytest.raises(ModelError):
        FaceEmotionModel.from_registry(name="silero_vad")
