"""Who is talking: active-speaker detection and per-person fusion.

End to end on two-person scenes built from the product owner's real clips (tests/avscene.py):
real mediapipe, real silero VAD, the real voice model, the real engine and runner."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from emotiond.face.landmarks import BLENDSHAPES
from emotiond.face.speaking import JAW_OPEN, SpeakingParams, SyncSpeakerDetector, mouth_opening
from emotiond.sinks import CSV_COLUMNS, csv_rows, to_record
from emotiond.types import AudioChunk, FaceObservation
from tests import avscene
from tests.conftest import MEDIA

# -- pure detector ----------------------------------------------------------------------


def test_jaw_open_index_matches_the_blendshape_names():
    assert BLENDSHAPES[JAW_OPEN] == "jawOpen"


def _face(track_id: int, opening: float, x: float = 0.0) -> FaceObservation:
    lm = np.zeros((478, 3), np.float32)
    lm[263, 0] = 100.0  # eye corners 100 px apart
    lm[14, 1] = opening * 100.0
    return FaceObservation(lm, np.zeros(52, np.float32), (x, 0, x + 100, 100), 1.0, track_id)


def _drive(det, mouths, envelope, vad, fps=25, rate=16000, seed=0):
    """Feed ``len(envelope)`` frames: faces with the given mouth signals and noise audio whose
    loudness follows ``envelope``.  Returns the SpeakingState of every frame."""
    rng = np.random.default_rng(seed)
    states = []
    hop = rate // fps
    for k in range(len(envelope)):
        t = k / fps
        det.insert_audio(AudioChunk(t, (envelope[k] * rng.normal(0, 0.3, hop)).astype(np.float32), rate))
        states.append(det.update(t, [_face(i + 1, m[k], 150 * i) for i, m in enumerate(mouths)], vad[k]))
    return states


def test_detector_finds_the_mouth_that_follows_the_sound():
    rng = np.random.default_rng(1)
    n = 200
    syllables = np.clip(np.convolve(rng.random(n) > 0.6, np.ones(4) / 4, "same"), 0, 1)
    other = np.clip(np.convolve(rng.random(n) > 0.6, np.ones(4) / 4, "same"), 0, 1)
    states = _drive(SyncSpeakerDetector(), [0.3 * syllables, 0.3 * other], syllables, np.ones(n))
    late = states[50:]
    assert np.mean([s.speaker() == 1 for s in late]) > 0.9
    assert np.mean([s.speaking[2] < 0.5 for s in late]) > 0.9


def test_detector_says_nobody_in_silence_or_with_a_still_mouth():
    n = 120
    rng = np.random.default_rng(2)
    loud = np.clip(np.convolve(rng.random(n) > 0.5, np.ones(4) / 4, "same"), 0, 1)
    # speech heard, mouth still: not speaking
    states = _drive(SyncSpeakerDetector(), [np.full(n, 0.1)], loud, np.ones(n))
    assert max(s.speaking[1] for s in states) < 0.5
    # mouth follows a "sound" the VAD calls silence: not speaking
    states = _drive(SyncSpeakerDetector(), [0.3 * loud], loud, np.zeros(n))
    assert max(s.speaking[1] for s in states) == 0.0


def test_every_face_is_judged_at_the_sources_lag():
    """The audio–video lag belongs to the source: a second mouth that matches the sound only at
    another lag (0.12 s later, half its movement unrelated) is not taken for a speaker while
    the speaker's mouth matches at the source's lag.  Judged at its own best lag it would be
    (that per-face freedom is how unrelated speech used to land on a face)."""
    rng = np.random.default_rng(4)
    n, lag = 250, 3  # frames at 25 fps: 0.12 s
    syll = np.clip(np.convolve(rng.random(n + lag) > 0.6, np.ones(4) / 4, "same"), 0, 1)
    noise = np.clip(np.convolve(rng.random(n + lag) > 0.6, np.ones(4) / 4, "same"), 0, 1)
    speaker, other = 0.3 * syll[:n], 0.3 * (0.6 * syll[lag:] + 0.4 * noise[:n])
    env = syll[:n]
    for params, other_marked in ((SpeakingParams(), False), (SpeakingParams(lag_window=0, short_window=0), True)):
        late = _drive(SyncSpeakerDetector(params), [speaker, other], env, np.ones(n))[100:]
        assert np.mean([s.speaking[1] >= 0.5 for s in late]) > 0.9
        marked = np.mean([s.speaking[2] >= 0.5 for s in late])
        assert (marked > 0.5) if other_marked else (marked < 0.05), (params, marked)


def _syllables(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.convolve(rng.random(n) > 0.6, np.ones(4) / 4, "same"), 0, 1)


def test_a_moments_lead_does_not_take_the_turn():
    """A speaks throughout; every 2 s, for 0.12 s, the two mouths swap (a landmark glitch: B's
    mouth follows the sound for a moment, A's does not).  The turn model keeps the turn with A
    — B never holds it — where the leader of the moment (no switch cost) hands it to B."""
    n = 300
    a, b = _syllables(1, n), _syllables(2, n)
    ma, mb = 0.3 * a, 0.3 * b
    for k0 in range(75, n, 50):
        ma[k0 : k0 + 3], mb[k0 : k0 + 3] = 0.3 * b[k0 : k0 + 3], 0.3 * a[k0 : k0 + 3]
    held = {}
    for cost in (SpeakingParams().switch_cost, 0.0):
        late = _drive(SyncSpeakerDetector(SpeakingParams(switch_cost=cost)), [ma, mb], a, np.ones(n))[60:]
        held[cost] = sum(s.turn == 2 for s in late)
        if cost > 0:
            assert np.mean([s.speaker() == 1 for s in late]) > 0.95
    assert held[SpeakingParams().switch_cost] == 0 and held[0.0] > 0, held


def test_the_turn_moves_to_a_new_speaker_and_stays():
    """The sound follows A for 6 s, then B: the turn moves to B within a second, never goes
    back to A, and B is the speaker from then on."""
    n, fps = 300, 25
    a, b = _syllables(1, n), _syllables(2, n)
    states = _drive(SyncSpeakerDetector(), [0.3 * a, 0.3 * b], np.concatenate([a[:150], b[150:]]), np.ones(n), fps)
    assert np.mean([s.turn == 1 for s in states[50:150]]) > 0.95
    moved = next(k for k in range(150, n) if states[k].turn == 2)
    assert (moved - 150) / fps <= 1.0
    assert all(s.turn == 2 for s in states[moved:])
    assert np.mean([s.speaker() == 2 for s in states[moved:]]) > 0.95


def test_detector_honours_a_known_audio_video_offset():
    """Audio 0.4 s late (outside the default lag range): found only once the offset is set."""
    rng = np.random.default_rng(3)
    n, fps, lag = 250, 25, 10
    syll = np.clip(np.convolve(rng.random(n + lag) > 0.6, np.ones(4) / 4, "same"), 0, 1)
    mouth, env = 0.3 * syll[lag:], syll[:n]  # the sound at frame k is the mouth of frame k - lag
    plain = _drive(SyncSpeakerDetector(), [mouth], env, np.ones(n), fps)
    shifted = _drive(SyncSpeakerDetector(SpeakingParams(offset=lag / fps)), [mouth], env, np.ones(n), fps)
    assert np.mean([s.speaker() == 1 for s in shifted[80:]]) > 0.9
    assert np.mean([s.speaker() == 1 for s in plain[80:]]) < 0.2


def test_mouth_opening_is_independent_of_face_size():
    small, big = _face(1, 0.2), _face(2, 0.2)
    big.landmarks[:, :2] *= 3
    assert mouth_opening(small) == pytest.approx(mouth_opening(big))


# -- the scenes, end to end -----------------------------------------------------------------
#
# One 8 s scene (seed 12), each variant analysed once per session and shared by every test
# below (the focus test rides on the "neither" run instead of a run of its own).  The bounds are what the design keeps on this scene with a margin; the figures over
# many random scenes are in docs/fusion.md (`python benchmarks/speaking.py --quality`).

FOCUS_AT = 4.0  # s: in the "neither" run, face A (the smaller) is selected from here on


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    return avscene.build(tmp_path_factory.mktemp("avscene"), MEDIA, seed=12, duration=8.0)


@pytest.fixture(scope="session")
def voiceless(scene):
    """The two videos analysed without the voice (a, b, switch and neither share one video)."""
    two = avscene.analyse(scene.path("a"), **{"voice.enabled": False})
    return {"a": two, "b": two, "neither": two,
            "silent_face": avscene.analyse(scene.path("silent_face"), **{"voice.enabled": False})}


@pytest.fixture(scope="session")
def runs(scene):
    """Every variant through the real engine once: variant -> (results, track id -> "a"/"b").
    In "neither" face A is selected from FOCUS_AT on (the focus changes only the primary)."""
    out = {}
    for variant in ("a", "b", "switch", "neither", "silent_face"):
        focus = (FOCUS_AT, "a") if variant == "neither" else None
        results = avscene.analyse(scene.path(variant), focus_at=focus)
        out[variant] = (results, avscene.sides(results))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "bound"), [("a", 0.93), ("b", 0.93)])
def test_the_speaking_face_is_the_primary(scene, runs, variant, bound):
    results, side = runs[variant]
    assert sorted(side.values()) == ["a", "b"], "both faces keep one track each"
    share = avscene.measure(scene, variant, results)["primary"]
    print(f"\n{variant}: the speaking face is primary on {share:.1%} of the speech frames")
    # The goal is 90 %.  This scene: a 97.3 %, b 97.9 %.  Over 28 random 8 s scenes
    # (docs/fusion.md): a 97.5 % (worst 93.9 %), b 99.2 % (worst 93.2 %).
    assert share >= bound


@pytest.mark.slow
def test_attribution_follows_the_voice_to_the_other_face(scene, runs):
    """The audio follows A, then (from half-time) B: the primary moves to B within 1 s of
    media time after B's first syllable, and stays with B."""
    results, _ = runs["switch"]
    m = avscene.measure(scene, "switch", results)
    print(f"\nswitch: primary moved to B {m['latency']:.2f} s (media time) after B's first syllable; "
          f"A primary on {m['before']:.1%} of A's speech frames, B on {m['after']:.1%} of B's after the move")
    assert m["latency"] <= 1.0, "attribution moves within 1 s of the new speaker's speech"
    assert m["before"] >= 0.9
    assert m["after"] >= 0.9, "and stays with B while B speaks"


@pytest.mark.slow
def test_speech_that_follows_neither_face_goes_to_the_offscreen_voice(scene, runs):
    results, _ = runs["neither"]
    m = avscene.measure(scene, "neither", results)
    voiced = [r for r in results if r.voice is not None]
    print(f"\nneither: a face marked speaking on {m['marked']:.1%} of frames; off-screen voice on "
          f"{m['offscreen']:.1%} of {len(voiced)} frames with voice evidence")
    assert m["marked"] <= 0.1
    assert len(voiced) >= 0.5 * len(results) and m["offscreen"] >= 0.9
    for r in voiced:
        if r.offscreen is not None:
            assert r.offscreen.shares == {"voice": 1.0}


@pytest.mark.slow
def test_a_silent_face_is_not_marked_while_someone_else_speaks(scene, runs):
    results, side = runs["silent_face"]
    assert list(side.values()) == ["a"]
    speaking = [f.speaking for r in results for f in r.faces]
    heard = [r for r in results if (r.speech or 0) >= 0.5]
    print(f"\nsilent face: max P(speaking) {max(speaking):.2f} over {len(heard)} frames with speech heard")
    assert len(heard) >= 0.4 * len(results), "speech is heard"
    assert avscene.measure(scene, "silent_face", results)["marked"] <= 0.01
    assert all(r.primary == r.faces[0].track_id for r in results if r.faces), "the only face is the primary"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["a", "b", "neither", "silent_face"])
def test_voice_never_changes_the_result_of_a_face_that_is_not_speaking(runs, voiceless, variant):
    """Every face's own fused result equals, frame for frame, the one from the same video
    analysed without the voice — on every frame before the detector first judges that face to
    be speaking (all of them for a face never judged speaking)."""
    results, side = runs[variant]
    silent = voiceless[variant]
    assert len(silent) == len(results)
    side_q = avscene.sides(silent)
    never = 0
    for face in sorted(set(side.values())):
        compared = 0
        for r, q in zip(results, silent):
            mine = [f for f in r.faces if side[f.track_id] == face]
            if mine and (mine[0].speaking or 0.0) >= 0.5:
                break  # judged speaking from here on: the voice may join it
            theirs = [f for f in q.faces if side_q[f.track_id] == face]
            if not mine or not theirs or r.fused_by_track.get(mine[0].track_id) is None:
                continue
            ours, ref = r.fused_by_track[mine[0].track_id], q.fused_by_track[theirs[0].track_id]
            assert ours.shares.get("voice", 0.0) == 0.0
            np.testing.assert_array_equal(ours.probs, ref.probs)
            compared += 1
        else:
            never += 1
            assert compared >= 0.8 * len(results), f"{face}: never judged speaking, compared on every frame"
    if variant in ("a", "silent_face"):  # in b the detector takes A for the speaker for a moment
        assert never >= 1, "the face that does not speak is never judged speaking"
    # …while the voice did reach someone: the speaker's own result, or the off-screen voice
    with_voice = [r for r in results if r.voice is not None]
    assert with_voice
    got = sum(1 for r in with_voice
              if r.offscreen is not None or any(p and p.shares.get("voice", 0) > 0 for p in r.fused_by_track.values()))
    assert got >= 0.9 * len(with_voice)


@pytest.mark.slow
def test_the_speaker_gets_the_voice_weighted_by_speaking(runs):
    results, side = runs["a"]
    shares = [r.fused_by_track[f.track_id].shares.get("voice", 0.0) for r in results for f in r.faces
              if side[f.track_id] == "a" and r.fused_by_track.get(f.track_id) is not None and (f.speaking or 0) >= 0.5]
    assert shares and np.mean([s > 0 for s in shares]) >= 0.9
    frame_level = [r for r in results if r.primary is not None and side[r.primary] == "a"]
    assert frame_level and all(r.fused is r.fused_by_track[r.primary] for r in frame_level)


@pytest.mark.slow
def test_focus_selects_the_primary_while_nobody_visible_speaks(runs):
    """Speech off camera: the primary is the largest face (B) until face A is selected
    (Engine.set_focus, as --focus and a click in the window do), then A."""
    results, side = runs["neither"]

    def nobody(rs):  # frames with nobody visible judged speaking for over a second (the hold)
        out, last = [], -10.0
        for r in rs:
            if any((f.speaking or 0) >= 0.5 for f in r.faces):
                last = r.t
            elif r.faces and r.t - last > 1.0:
                out.append(r)
        return out

    quiet = nobody(results)
    before = [r for r in quiet if r.t < FOCUS_AT]
    after = [r for r in quiet if r.t > FOCUS_AT + 0.1]  # the result after the one that set it
    assert len(before) >= 0.1 * len(results) and len(after) >= 0.25 * len(results)
    assert all(side.get(r.primary) == "b" for r in before), "default: the largest face (B)"
    assert all(side.get(r.primary) == "a" for r in after), "selected: A"


@pytest.mark.slow
def test_primary_does_not_flicker(runs):
    for variant in ("a", "b", "neither"):
        results, side = runs[variant]
        primary = avscene.primaries(results, side)
        changes = int(np.sum(primary[1:] != primary[:-1]))
        assert changes <= 6, f"{variant}: the primary changed {changes} times in 8 s"


@pytest.mark.slow
def test_log_schema_names_the_person_and_the_offscreen_voice(runs):
    results, side = runs["a"]
    recs = [json.loads(json.dumps(to_record(r))) for r in results]
    speaking = [r for r in recs if any((f["speaking"] or 0) >= 0.5 for f in r["faces"])]
    assert speaking
    for rec in speaking:
        assert rec["primary"] in [f["id"] for f in rec["faces"]]
        for f in rec["faces"]:
            assert set(f) >= {"speaking", "fused", "label_fused", "valence", "arousal", "shares"}
            assert sum(f["fused"].values()) == pytest.approx(1.0, abs=2e-3)
            assert f["label_fused"] == max(f["fused"], key=f["fused"].get)
        me = next(f for f in rec["faces"] if f["id"] == rec["primary"])
        assert rec["fused"] == me["fused"] and rec["label"] == me["label_fused"]
    off = [r for r in (json.loads(json.dumps(to_record(x))) for x in runs["neither"][0]) if r["offscreen"]]
    assert off and set(off[0]["offscreen"]) == {"fused", "label", "confidence", "valence", "arousal"}
    rows = csv_rows(speaking[0])
    assert all(len(row) == len(CSV_COLUMNS) for row in rows)
    row = dict(zip(CSV_COLUMNS, rows[0]))
    assert row["primary"] == speaking[0]["primary"] and row["speaking"] == speaking[0]["faces"][0]["speaking"]


def test_detector_cost_per_face():
    """Generous bound (an order of magnitude over the ≤ 1 ms budget would fail); the
    figures are in benchmarks/speaking.py."""
    det = SyncSpeakerDetector()
    rng = np.random.default_rng(0)
    faces = [_face(i, 0.1, 120 * i) for i in range(1, 6)]
    for k in range(100):
        det.insert_audio(AudioChunk(k / 25, rng.normal(0, 0.1, 640).astype(np.float32), 16000))
        t0 = time.perf_counter()
        det.update(k / 25, faces, 0.9)
        dt = time.perf_counter() - t0
    assert dt / len(faces) < 0.01
