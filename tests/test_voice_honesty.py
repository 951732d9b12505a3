"""Voice evidence that holds on real audio: neutral speech, non-speech, and fusion with a face.

Speech is made here with espeak-ng (installed by scripts/setup.sh) in ten voices and nine
languages — sentences and voices the training recipe's optional synthetic set does not use;
non-speech signals are synthesised in tests/audiosynth.py; the A/V clip is the product
owner's WolfgangLanger_Pexels.mp4 with the synthetic speech dubbed in.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotiond import labels
from emotiond.config import load_config
from emotiond.engine import Engine
from emotiond.runner import run
from emotiond.sinks import JsonlSink
from emotiond.sources import open_source
from tests import audiosynth
from tests.mediautil import transcode, write_wav

pytestmark = pytest.mark.skipif(not audiosynth.have_espeak(), reason="espeak-ng missing: run scripts/setup.sh")


def analyse(path, tmp_path, **overrides):
    cfg = load_config(overrides=overrides)
    src = open_source(path)
    log = tmp_path / f"{Path(path).stem}_{len(overrides)}.jsonl"
    sink = JsonlSink(log, mode="overwrite")
    with Engine(cfg, source_info=src.info) as engine:
        run(src, engine, [sink], progress=False)
    sink.close()
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def tts(tmp_path_factory):
    d = tmp_path_factory.mktemp("tts")
    return [(voice, audiosynth.espeak(text, voice, d / f"{i}.wav")) for i, (voice, text) in enumerate(audiosynth.SENTENCES)]


def test_neutral_tts_is_not_called_an_emotion(tts, tmp_path):
    """Each utterance through the engine's voice path (VAD, speechness, running baseline, model):
    its voice-only fused label, wherever it is above the fusion threshold, is mostly not a
    non-neutral emotion ("uncertain" while the model's measured cross-corpus reliability is low)."""
    emotional = []
    for voice, x in tts:
        path = tmp_path / f"{voice}.wav"
        write_wav(path, np.concatenate([np.zeros(8000, np.float32), x, np.zeros(8000, np.float32)]), 16000)
        recs = [r for r in analyse(path, tmp_path) if r["label"] is not None]
        assert recs, f"{voice}: speech must give voice evidence"
        non_neutral = sum(r["label"] not in ("neutral", "uncertain") for r in recs)
        emotional.append(non_neutral / len(recs))
    labelled = sum(f > 0.5 for f in emotional)
    print("non-neutral fraction per utterance:", [round(f, 2) for f in emotional])
    assert labelled <= len(tts) // 2 - 1, f"{labelled} of {len(tts)} neutral utterances labelled as an emotion"


@pytest.mark.parametrize("kind", sorted(audiosynth.NON_SPEECH))
def test_non_speech_gives_no_voice_evidence(kind, tmp_path):
    x = audiosynth.NON_SPEECH[kind]()
    path = tmp_path / f"{kind.replace(' ', '_')}.wav"
    write_wav(path, x, 16000)
    recs = analyse(path, tmp_path)
    assert recs
    assert all(r["voice"] is None and r["fused"] is None for r in recs), kind


def test_speechness_separates_the_test_signals_from_speech(tts):
    from emotiond.audio import prosody

    for voice, x in tts:
        s = [prosody.speechness(prosody.frames(x[a : a + 32000])) for a in range(0, max(1, x.size - 32000), 16000)]
        assert np.mean(np.array(s) >= 0.5) >= 0.75, voice
    for kind, make in audiosynth.NON_SPEECH.items():
        x = make()
        s = [prosody.speechness(prosody.frames(x[a : a + 32000])) for a in range(0, x.size - 32000, 16000)]
        assert max(s) < 0.5, kind


@pytest.mark.slow
def test_neutral_speech_dubbed_over_a_face_keeps_the_face_label(pexels_mp4, tts, tmp_path):
    """WolfgangLanger_Pexels.mp4 with neutral TTS as its sound: the fused label equals the
    face-only label on >= 95 % of the frames with a face."""
    speech = np.concatenate([np.concatenate([x, np.zeros(4000, np.float32)]) for _, x in tts])
    wav = tmp_path / "dub.wav"
    write_wav(wav, speech[: 20 * 16000], 16000)
    dubbed = tmp_path / "dubbed.mkv"
    transcode(pexels_mp4, dubbed, "libx264", "aac", audio_from=wav)
    face_only = analyse(dubbed, tmp_path, **{"voice.enabled": False})
    both = analyse(dubbed, tmp_path)
    assert len(face_only) == len(both)
    pairs = [(a["label"], b["label"]) for a, b in zip(face_only, both) if a["faces"] and a["label"]]
    assert len(pairs) > 300
    with_voice = sum(1 for b in both if b["faces"] and b["voice"] is not None)
    assert with_voice > 100, "the dubbed speech must be heard"
    same = np.mean([a == b for a, b in pairs])
    print(f"face-only label kept on {same:.1%} of {len(pairs)} frames; voice present on {with_voice}")
    assert same >= 0.95
    # and the shares say how much the voice moved: small, and exactly what the log's shares claim
    # (with active-speaker detection the dubbed voice joins the face only while its mouth follows
    # the voice; otherwise it goes to the off-screen voice entry — tests/test_speaking.py)
    shares = [b["shares"]["voice"] for b in both if b["shares"] and "voice" in b["shares"]]
    assert max(shares, default=0.0) < 0.5
    assert shares or any(b["offscreen"] for b in both), "the voice went somewhere"


def test_voice_arousal_is_logged(tts, tmp_path):
    voice, x = tts[0]
    path = tmp_path / "arousal.wav"
    write_wav(path, x, 16000)
    recs = analyse(path, tmp_path)
    vals = [r["voice_arousal"] for r in recs if r["voice_arousal"] is not None]
    assert vals and all(-1 <= v <= 1 for v in vals)
    assert all((r["voice_arousal"] is None) == (r["voice"] is None) for r in recs)
    assert labels.EMOTIONS  # the label space is unchanged
