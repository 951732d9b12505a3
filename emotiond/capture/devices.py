"""Finding cameras and microphones, and the messages when there are none.

Cameras: on Linux the V4L2 nodes under ``/sys/class/video4linux`` (names from
sysfs, capture capability from one ``VIDIOC_QUERYCAP`` ioctl — nothing is
streamed, so listing is instant and never disturbs a camera in use).  Elsewhere
OpenCV probes indices 0..9.  Microphones: PortAudio through sounddevice.  When
the PortAudio library is missing, ``import sounddevice`` raises ``OSError``;
that becomes a :class:`~emotiond.errors.DeviceError` saying how to install it,
and nothing else (files, sessions, the camera) is affected.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from emotiond.errors import DeviceError

SYS_V4L = Path("/sys/class/video4linux")
PROBE_INDICES = range(10)

PORTAUDIO_HINT = (
    "install the PortAudio library: `sudo apt-get install libportaudio2` (Debian/Ubuntu), "
    "`sudo dnf install portaudio` (Fedora), `brew install portaudio` (macOS); "
    "files and recorded sessions work without it, and `--no-voice` runs the camera alone"
)


@dataclass(frozen=True)
class CameraDevice:
    index: int  # what cv2.VideoCapture takes
    name: str
    path: str | None = None  # /dev/videoN on Linux

    def describe(self) -> str:
        return f"camera {self.index}: {self.name}" + (f" ({self.path})" if self.path else "")


@dataclass(frozen=True)
class MicrophoneDevice:
    index: int  # PortAudio device index
    name: str
    hostapi: str
    channels: int
    default_rate: int
    is_default: bool = False

    def describe(self) -> str:
        star = " [default]" if self.is_default else ""
        return f"microphone {self.index}: {self.name} ({self.hostapi}, {self.channels} ch, {self.default_rate} Hz){star}"


# -- PortAudio -------------------------------------------------------------------
_sd = None
_sd_error: str | None = None


def import_sounddevice():
    """The sounddevice module, or a DeviceError that says how to install PortAudio."""
    global _sd, _sd_error
    if _sd is not None:
        return _sd
    if _sd_error is None:
        try:
            import sounddevice

            _sd = sounddevice
            return _sd
        except OSError as exc:  # "PortAudio library not found"
            _sd_error = str(exc) or "PortAudio library not found"
        except ImportError as exc:
            _sd_error = f"the sounddevice package is not installed ({exc})"
    if "sounddevice package" in _sd_error:
        raise DeviceError(f"microphones are unavailable: {_sd_error}", "install it with `pip install sounddevice`")
    raise DeviceError(f"microphones are unavailable: {_sd_error}", PORTAUDIO_HINT)


def list_microphones() -> list[MicrophoneDevice]:
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except Exception as exc:  # sounddevice.PortAudioError
        raise DeviceError(f"PortAudio cannot list audio devices: {exc}", "check that the sound system (PipeWire/PulseAudio/ALSA) runs") from None
    out = []
    for i, d in enumerate(devices):
        if d.get("max_input_channels", 0) <= 0:
            continue
        api = hostapis[d["hostapi"]]["name"] if 0 <= d.get("hostapi", -1) < len(hostapis) else "?"
        out.append(
            MicrophoneDevice(
                index=i,
                name=str(d["name"]),
                hostapi=api,
                channels=int(d["max_input_channels"]),
                default_rate=int(round(d.get("default_samplerate") or 0)),
                is_default=(i == default_in),
            )
        )
    return out


def resolve_microphone(spec: str | int | None) -> MicrophoneDevice:
    """The microphone named by an index or a case-insensitive name substring (None: the default)."""
    mics = list_microphones()
    if not mics:
        raise DeviceError("no microphone found", "connect one, check `emotiond devices`, or use --no-voice")
    if spec is None or str(spec).strip() in ("", "default"):
        for m in mics:
            if m.is_default:
                return m
        return mics[0]
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        for m in mics:
            if m.index == int(text):
                return m
        raise DeviceError(f"no microphone with index {text}", _available_mics(mics))
    hits = [m for m in mics if text.lower() in m.name.lower()]
    if not hits:
        raise DeviceError(f"no microphone matches {text!r}", _available_mics(mics))
    return hits[0]


def _available_mics(mics: list[MicrophoneDevice]) -> str:
    names = "; ".join(f"{m.index}: {m.name}" for m in mics[:8])
    return f"pick one of: {names} (see `emotiond devices`)"


# -- cameras ---------------------------------------------------------------------
_VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability) (104 bytes)
_V4L2_CAP_VIDEO_CAPTURE = 0x00000001
_V4L2_CAP_DEVICE_CAPS = 0x80000000


def _v4l2_is_capture(dev: Path) -> bool | None:
    """True/False from VIDIOC_QUERYCAP; None when it cannot be asked (permissions, no fcntl)."""
    try:
        import fcntl
        import struct

        fd = os.open(str(dev), os.O_RDONLY | os.O_NONBLOCK)
    except (ImportError, OSError):
        return None
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf, True)
        caps, device_caps = struct.unpack_from("<II", buf, 84)
        use = device_caps if caps & _V4L2_CAP_DEVICE_CAPS else caps
        return bool(use & _V4L2_CAP_VIDEO_CAPTURE)
    except OSError:
        return None
    finally:
        os.close(fd)


def _linux_cameras(sys_root: Path = SYS_V4L) -> list[CameraDevice]:
    out = []
    if not sys_root.is_dir():
        return out
    for node in sorted(sys_root.glob("video*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 1 << 30):
        if not node.name[5:].isdigit():
            continue
        index = int(node.name[5:])
        try:
            name = (node / "name").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            name = node.name
        dev = Path("/dev") / node.name
        capture = _v4l2_is_capture(dev) if dev.exists() else None
        if capture is False:
            continue  # metadata / output node of a camera (UVC cameras expose two nodes)
        if capture is None:
            try:  # without QUERYCAP: UVC metadata nodes have index 1
                if (node / "index").read_text().strip() not in ("0", ""):
                    continue
            except OSError:
                pass
        out.append(CameraDevice(index=index, name=name, path=str(dev)))
    return out


def _probe_cameras(indices=PROBE_INDICES) -> list[CameraDevice]:
    import cv2

    out = []
    quiet = _quiet_opencv()
    try:
        for i in indices:
            cap = cv2.VideoCapture(i)
            try:
                if cap.isOpened():
                    backend = cap.getBackendName() if hasattr(cap, "getBackendName") else "opencv"
                    out.append(CameraDevice(index=i, name=f"camera {i} ({backend})"))
            finally:
                cap.release()
    finally:
        quiet()
    return out


def _quiet_opencv():
    """Silence OpenCV's videoio warnings while probing; returns the undo function."""
    try:
        import cv2

        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        return lambda: cv2.utils.logging.setLogLevel(level)
    except Exception:
        return lambda: None


def list_cameras(probe: bool | None = None) -> list[CameraDevice]:
    """The cameras present.  ``probe``: open indices 0..9 with OpenCV (default: only off Linux)."""
    if probe is None:
        probe = not sys.platform.startswith("linux")
    if not probe:
        return _linux_cameras()
    return _probe_cameras()


def resolve_camera(spec: str | int | None) -> CameraDevice:
    """The camera named by an index ("0") or a case-insensitive name substring."""
    text = "0" if spec is None else str(spec).strip()
    if text.isdigit():
        index = int(text)
        if sys.platform.startswith("linux") and SYS_V4L.is_dir():
            for cam in _linux_cameras():
                if cam.index == index:
                    return cam
        return CameraDevice(index=index, name=f"camera {index}")
    cams = list_cameras()
    hits = [c for c in cams if text.lower() in c.name.lower()]
    if not hits:
        raise DeviceError(f"no camera matches {text!r}", _available_cams(cams))
    return hits[0]


def _available_cams(cams: list[CameraDevice]) -> str:
    if not cams:
        return "no camera is connected; connect one, or analyse a file: `emotiond run VIDEO`"
    return "pick one of: " + "; ".join(f"{c.index}: {c.name}" for c in cams[:8]) + " (see `emotiond devices`)"


def camera_present(spec: str | int | None = "0") -> bool:
    """Quick check (no streaming on Linux) whether the configured camera exists."""
    try:
        if sys.platform.startswith("linux"):
            cams = _linux_cameras()
            text = "0" if spec is None else str(spec).strip()
            if text.isdigit():
                return any(c.index == int(text) for c in cams) or (not cams and Path(f"/dev/video{text}").exists())
            return any(text.lower() in c.name.lower() for c in cams)
        resolve_camera(spec)
        return bool(list_cameras(probe=True))
    except DeviceError:
        return False


def no_camera_error(spec: str, *, detail: str = "") -> DeviceError:
    cams = list_cameras() if sys.platform.startswith("linux") else []
    what = f"camera {spec} cannot be opened" + (f" ({detail})" if detail else "")
    if sys.platform.startswith("linux") and not cams:
        return DeviceError(what, "no camera is connected (no /dev/video* capture device); connect one, or analyse a file: `emotiond run VIDEO`")
    hint = _available_cams(cams)
    if sys.platform.startswith("linux"):
        hint += "; if it exists, check that you may use it (`sudo usermod -aG video $USER`, then log in again) and that no other program holds it"
    return DeviceError(what, hint)


# -- `emotiond devices` ---------------------------------------------------------------
def describe_devices(as_json: bool = False) -> tuple[str, int]:
    """Text (or JSON) listing cameras and microphones, and the exit status (0: both lists could be made)."""
    import json

    status = 0
    cams = list_cameras()
    mic_error = None
    try:
        mics = list_microphones()
    except DeviceError as exc:
        mics, mic_error, status = [], exc, 1
    if as_json:
        doc = {
            "cameras": [asdict(c) for c in cams],
            "microphones": [asdict(m) for m in mics],
            "microphone_error": None if mic_error is None else {"message": mic_error.message, "hint": mic_error.hint},
        }
        return json.dumps(doc, indent=2), status
    lines = ["cameras:"]
    lines += [f"  {c.describe()}" for c in cams] or ["  (none found)"]
    lines.append("microphones:")
    if mic_error is not None:
        lines.append(f"  unavailable: {mic_error.message}")
        lines.append(f"  fix: {mic_error.hint}")
    else:
        lines += [f"  {m.describe()}" for m in mics] or ["  (none found)"]
    lines.append(
        "choose with `emotiond run camera:INDEX|NAME`, or capture.camera / capture.microphone in the config "
        "(EMOTIOND_CAPTURE__CAMERA, EMOTIOND_CAPTURE__MICROPHONE)"
    )
    return "\n".join(lines), status
