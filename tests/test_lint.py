"""ruff (configured in pyproject.toml, [tool.ruff]) passes on the whole tree, and it would
catch a real mistake."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("ruff is in the `test` extra: pip install -e '.[test]'")
    return [exe]


def test_ruff_passes_on_the_tree():
    proc = subprocess.run([*ruff(), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_catches_an_undefined_name(tmp_path):
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "broken.py").write_text("def f():\n    return undefined_name\n")
    proc = subprocess.run([*ruff(), "check", "--no-cache", "."], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "F821" in proc.stdout, proc.stdout + proc.stderr
