"""Per-person fusion: every face track has its own fused result; the voice joins the one who talks.

Pure state machine, no I/O (docs/fusion.md, "Who is talking").  Per frame it gets the faces
(with their face-emotion distributions and track ids), what the active-speaker stage says
(:class:`~emotiond.face.speaking.SpeakingState`) and the voice evidence, and it decides:

* **whose voice it is** — the face judged to be speaking (the detector's turn holder if its
  P(speaking) ≥ threshold; another face only while nobody visible holds the turn, or if it
  was the speaker already) owns the voice; speech heard while no visible face talks belongs to the *off-screen
  voice*; between phrases (no speech heard) the last owner keeps the fading voice evidence;
* **each person's fused result** — one :class:`~emotiond.fusion.FusionScorer` per track
  (smoothing, valence/arousal and shares of its own); the voice evidence joins only its
  owner, its reliability multiplied by the owner's speaking probability — a face that is not
  speaking is fused from its face alone, so the voice cannot change it;
* **the primary person** the frame-level result speaks for — the active speaker while
  someone speaks, otherwise the face the user selected (:meth:`People.set_focus`), otherwise
  the largest face, with hysteresis: the last speaker stays primary for ``hold`` seconds
  after they stop talking (pauses between phrases) — at most as long as their turn lasted —
  and another face takes over from the largest only when it is clearly larger
  (``switch_ratio``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from emotiond.face.reliability import UNCERTAIN
from emotiond.face.speaking import SpeakingState
from emotiond.fusion import FusionScorer, confidence_factor, evidence
from emotiond.types import FaceObservation, FusedResult, ModalityEvidence

OFFSCREEN = -1  # the owner id of speech no visible face is making


def area(f: FaceObservation) -> float:
    return (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])


@dataclass
class PeopleResult:
    primary: int | None  # track id the frame-level result is about
    fused: FusedResult | None  # the primary's fused result (or the off-screen voice's without faces)
    offscreen: FusedResult | None  # the off-screen voice while it counts
    speaker: int | None  # the face judged to be talking (None: nobody visible)
    by_track: dict[int, FusedResult | None]  # every face's own fused result


class People:
    def __init__(self, weights: dict[str, float], smoothing_tau: float = 0.5, reset_after: float = 2.0,
                 threshold: float = 0.5, switch_ratio: float = 1.4, forget_after: float = 2.0, speech_on: float = 0.3,
                 hold: float = 1.0, uncertain_below: float = 0.0):
        self.weights = dict(weights)
        self.smoothing_tau = smoothing_tau
        self.reset_after = reset_after
        self.threshold = threshold
        self.switch_ratio = switch_ratio
        self.forget_after = forget_after
        self.speech_on = speech_on
        self.hold = hold
        self.uncertain_below = uncertain_below
        self.reset()

    def reset(self) -> None:
        self._scorers: dict[int, FusionScorer] = {}
        self._seen: dict[int, float] = {}
        self._owner: int | None = None  # who the voice belongs to (a track id, OFFSCREEN, or None)
        self._owner_weight = 0.0
        self._primary: int | None = None
        self._last_speaker: tuple[int, float] | None = None  # (track id, last time judged speaking)
        self._turn_start = 0.0  # when the last speaker's turn began
        self.focus: int | None = None
        self._unfocused = False  # the focus was just cleared: the largest face, without hysteresis

    def set_focus(self, track_id: int | None) -> None:
        """The face the user selected (GUI click, ``--focus``); None: back to the largest face
        (at once: the face that was selected does not keep the place by hysteresis)."""
        self.focus = None if track_id is None else int(track_id)
        if self.focus is None:
            self._unfocused = True

    def set_smoothing(self, tau: float) -> None:
        self.smoothing_tau = max(0.0, float(tau))
        for s in self._scorers.values():
            s.smoothing_tau = self.smoothing_tau

    def _scorer(self, key: int) -> FusionScorer:
        s = self._scorers.get(key)
        if s is None:
            s = self._scorers[key] = FusionScorer(self.weights, self.smoothing_tau, self.reset_after)
        return s

    def update(self, t: float, faces: list[FaceObservation], speaking: SpeakingState | None,
               voice: ModalityEvidence | None, independent: bool = False) -> PeopleResult:
        for f in faces:
            self._seen[f.track_id] = t
        for tid in [k for k, last in self._seen.items() if t - last > self.forget_after]:
            del self._seen[tid]
            self._scorers.pop(tid, None)
            if self.focus == tid:
                self.focus = None

        # whose voice is it?
        speaker = None
        if speaking is not None:
            visible = {f.track_id for f in faces}
            turn = speaking.turn if speaking.turn in visible else None
            state = SpeakingState(speaking.speech, {k: v for k, v in speaking.speaking.items() if k in visible}, turn)
            speaker = state.speaker(self.threshold)
            if (turn is not None and speaker not in (None, turn)
                    and (self._last_speaker is None or self._last_speaker[0] != speaker)):
                speaker = None  # somebody else holds the turn: a face looking in sync by chance does not take it
            if speaker is not None and speaker != turn and self._owner in state.speaking and self._owner != speaker:
                # hysteresis: the current speaker keeps the voice unless the other is clearly more likely
                held = state.speaking[self._owner]
                if held >= self.threshold and state.speaking[speaker] < held + 0.1:
                    speaker = self._owner
            if speaking.speech >= self.speech_on:  # someone speaks now: the voice is theirs, or off screen
                if speaker is not None:
                    self._owner = speaker
                    self._owner_weight = state.speaking[speaker]
                else:
                    self._owner, self._owner_weight = OFFSCREEN, 1.0
        if speaker is not None:
            if self._last_speaker is None or self._last_speaker[0] != speaker or t - self._last_speaker[1] > self.hold:
                self._turn_start = t  # a new turn (another face, or after a silence longer than the hold)
            self._last_speaker = (speaker, t)
        primary = self._choose_primary(t, faces, speaker)
        if speaking is None:  # no speaker detection: the voice joins the primary face, or is off screen
            self._owner, self._owner_weight = (primary if primary is not None else OFFSCREEN), 1.0
        self._primary = primary
        owner = self._owner
        if owner is not None and owner != OFFSCREEN and all(f.track_id != owner for f in faces):
            owner = OFFSCREEN  # the speaker left the picture: their voice is off screen now

        # one fused result per person; the voice only with its owner
        by_track: dict[int, FusedResult | None] = {}
        for f in faces:
            items = []
            if f.emotion is not None:
                rel = f.reliability if f.reliability is not None else f.quality
                # a floor keeps an unreadable face in the result, labelled "uncertain" below
                items.append(evidence("face", f.emotion, max(1e-3, rel * confidence_factor(f.emotion))))
            mine = None
            if voice is not None and owner == f.track_id:
                mine = replace(voice, reliability=voice.reliability * self._owner_weight)
                items.append(mine)
            sc = self._scorer(f.track_id)
            if independent:
                sc.reset()
            fused_f = sc.update(t, items)
            if fused_f is not None and f.label == UNCERTAIN and (mine is None or mine.reliability < self.uncertain_below):
                fused_f.label = UNCERTAIN  # an unreadable face and no reliable voice of its own: no confident label
            by_track[f.track_id] = fused_f
        off_items = [voice] if voice is not None and owner == OFFSCREEN else []
        offscreen = self._scorer(OFFSCREEN).update(t, off_items)
        if offscreen is not None and off_items and off_items[0].reliability < self.uncertain_below:
            # the voice alone, from a model measured near chance on corpora it was not trained on
            # (its card's cross-corpus reliability), says no confident label: its distribution stays
            # in the log ("voice"), the label is "uncertain"
            offscreen.label = UNCERTAIN
        fused = by_track[primary] if primary is not None else offscreen
        return PeopleResult(primary=primary, fused=fused, offscreen=offscreen, speaker=speaker, by_track=by_track)

    def _choose_primary(self, t: float, faces: list[FaceObservation], speaker: int | None) -> int | None:
        unfocused = self._unfocused  # read before the focus: a set_focus(None) in between is seen next frame
        usable = [f for f in faces if f.emotion is not None] or faces
        if not usable:
            return None
        ids = {f.track_id for f in usable}
        if speaker is not None and speaker in ids:
            return speaker
        if (self._last_speaker is not None and self._last_speaker[0] in ids
                and t - self._last_speaker[1] <= min(self.hold, self._last_speaker[1] - self._turn_start)):
            # a pause between phrases: the speaker stays primary — for at most as long as their
            # turn has lasted, so a moment's misjudgement does not hold the primary for a second
            return self._last_speaker[0]
        focus = self.focus
        if focus is not None and focus in ids:
            return focus
        big = max(usable, key=lambda f: (area(f), -f.track_id))
        cur = next((f for f in usable if f.track_id == self._primary), None)
        if unfocused and focus is None:
            self._unfocused, cur = False, None
        if cur is not None and area(big) < self.switch_ratio * area(cur):
            return cur.track_id
        return big.track_id

