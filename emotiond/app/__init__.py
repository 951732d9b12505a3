"""The application layer: the one way every front end (CLI, GUI, batch) analyses a source.

* :class:`Analysis` — open a source, build its engine from :class:`Models`, run it with the
  one pacer, write the sinks, optionally record (:mod:`emotiond.app.analysis`);
* :class:`Models` — everything loaded once per process (:mod:`emotiond.models`);
* :func:`resolve_source_spec`, :func:`crash_report`, :func:`internal_error` (:mod:`emotiond.app.specs`).

Qt-free; front ends (``emotiond.cli``, ``emotiond.gui``) import this, never the reverse.
"""

from emotiond.app.analysis import Analysis, runner_clock, watched
from emotiond.app.specs import DEMO, crash_report, demo_path, internal_error, resolve_source_spec
from emotiond.models import Models

__all__ = ["Analysis", "Models", "runner_clock", "watched", "DEMO", "crash_report", "demo_path", "internal_error",
           "resolve_source_spec"]
