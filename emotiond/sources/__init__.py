"""Sources: where frames and audio come from.  See :mod:`emotiond.sources.base`."""

from __future__ import annotations

from pathlib import Path

from emotiond.errors import SourceError
from emotiond.sources.base import Item, Source, SourceInfo
from emotiond.session_layout import is_session
from emotiond.sources.media import IMAGE_EXTENSIONS, ImageSource, MediaFileSource, check_not_special

__all__ = ["Item", "Source", "SourceInfo", "open_source", "ImageSource", "MediaFileSource"]


def is_camera_spec(spec: str) -> bool:
    return spec == "camera" or spec.startswith("camera:")


def open_source(spec: str | Path, config=None, *, clock: str = "fast") -> Source:
    """Open what the user named: a media file, an image, an image folder, a recorded
    session folder, or ``camera`` / ``camera:N`` for the live devices."""
    text = str(spec)
    if is_camera_spec(text):
        from emotiond.sources.live import LiveSource

        return LiveSource.from_spec(text, config)
    path = Path(text).expanduser()
    if path.is_dir():
        if is_session(path):
            from emotiond.sources.session import SessionSource

            return SessionSource(path, clock=clock)
        return ImageSource(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder", "check the path, or use `camera` for the live camera")
    check_not_special(path)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSource(path)
    return MediaFileSource(path)
