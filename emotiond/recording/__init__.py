"""Recording sessions (media + predictions + metadata in one folder) from any source."""

from emotiond.recording.recorder import (
    MEDIA_FILE,
    METADATA_FILE,
    PREDICTIONS_FILE,
    RecordingSource,
    SessionRecorder,
    check_record_settings,
    check_record_target,
    session_folder,
)

__all__ = ["MEDIA_FILE", "METADATA_FILE", "PREDICTIONS_FILE", "RecordingSource", "SessionRecorder", "check_record_settings",
           "check_record_target", "session_folder"]
