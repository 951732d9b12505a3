"""Test signals made in the test (no committed media): espeak-ng speech and non-speech
(tone chords, noise, synthetic music, a plucked-string melody, synthetic singing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

SR = 16000

SENTENCES = [
    ("en-us", "I will send you the documents this afternoon, before the meeting."),
    ("en-gb+f2", "The train to the city leaves from platform four every hour."),
    ("en-us+m3", "We bought bread, milk and some apples at the market."),
    ("de", "Morgen fahre ich mit dem Zug nach Hamburg zu meiner Schwester."),
    ("fr", "Le musée ouvre ses portes à dix heures le dimanche matin."),
    ("es", "Mañana vamos a comprar pan y fruta en el mercado del barrio."),
    ("it", "Il treno per Milano parte alle otto e trenta dal binario due."),
    ("pt", "Amanhã vou ao correio enviar uma carta para a minha avó."),
    ("nl", "Het boek ligt op de tafel naast de lamp in de woonkamer."),
    ("en-us+f4", "Please close the window when you leave the room tonight."),
]


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: str, path: Path, speed: int = 160) -> np.ndarray:
    """16 kHz mono float32 speech from espeak-ng (also written to ``path`` as WAV)."""
    import soundfile as sf

    from emotiond.audio import features

    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)
    x, rate = sf.read(str(path), dtype="float32")
    return features.to_16k_mono(x, rate)


def _harmonic(f0: np.ndarray, n_harm: int = 8, decay: float = 0.7) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return sum((decay**k) * np.sin((k + 1) * phase) for k in range(n_harm)).astype(np.float32)


def chord(seconds: float = 4.0) -> np.ndarray:
    """C major triad, organ-like (harmonics), steady."""
    n = int(seconds * SR)
    return (0.2 * sum(_harmonic(np.full(n, f), 5) for f in (261.6, 329.6, 392.0)) / 3).astype(np.float32)


def noise(seconds: float = 4.0, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def pink_noise_bursts(seconds: float = 4.0, seed: int = 1) -> np.ndarray:
    """Noise switched on and off at 4 Hz (a syllable-like rhythm without voice)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    env = (np.sin(2 * np.pi * 4 * np.arange(n) / SR) > 0).astype(np.float32)
    return (0.1 * rng.standard_normal(n) * env).astype(np.float32)


MELODY = [0, 2, 4, 5, 7, 5, 4, 2, 0, 4, 7, 12, 7, 4, 0, -5]  # semitones above A3


def music(seconds: float = 6.0, bpm: float = 120.0) -> np.ndarray:
    """A synthetic band: a harmonic melody (notes at 8th-note rate), a bass line and a kick drum."""
    n = int(seconds * SR)
    step = int(SR * 60 / bpm / 2)
    f_mel = np.zeros(n)
    f_bass = np.zeros(n)
    for i in range(0, n, step):
        k = (i // step) % len(MELODY)
        f_mel[i : i + step] = 220.0 * 2 ** (MELODY[k] / 12)
        f_bass[i : i + step] = 55.0 * 2 ** ([0, 0, 5, 5, 7, 7, 0, 0][(i // step // 2) % 8] / 12)
    env = np.ones(n)
    for i in range(0, n, step):
        seg = min(step, n - i)
        env[i : i + seg] = np.exp(-np.arange(seg) / (0.25 * SR)) * 0.8 + 0.2
    x = 0.15 * _harmonic(f_mel, 6) * env + 0.15 * _harmonic(f_bass, 4)
    for i in range(0, n, 2 * step):  # kick
        seg = min(int(0.1 * SR), n - i)
        t = np.arange(seg) / SR
        x[i : i + seg] += 0.5 * np.sin(2 * np.pi * (60 + 100 * np.exp(-t * 40)) * t) * np.exp(-t * 30)
    return (x / np.abs(x).max() * 0.5).astype(np.float32)


def plucked(seconds: float = 6.0, seed: int = 2) -> np.ndarray:
    """A plucked-string melody (Karplus-Strong), like an acoustic guitar."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.zeros(n)
    step = int(0.3 * SR)
    for j, i in enumerate(range(0, n, step)):
        f = 196.0 * 2 ** (MELODY[j % len(MELODY)] / 12)
        p = int(SR / f)
        buf = rng.uniform(-1, 1, p)
        seg = min(int(1.2 * SR), n - i)
        y = np.zeros(seg)
        for k in range(seg):
            y[k] = buf[k % p]
            buf[k % p] = 0.996 * 0.5 * (buf[k % p] + buf[(k + 1) % p])
        out[i : i + seg] += y
    return (out / np.abs(out).max() * 0.5).astype(np.float32)


def singing(seconds: float = 6.0) -> np.ndarray:
    """A sung vowel line: held notes (0.4 s) with 5.5 Hz vibrato, vowel formants, short breaths."""
    n = int(seconds * SR)
    step = int(0.4 * SR)
    f0 = np.zeros(n)
    gate = np.zeros(n)
    for j, i in enumerate(range(0, n, step)):
        f0[i : i + step] = 220.0 * 2 ** (MELODY[j % len(MELODY)] / 12)
        gate[i : i + step - int(0.03 * SR)] = 1.0
    t = np.arange(n) / SR
    f0 = f0 * 2 ** (0.4 * np.sin(2 * np.pi * 5.5 * t) / 12)
    src = _harmonic(f0, 20, 0.85)
    from scipy.signal import lfilter

    y = np.zeros(n)
    for fc, bw in ((700, 90), (1200, 110), (2600, 160)):  # an "ah" vowel
        r = np.exp(-np.pi * bw / SR)
        y += lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / SR), r * r], src)
    y *= gate
    return (y / np.abs(y).max() * 0.5).astype(np.float32)


NON_SPEECH = {"chord": chord, "white noise": noise, "noise bursts": pink_noise_bursts, "music": music,
              "plucked strings": plucked, "singing": singing}
