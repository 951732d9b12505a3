"""Recording sessions (media + predictions + metadata in one folder) from any source.

* :class:`RecordingSpan` — one recording (start, write with back-pressure, the results that
  belong to it, stop/finalise, ``done``), the same for the command line and the window;
* :class:`RecordingSource` — a source wrapper that feeds its current span;
* :class:`SessionRecorder` — the media and metadata writer under a span.
"""

from emotiond.recording.recorder import (
    MEDIA_FILE,
    METADATA_FILE,
    PREDICTIONS_FILE,
    SessionRecorder,
    check_record_settings,
    check_record_target,
    session_folder,
)
from emotiond.recording.span import RecordingSource, RecordingSpan

__all__ = ["MEDIA_FILE", "METADATA_FILE", "PREDICTIONS_FILE", "RecordingSource", "RecordingSpan", "SessionRecorder",
           "check_record_settings", "check_record_target", "session_folder"]
