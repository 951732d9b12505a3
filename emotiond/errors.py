"""Errors a user can act on.

Every error the CLI or GUI shows to a person is an :class:`EmotiondError`: one
line saying what is wrong, and one saying how to fix it.  Anything else that
escapes is a bug.
"""

from __future__ import annotations


class EmotiondError(Exception):
    """A problem the user can fix; ``hint`` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line for logs and the terminal
        return f"{self.message} — {self.hint}" if self.hint else self.message


class SourceError(EmotiondError):
    """A media source (file, folder, device, session) cannot be read."""


class ModelError(EmotiondError):
    """A model file is missing, truncated, altered or unusable."""


class DeviceError(EmotiondError):
    """A capture device (camera, microphone) is missing or was lost."""


class ConfigError(EmotiondError):
    """The configuration (file, environment or flags) is invalid."""


class SinkError(EmotiondError):
    """An output (log, recording) cannot be written, e.g. the disk is full."""
