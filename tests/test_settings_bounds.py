"""Every numeric setting is bounded and finite; a bad one names the key and the range, whether it
comes from the environment, a TOML file or a flag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emotiond.config import Config, load_config
from emotiond.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key, value, shown", [
    ("voice.hop", 1e-6, "0.05 … 10"),
    ("voice.hop", float("inf"), "0.05 … 10"),
    ("fusion.smoothing_tau", float("inf"), "0.0 … 60"),
    ("fusion.smoothing_tau", float("nan"), "0.0 … 60"),
    ("face.max_faces", 0, "1 … 32"),
    ("voice.vad_threshold", 1.5, "0.0 … 1.0"),
    ("face.min_detection_confidence", -0.1, "0.0 … 1.0"),
    ("capture.fps", 1e9, "1.0 … 240"),
    ("record.queue_seconds", 0.0, "0.1 … 60"),
])
def test_out_of_range_settings_name_key_and_range(key, value, shown):
    with pytest.raises(ConfigError) as e:
        load_config(None, {key: value})
    assert key in e.value.message and shown in e.value.message


def test_both_weights_zero_is_refused():
    with pytest.raises(ConfigError, match="both 0"):
        load_config(None, {"fusion.face_weight": 0, "fusion.voice_weight": 0})
    assert load_config(None, {"fusion.face_weight": 0}).fusion.voice_weight == 1.0  # one may be 0


def test_every_numeric_setting_has_an_upper_and_a_lower_bound():
    def walk(model, prefix=""):
        for name, f in model.model_fields.items():
            ann = f.annotation
            if hasattr(ann, "model_fields"):
                yield from walk(ann, prefix + name + ".")
            elif ann in (int, float, int | None, float | None) and name != "schema_version":
                yield prefix + name, f

    unbounded = []
    for key, f in walk(Config):
        lo = any(getattr(m, "ge", None) is not None or getattr(m, "gt", None) is not None for m in f.metadata)
        hi = any(getattr(m, "le", None) is not None or getattr(m, "lt", None) is not None for m in f.metadata)
        if not (lo and hi):
            unbounded.append(key)
    assert not unbounded


@pytest.mark.parametrize("how", ["env", "toml", "flag"])
def test_the_cli_refuses_a_runaway_setting_from_any_source(tmp_path, how):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    env.pop("EMOTIOND_CONFIG", None)
    args = [sys.executable, "-m", "emotiond", "run", "demo", "--no-progress"]
    if how == "env":
        env["EMOTIOND_FUSION__SMOOTHING_TAU"] = "inf"
    elif how == "toml":
        (tmp_path / "c.toml").write_text("[fusion]\nsmoothing_tau = inf\n")
        args += ["--config", str(tmp_path / "c.toml")]
    else:
        args += ["--smoothing", "inf"]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "fusion.smoothing_tau" in proc.stderr and "0.0 … 60" in proc.stderr and "Traceback" not in proc.stderr
