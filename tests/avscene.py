"""Two-person talking scenes for the active-speaker tests, built from real material.

No real multi-speaker recording is available offline, so the tests make controlled ones:

* two real faces side by side: a crop of ``single_face.mp4`` (left, face A) and one of the
  Pexels clip (right, face B);
* each face "talks": its frames are re-timed from a short stretch of its own clip in which the
  mouth goes from closed to open (ranked by the mouth opening mediapipe measures on them), to
  follow a seeded syllable rhythm (0.12–0.35 s syllables in phrases, pauses between phrases) —
  the two faces get independent rhythms, so both mouths move all the time, like two people
  who both move their lips;
* the real mediapipe landmarker measures both mouths on the composed frames, and the audio
  is real(-ish) speech (tests/data/speech_en_espeak.flac, eSpeak NG, pauses cut out) whose
  amplitude follows the measured mouth opening of the face that is meant to speak.

Variants of the audio on the same video: ``a`` (face A speaks), ``b`` (face B speaks),
``switch`` (A for the first half, B for the second), ``neither`` (A's mouth shifted by
2–5 s, the shift that correlates least with both mouths: speech heard that matches no
visible mouth — someone off camera).  ``silent_face``
is one real face (the Pexels clip as recorded, mouth nearly still) while the speech plays.

``seed`` draws the two rhythms (the tests use one scene; ``benchmarks/speaking.py
--quality`` measures over many), 24 frames/s, 640×360.  :func:`measure` is the one
definition of the figures the tests assert on and the benchmark reports.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from emotiond.config import load_config
from emotiond.engine import open_landmarker
from emotiond.face.speaking import mouth_opening

FPS = 24
DURATION = 8.0
RATE = 48000
W, H = 320, 360  # one face's crop; the scene is 640×360
SPEECH = Path(__file__).resolve().parent / "data" / "speech_en_espeak.flac"
SWITCH_AT = 4.0
LEAD_IN = 0.7  # seconds before A's first syllable (B's: half of it)


@dataclass
class Scene:
    folder: Path
    times: np.ndarray  # frame times
    mouth: dict[str, np.ndarray]  # "a"/"b" -> measured mouth opening per frame (composed video)
    gains: dict[str, np.ndarray] = field(default_factory=dict)  # variant -> audio gain per frame
    speaker: dict[str, np.ndarray] = field(default_factory=dict)  # variant -> "a"/"b"/"" per frame
    neither_shift: float = 0.0
    switch_at: float = SWITCH_AT  # s, when the speaker changes in the 'switch' variant

    def path(self, variant: str) -> Path:
        return self.folder / f"{variant}.mp4"


def _decode(path: Path, t0: float, t1: float) -> tuple[list[np.ndarray], list[float]]:
    frames, times = [], []
    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            t = float(fr.time)
            if t >= t1:
                break
            if t0 <= t:
                frames.append(fr.to_ndarray(format="rgb24"))
                times.append(t)
    return frames, times


def _measure(frames: list[np.ndarray], times: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Mouth opening and face centre per frame (one face expected), with the real landmarker."""
    lm = open_landmarker(load_config(overrides={"face.max_faces": 2}))
    try:
        mouth, centre = [], []
        for img, t in zip(frames, times):
            faces = lm.detect(img, t)
            if not faces:
                mouth.append(np.nan)
                centre.append((np.nan, np.nan))
                continue
            f = max(faces, key=lambda f: f.bbox[3] - f.bbox[1])
            mouth.append(mouth_opening(f))
            centre.append(((f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2))
    finally:
        lm.close()
    return np.array(mouth), np.array(centre)


@functools.lru_cache(maxsize=4)
def _pool(path: Path, t0: float, t1: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Crops (W×H around the face) of a stretch of a clip and their mouth openings, ranked
    from closed to open."""
    frames, times = _decode(path, t0, t1)
    mouth, centre = _measure(frames, times)
    ok = np.isfinite(mouth)
    cx, cy = np.nanmedian(centre[:, 0]), np.nanmedian(centre[:, 1])
    x0 = int(np.clip(cx - W / 2, 0, frames[0].shape[1] - W))
    y0 = int(np.clip(cy - H / 2, 0, frames[0].shape[0] - H))
    crops = [np.ascontiguousarray(f[y0 : y0 + H, x0 : x0 + W]) for f, k in zip(frames, ok) if k]
    order = np.argsort(mouth[ok], kind="stable")
    return [crops[i] for i in order], mouth[ok][order]


def _rhythm(rng: np.random.Generator, n: int, lead_in: float) -> np.ndarray:
    """Target mouth opening in [0, 1] per frame: phrases of syllables with pauses."""
    g = np.zeros(n)
    t = lead_in
    while t < n / FPS:
        for _ in range(rng.integers(3, 7)):  # one phrase
            dur = rng.uniform(0.12, 0.35)
            peak = rng.uniform(0.5, 1.0)
            k0, k1 = int(t * FPS), int((t + dur) * FPS)
            if k1 > k0:
                bump = peak * np.sin(np.linspace(0, np.pi, k1 - k0 + 2)[1:-1])
                seg = g[k0:k1]
                seg[:] = np.maximum(seg, bump[: seg.size])
            t += dur + rng.uniform(0.0, 0.08)
        t += rng.uniform(0.35, 0.8)  # pause
    return g


def _pick(pool_mouth: np.ndarray, target: np.ndarray) -> np.ndarray:
    lo, hi = pool_mouth[0], pool_mouth[-1]
    want = lo + target * (hi - lo)
    return np.abs(pool_mouth[None, :] - want[:, None]).argmin(axis=1)


def _carrier(n: int, rate: int) -> np.ndarray:
    """The eSpeak sentence with its pauses cut out, looped to ``n`` samples at ``rate``."""
    x, sr = sf.read(str(SPEECH), dtype="float32")
    hop = sr // 50
    frames = x[: x.size // hop * hop].reshape(-1, hop)
    loud = np.sqrt((frames**2).mean(axis=1)) > 10 ** (-35 / 20)
    voiced = frames[loud].reshape(-1)
    voiced = voiced / (np.abs(voiced).max() + 1e-9)
    import soxr

    voiced = soxr.resample(voiced, sr, rate).astype(np.float32)
    reps = int(np.ceil(n / voiced.size))
    return np.tile(voiced, reps)[:n]


def _gain(mouth: np.ndarray) -> np.ndarray:
    """Audio gain per frame from a mouth opening: 0 closed … 1 wide open."""
    m = np.nan_to_num(mouth, nan=np.nanmin(mouth))
    lo, hi = np.percentile(m, 10), np.percentile(m, 95)
    return np.clip((m - lo) / max(hi - lo, 1e-6), 0.0, 1.0)


def _audio(gain_per_frame: np.ndarray, times: np.ndarray) -> np.ndarray:
    n = int(round(times.size / FPS * RATE))
    t = np.arange(n) / RATE
    g = np.interp(t, times, gain_per_frame)
    k = int(0.02 * RATE)
    g = np.convolve(g, np.ones(k) / k, mode="same")  # no clicks
    return (0.5 * g * _carrier(n, RATE)).astype(np.float32)


def _encode(path: Path, frames: list[np.ndarray], times: np.ndarray, audio: np.ndarray) -> None:
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=FPS)
    vs.width, vs.height = frames[0].shape[1], frames[0].shape[0]
    vs.pix_fmt = "yuv420p"
    vs.options = {"preset": "ultrafast", "crf": "20"}
    vs.codec_context.time_base = Fraction(1, FPS)
    as_ = out.add_stream("aac", rate=RATE)
    as_.layout = "mono"
    for i, img in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(img, format="rgb24")
        vf.pts = i
        vf.time_base = Fraction(1, FPS)
        for p in vs.encode(vf):
            out.mux(p)
    for p in vs.encode():
        out.mux(p)
    step = 1024
    for i in range(0, audio.size, step):
        af = av.AudioFrame.from_ndarray(audio[None, i : i + step], format="flt", layout="mono")
        af.sample_rate = RATE
        af.pts = i
        af.time_base = Fraction(1, RATE)
        for p in as_.encode(af):
            out.mux(p)
    for p in as_.encode():
        out.mux(p)
    out.close()


def build(folder: Path, media: Path, seed: int = 12, duration: float = DURATION) -> Scene:
    """Build every variant into ``folder`` (``media``: the shared media folder; ``seed``: the
    two faces' syllable rhythms; A speaks in the first half of ``switch``, B in the second)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(duration * FPS)
    times = np.arange(n) / FPS
    pool_a, mouth_a = _pool(media / "single_face.mp4", 0.0, 1.3)
    pool_b, mouth_b = _pool(media / "WolfgangLanger_Pexels.mp4", 4.9, 6.7)
    rng = np.random.default_rng(seed)
    pick_a = _pick(mouth_a, _rhythm(rng, n, LEAD_IN))
    pick_b = _pick(mouth_b, _rhythm(rng, n, LEAD_IN / 2))  # B starts moving its lips first
    frames = [np.hstack([pool_a[i], pool_b[j]]) for i, j in zip(pick_a, pick_b)]

    # measure both mouths on the composed frames, as the product will see them
    lm = open_landmarker(load_config(overrides={"face.max_faces": 2}))
    ma, mb = np.full(n, np.nan), np.full(n, np.nan)
    try:
        for k, img in enumerate(frames):
            for f in lm.detect(img, times[k]):
                side = ma if (f.bbox[0] + f.bbox[2]) / 2 < W else mb
                side[k] = mouth_opening(f)
    finally:
        lm.close()
    scene = Scene(folder, times, {"a": ma, "b": mb}, switch_at=duration / 2)
    ga, gb = _gain(ma), _gain(mb)
    half = times < scene.switch_at
    # the shift (2–5 s) whose audio correlates least with either mouth: it follows neither
    mouths = [np.nan_to_num(m, nan=float(np.nanmin(m))) for m in (ma, mb)]

    def shifted_by(s: float) -> np.ndarray:
        return np.interp((times + s) % duration, times, ga)

    shift = min(np.arange(2.0, min(5.0, duration - 2.0) + 0.01, 0.25),
                key=lambda s: max(abs(np.corrcoef(shifted_by(s), m)[0, 1]) for m in mouths))
    scene.neither_shift = float(shift)
    shifted = shifted_by(shift)
    variants = {
        "a": (ga, np.where(ga > 0.1, "a", "")),
        "b": (gb, np.where(gb > 0.1, "b", "")),
        "switch": (np.where(half, ga, gb), np.where(half, np.where(ga > 0.1, "a", ""), np.where(gb > 0.1, "b", ""))),
        "neither": (shifted, np.full(n, "")),
    }
    for name, (gain, who) in variants.items():
        scene.gains[name], scene.speaker[name] = gain, who
        _encode(scene.path(name), frames, times, _audio(gain, times))

    # one real face, recorded as is (mouth nearly still), while someone else speaks
    real, rt = _decode(media / "WolfgangLanger_Pexels.mp4", 0.0, duration + 0.5)
    _, centre = _measure(real[:1], rt[:1])
    x0 = int(np.clip(centre[0, 0] - W / 2, 0, real[0].shape[1] - W))
    silent = [np.ascontiguousarray(f[:, x0 : x0 + W]) for f in real[: n]]
    gain = np.clip(np.interp(times, times, gb), 0, 1)
    scene.gains["silent_face"], scene.speaker["silent_face"] = gain, np.full(n, "")
    _encode(scene.path("silent_face"), silent, times[: len(silent)], _audio(gain, times))
    return scene


# -- the figures ----------------------------------------------------------------------------


def analyse(path: Path, focus_at: tuple[float, str] | None = None, **overrides) -> list:
    """The real engine and runner over one variant (``focus_at``: (media time, "a"/"b"): from
    then on that face is selected, as a click in the window does).  Returns the FrameResults."""
    from emotiond.engine import Engine
    from emotiond.runner import run
    from emotiond.sources import open_source

    cfg = load_config(overrides=overrides)
    src = open_source(path)
    results, pending = [], [focus_at] if focus_at is not None else []
    with Engine(cfg, source_info=src.info) as engine:
        def on_result(r, _frame):
            results.append(r)
            if pending and r.t >= pending[0][0]:
                face = next((f for f in r.faces if sides([r])[f.track_id] == pending[0][1]), None)
                if face is not None:
                    engine.set_focus(face.track_id)
                    pending.clear()

        run(src, engine, [], progress=False, on_result=on_result)
    return results


def sides(results) -> dict[int, str]:
    """Track id -> "a" (left face) / "b" (right face)."""
    side = {}
    for r in results:
        for f in r.faces:
            side.setdefault(f.track_id, "a" if (f.bbox[0] + f.bbox[2]) / 2 < W else "b")
    return side


def primaries(results, side) -> np.ndarray:
    return np.array([side.get(r.primary, "") if r.primary is not None else "" for r in results])


def speakers(results, side, threshold: float = 0.5) -> np.ndarray:
    """Per frame, the faces judged speaking ("", "a", "b" or "ab")."""
    return np.array(["".join(side[f.track_id] for f in r.faces if (f.speaking or 0) >= threshold) for r in results])


def measure(scene: Scene, variant: str, results) -> dict[str, float]:
    """The issue's figures for one analysed variant:

    * ``a``/``b``: ``primary`` — share of the speech frames on which the speaking face is the primary;
    * ``switch``: ``latency`` — media time from B's first syllable after the switch to the first
      frame whose primary is B; ``before`` — share of A's speech frames with A primary;
      ``after`` — share of B's speech frames after that with B primary;
    * ``neither``: ``marked`` — share of frames with a face judged speaking; ``offscreen`` —
      share of the frames with voice evidence whose voice went to the off-screen entry;
    * ``silent_face``: ``marked`` — share of frames on which the silent face is judged speaking.
    """
    side = sides(results)
    who = scene.speaker[variant][: len(results)]
    primary = primaries(results, side)
    if variant in ("a", "b"):
        speech = who != ""
        return {"primary": float(np.mean(primary[speech] == who[speech]))}
    if variant == "switch":
        first_b = int(np.nonzero(who == "b")[0][0])
        later = np.nonzero(primary[first_b:] == "b")[0]
        moved = first_b + int(later[0]) if later.size else len(results)
        t = np.array([r.t for r in results] + [results[-1].t + 1.0 / FPS])
        after = who[moved:] == "b"
        return {"latency": float(t[moved] - t[first_b]),
                "before": float(np.mean(primary[who == "a"] == "a")),
                "after": float(np.mean(primary[moved:][after] == "b")) if after.any() else 0.0}
    marked = float(np.mean(speakers(results, side) != ""))
    if variant == "neither":
        voiced = [r for r in results if r.voice is not None]
        return {"marked": marked, "offscreen": float(np.mean([r.offscreen is not None for r in voiced])) if voiced else 0.0}
    return {"marked": marked}
