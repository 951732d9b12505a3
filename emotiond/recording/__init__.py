"""Recording sessions (media + predictions + metadata in one folder) from any source."""

from emotiond.recording.recorder import (
    MEDIA_FILE,
    METADATA_FILE,
    PREDICTIONS_FILE,
    RecordingSource,
    SessionRecorder,
    session_folder,
)

__all__ = ["MEDIA_FILE", "METADATA_FILE", "PREDICTIONS_FILE", "RecordingSource", "SessionRecorder", "session_folder"]
