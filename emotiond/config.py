"""The one configuration object.

Precedence (highest first): command-line flags (passed as ``overrides``),
environment variables ``EMOTIOND_<SECTION>__<KEY>`` (e.g.
``EMOTIOND_FUSION__SMOOTHING_TAU=1.0``; top-level keys as ``EMOTIOND_PROVIDER``),
the TOML file (``--config FILE``, ``$EMOTIOND_CONFIG``, or
``~/.config/emotiond/config.toml`` when it exists), then the defaults below.
``emotiond config`` prints the effective values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from emotiond.errors import ConfigError

SCHEMA_VERSION = 1
DEFAULT_CONFIG_FILE = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "emotiond" / "config.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)  # every number finite


class FaceConfig(_Section):
    max_faces: int = Field(8, ge=1, le=32, description="most faces analysed per frame (more are counted as unanalysed)")
    model: Literal["face_emotion_fer", "face_emotion_faceapi"] = Field(
        "face_emotion_fer", description="face-expression model from the catalogue (models/README.md)")
    small_faces: bool = Field(True, description="video: search small faces (down to ~5 % of the frame height) with the full-range detector")
    min_detection_confidence: float = Field(0.5, ge=0.0, le=1.0)
    min_presence_confidence: float = Field(0.5, ge=0.0, le=1.0)
    min_tracking_confidence: float = Field(0.5, ge=0.0, le=1.0)
    min_face_size: float = Field(48.0, ge=8.0, le=4096.0, description="face height (px) below which quality falls off")
    track_iou: float = Field(0.3, gt=0.0, lt=1.0, description="least box overlap that continues a track")
    track_max_gap: float = Field(1.5, ge=0.0, le=60.0, description="seconds a lost face keeps its id")
    reentry_gap: float = Field(4.0, ge=0.0, le=600.0, description="seconds within which a face re-entering near where it left gets its old id back")
    uncertain_below: float = Field(0.3, ge=0.0, le=1.0, description="reliability under which a face's label, or the voice-only result's, is 'uncertain'")
    workers: int = Field(0, ge=0, le=16, description="parallel landmark workers (frames alternate between them); 0 = one per core, at most 2")


class VoiceConfig(_Section):
    enabled: bool = True
    vad_threshold: float = Field(0.5, ge=0.0, le=1.0)
    hop: float = Field(0.5, ge=0.05, le=10.0, description="seconds between voice-emotion evaluations")
    decay_tau: float = Field(1.5, ge=0.05, le=60.0, description="seconds for voice evidence to fade after speech ends")
    model: str | None = Field(None, description="a user-trained voice model (its .onnx or .card.toml, side by side; "
                              "made by `python -m emotiond.training.voice`); its card's measured reliability sets its "
                              "fusion weight. None = the shipped model")


class FusionConfig(_Section):
    face_weight: float = Field(1.0, ge=0.0, le=100.0)
    voice_weight: float = Field(1.0, ge=0.0, le=100.0)
    smoothing_tau: float = Field(0.5, ge=0.0, le=60.0, description="time constant (s) of the exponential smoothing; 0 = off")
    reset_after: float = Field(2.0, ge=0.1, le=600.0, description="seconds without evidence after which smoothing restarts")


    @model_validator(mode="after")
    def _some_weight(self):
        if self.face_weight == 0 and self.voice_weight == 0:
            raise ValueError("face_weight and voice_weight are both 0: no modality would count; "
                             "keep at least one above 0 (allowed: 0 … 100 each)")
        return self


class SpeakingConfig(_Section):
    enabled: bool = Field(True, description="active-speaker detection: the voice joins the face that talks (docs/fusion.md)")
    window: float = Field(3.0, gt=0.1, le=10.0, description="time constant (s) of the long mouth/audio correlation window (is a face in sync at all)")
    short_window: float = Field(0.4, ge=0.0, le=5.0, description="time constant (s) of the short one (is a face in sync now: how fast its speaking probability follows); 0 = none, and no turn model")
    lag_min: float = Field(-0.04, ge=-1.0, le=1.0, description="earliest audio lag searched (s; negative: audio before the lips)")
    lag_max: float = Field(0.16, ge=-1.0, le=1.0, description="latest audio lag searched (s)")
    av_offset: float = Field(0.0, ge=-2.0, le=2.0, description="known audio–video offset of the source (s; audio later = positive)")
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="speaking probability from which a face is the speaker")

    @model_validator(mode="after")
    def _lags_ordered(self):
        if self.lag_max < self.lag_min:
            raise ValueError(f"lag_max ({self.lag_max}) is below lag_min ({self.lag_min})")
        return self


class CaptureConfig(_Section):
    camera: str = Field("0", description="camera index or a substring of its name")
    width: int = Field(640, ge=16, le=7680)
    height: int = Field(480, ge=16, le=4320)
    fps: float = Field(30.0, ge=1.0, le=240.0)
    microphone: str | None = Field(None, description="microphone index or name substring; None = system default")
    audio_rate: int | None = Field(None, ge=8000, le=192000, description="None = the device's native rate")
    ring_seconds: float = Field(10.0, ge=1.0, le=600.0, description="seconds of frames and audio kept in the ring buffer")
    ring_video_seconds: float = Field(2.0, ge=0.1, le=60.0, description="seconds of video frames kept (frames are large; audio keeps ring_seconds)")
    stall_timeout: float = Field(2.0, ge=0.1, le=60.0, description="seconds without data after which a device counts as lost")
    camera_latency: float = Field(0.0, ge=0.0, le=1.0, description="seconds the camera's picture lags reality (subtracted from frame times; lip-sync calibration)")


class RecordConfig(_Section):
    folder: Path = Field(Path.home() / "emotiond-sessions", description="where the GUI's Record button puts sessions")
    video_codec: str = "libx264"
    crf: int = Field(23, ge=0, le=51)
    audio_codec: str = "aac"
    queue_seconds: float = Field(2.0, ge=0.1, le=60.0, description="encoder backlog before frames are dropped (never blocks capture)")
    preset: str = Field("superfast", description="x264 speed preset of the recording (slower presets: smaller files, more CPU)")
    fragment_seconds: float = Field(0.2, ge=0.05, le=10.0, description="MP4 fragment interval: a crash (kill -9) loses at most this plus ~0.2 s")


class GuiConfig(_Section):
    log: Path | None = Field(None, description="the window appends every result to this .jsonl/.csv log (never truncated); None = no log")


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EMOTIOND_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        allow_inf_nan=False,
    )

    schema_version: int = SCHEMA_VERSION
    models_dir: Path | None = Field(None, description="folder with the ONNX models and cards; None = bundled")
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads per model")
    face: FaceConfig = FaceConfig()
    voice: VoiceConfig = VoiceConfig()
    fusion: FusionConfig = FusionConfig()
    speaking: SpeakingConfig = SpeakingConfig()
    capture: CaptureConfig = CaptureConfig()
    record: RecordConfig = RecordConfig()
    gui: GuiConfig = GuiConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)  # the TOML file is merged in by load_config


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _nest(overrides: dict[str, Any]) -> dict[str, Any]:
    """{"fusion.smoothing_tau": 1} -> {"fusion": {"smoothing_tau": 1}}; None values are dropped."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Build the effective configuration; raises ConfigError with the offending key."""
    if path is None:
        env_path = os.environ.get("EMOTIOND_CONFIG")
        path = Path(env_path) if env_path else (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found", "pass an existing TOML file to --config")
        try:
            import tomllib

            tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}", "fix the file or remove it") from None
    values: dict[str, Any] = {}
    if path is not None:  # file < environment < flags, without any state on the class
        values = TomlConfigSettingsSource(Config, toml_file=path)()
        values = _merge(values, EnvSettingsSource(Config)())
    try:
        return Config(**_merge(values, _nest(overrides or {})))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        where = ".".join(loc) or "config"
        src = f" (from {path}, the environment or a flag)" if path else " (from the environment or a flag)"
        allowed = _allowed(loc)
        msg = err.get("msg", "").removeprefix("Value error, ")
        raise ConfigError(
            f"invalid setting {where}{src}: {msg}" + (f" (allowed: {allowed})" if allowed else ""),
            f"set {where} within {allowed}" if allowed else "see `emotiond config` for the settings and their types",
        ) from None


def _allowed(loc: list[str]) -> str | None:
    """The range of a numeric setting, e.g. "0.05 … 10", from its field's bounds."""
    model: Any = Config
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        field = fields[part]
        model = field.annotation
    if field is None:
        return None
    lo = hi = None
    for m in field.metadata:
        lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else (getattr(m, "gt", None) if lo is None else lo)
        hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else (getattr(m, "lt", None) if hi is None else hi)
    if lo is None and hi is None:
        return None
    return f"{'-inf' if lo is None else lo} … {'inf' if hi is None else hi}"
