"""Plain data passed between the stages of the engine.

Sources produce :class:`VideoFrame` and :class:`AudioChunk` items in time
order on one clock (seconds; media time for files and sessions, monotonic time
since the session start for live devices).  Stages turn them into
:class:`FaceObservation`, :class:`ModalityEvidence` and finally
:class:`FrameResult`, which sinks write and the GUI draws.  Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class VideoFrame:
    index: int  # 0-based frame number within the source
    t: float  # seconds on the source clock (presentation time)
    image: np.ndarray  # H x W x 3, uint8, RGB, C-contiguous


@dataclass(frozen=True, slots=True)
class AudioChunk:
    t: float  # seconds on the source clock of the first sample
    samples: np.ndarray  # float32, shape [n] (mono) or [n, channels], range [-1, 1]
    rate: int  # samples per second of ``samples``

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / float(self.rate)


@dataclass(slots=True)
class FaceObservation:
    """One face found in one frame by the landmark stage."""

    landmarks: np.ndarray  # [478, 3] float32, x/y in pixels, z in mediapipe units scaled by width
    blendshapes: np.ndarray  # [52] float32 in [0, 1] (names in emotiond.face.landmarks.BLENDSHAPES)
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, clipped to the image
    quality: float  # [0, 1]: how much this face can be trusted (size, pose, visibility)
    track_id: int = -1  # stable while the face stays in view; assigned by the tracker
    emotion: np.ndarray | None = None  # probabilities over labels.EMOTIONS, set by the emotion stage
    pose: tuple[float, float, float] | None = None  # head yaw, pitch, roll in degrees (face.landmarks.head_pose)
    reliability: float | None = None  # [0, 1] can the expression be read (face.reliability); set with emotion
    label: str | None = None  # the most probable class, or "uncertain" when reliability is low; set with emotion
    speaking: float | None = None  # P(this face is talking), set by the active-speaker stage (None: no audio)


@dataclass(frozen=True, slots=True)
class ModalityEvidence:
    """What one modality says at one moment, ready for fusion.

    ``probs`` is a distribution over labels.EMOTIONS with zeros outside
    ``covered`` (the classes the model can express), summing to 1 over them.
    ``reliability`` in [0, 1] scales its weight; 0 means "present but useless".
    """

    name: str  # "face", "voice", ...
    probs: np.ndarray
    covered: np.ndarray  # bool mask over labels.EMOTIONS
    reliability: float
    arousal: float | None = None  # the modality's own arousal estimate (-1..1), when it has one


@dataclass(slots=True)
class FusedResult:
    probs: np.ndarray  # distribution over labels.EMOTIONS (smoothed)
    label: str
    confidence: float  # probability of ``label``
    shares: dict[str, float]  # modality -> share of the fused result (sums to 1)
    valence: float
    arousal: float


@dataclass(slots=True)
class FrameResult:
    """Everything the engine knows at one video frame (or audio tick)."""

    t: float
    frame: int  # frame index; -1 for an audio-only tick
    faces: list[FaceObservation] = field(default_factory=list)
    voice: np.ndarray | None = None  # distribution over labels.EMOTIONS (zeros where uncovered)
    speech: float | None = None  # voice-activity probability of the current window
    voice_arousal: float | None = None  # the voice model's arousal estimate (-1 calm .. 1 aroused)
    fused: FusedResult | None = None  # the frame-level result: the primary face's fusion (or the voice's)
    primary: int | None = None  # track id of the face ``fused`` speaks for; None: no face (voice only)
    fused_by_track: dict[int, FusedResult | None] = field(default_factory=dict)  # every face track's own fusion
    faces_unanalysed: int = 0  # faces seen beyond face.max_faces (not in ``faces``)
    offscreen: FusedResult | None = None  # the off-screen voice: speech while no visible face is talking
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds

    @property
    def primary_face(self) -> FaceObservation | None:
        """The face ``fused`` speaks for (see ``primary``), or None."""
        if self.primary is None:
            return None
        return next((f for f in self.faces if f.track_id == self.primary), None)
