"""The core never imports Qt: the import-linter contracts in pyproject.toml hold, they
catch a violation, and the core really imports and runs with Qt absent."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter", reason="import-linter is in the `test` extra: pip install -e '.[test]'")

LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def lint(cwd: Path) -> subprocess.CompletedProcess:
    # a subprocess: grimp must find the `emotiond` of `cwd`, not the one this process imported
    return subprocess.run([sys.executable, "-c", LINT], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"})


def test_import_contracts_are_kept():
    proc = lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_contracts_catch_qt_in_the_core(tmp_path):
    shutil.copytree(REPO / "emotiond", tmp_path / "emotiond", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    # a core module importing Qt directly, and one reaching it through the GUI package
    (tmp_path / "emotiond" / "leaky_sink.py").write_text("from PySide6.QtCore import QObject\n")
    (tmp_path / "emotiond" / "leaky_engine.py").write_text("def draw():\n    from emotiond.gui import widgets\n")
    proc = lint(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 broken" in proc.stdout
    assert "emotiond.leaky_sink -> PySide6" in proc.stdout
    assert "emotiond.leaky_engine -> emotiond.gui" in proc.stdout


def test_layers_contract_catches_an_upward_import_and_a_cycle(tmp_path):
    """The layers contract (docs/module-map.md) fires on the two kinds of cycle the tree had:
    a lower layer importing a front end (gui → cli was one), and a stage reaching back up."""
    shutil.copytree(REPO / "emotiond", tmp_path / "emotiond", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "emotiond" / "gui" / "leaky_spec.py").write_text("from emotiond.cli import main\n")
    (tmp_path / "emotiond" / "sources" / "leaky_run.py").write_text("def go():\n    from emotiond.runner import run\n")
    (tmp_path / "emotiond" / "training" / "leaky_eval.py").write_text("from emotiond import evaluate\n")
    proc = lint(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Dependency direction" in out and "BROKEN" in out
    assert "emotiond.gui.leaky_spec -> emotiond.cli" in out
    assert "emotiond.sources.leaky_run -> emotiond.runner" in out
    assert "emotiond.training.leaky_eval -> emotiond.evaluate" in out


BLOCK_QT = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoQt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"):
                raise ImportError(f"{name} is blocked for this test")
            return None

    sys.meta_path.insert(0, NoQt())
    import emotiond.cli, emotiond.engine, emotiond.runner, emotiond.sinks, emotiond.sources, emotiond.config
    from emotiond.gui import display_available, gui_available
    assert not gui_available(), "without PySide6 `emotiond` must fall back to the headless run"
    assert emotiond.cli.main(["config"]) == 0
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"))
    assert not leaked, leaked
    print("core ok without Qt")
    """
)


def test_core_runs_without_qt(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCK_QT], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "DISPLAY": ":99", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "core ok without Qt" in proc.stdout
