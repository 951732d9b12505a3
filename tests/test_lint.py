"""ruff (configured in pyproject.toml, [tool.ruff]) passes on the whole tree, mypy ([tool.mypy])
on the typed core, and each would catch a real mistake."""

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


def mypy() -> list[str]:
    exe = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("mypy is in the `test` extra: pip install -e '.[test]'")
    return [exe]


def test_mypy_passes_on_the_core(tmp_path):
    """The modules listed in [tool.mypy] files, from a cold cache (~3 s of CPU)."""
    proc = subprocess.run([*mypy(), "--cache-dir", str(tmp_path / "cache")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr


def test_mypy_catches_a_type_error_in_the_core(tmp_path):
    """The same configuration on a copy of a core module with a mistake mypy must see."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "emotiond").mkdir()
    (tmp_path / "emotiond" / "pacer.py").write_text(
        "def late(t: float) -> float:\n    return t + 'seconds'\n")
    proc = subprocess.run([*mypy(), "--cache-dir", str(tmp_path / "cache"), "emotiond/pacer.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "[operator]" in proc.stdout, proc.stdout + proc.stderr
