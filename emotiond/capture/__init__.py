"""Live capture: one monotonic clock, camera and microphone threads, a synchronized ring buffer.

Dependency direction: capture → types/errors only (no engine, no GUI, no models).
``sounddevice`` (PortAudio) is imported only when a real microphone is opened or
listed, so everything else works where PortAudio is missing.
"""

from emotiond.capture.camera import CameraCapture
from emotiond.capture.clock import Clock
from emotiond.capture.microphone import AudioTimeline, MicrophoneCapture
from emotiond.capture.ringbuffer import Cursor, SyncRingBuffer, merge_chunks

__all__ = ["AudioTimeline", "CameraCapture", "Clock", "Cursor", "MicrophoneCapture", "SyncRingBuffer", "merge_chunks"]
