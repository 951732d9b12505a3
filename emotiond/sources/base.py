"""The one source interface: camera + microphone, media file, image(s), recorded session.

A source yields :class:`~emotiond.types.VideoFrame` and
:class:`~emotiond.types.AudioChunk` items on one clock, in non-decreasing time
order per stream (streams may interleave loosely, as a demuxer delivers them).
The engine does not know which kind of source it reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from emotiond.types import AudioChunk, VideoFrame

Item = VideoFrame | AudioChunk


@dataclass
class SourceInfo:
    """What a source knows about itself; goes into logs and session metadata."""

    kind: str  # "video", "audio", "image", "images", "session", "live"
    uri: str  # path or device description
    live: bool = False  # True: produced in real time by devices (never "fast")
    has_video: bool = True
    has_audio: bool = False
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # nominal; real per-frame timestamps are authoritative
    duration: float | None = None  # seconds, when known
    frame_count: int | None = None  # when known (for progress)
    audio_rate: int | None = None  # native rate of the audio as delivered
    audio_channels: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    info: SourceInfo

    def items(self) -> Iterator[Item]:
        """Yield frames and audio chunks until the source ends (or is closed)."""
        ...

    def close(self) -> None:
        """Release files/devices; safe to call twice and from another thread."""
        ...
