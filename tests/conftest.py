"""Shared fixtures.  Real media comes from ../shared/media (the product owner's clips)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MEDIA = SHARED / "media"
MODELS = REPO / "models"


def media(name: str) -> Path:
    path = MEDIA / name
    if not path.is_file():
        pytest.fail(f"test media {path} is missing: the product owner's ../shared/media must be beside the repo")
    return path


@pytest.fixture(scope="session")
def single_face_mp4() -> Path:
    return media("single_face.mp4")


@pytest.fixture(scope="session")
def no_face_mp4() -> Path:
    return media("no_face.mp4")


@pytest.fixture(scope="session")
def pexels_mp4() -> Path:
    return media("WolfgangLanger_Pexels.mp4")


@pytest.fixture(scope="session")
def single_face_jpg() -> Path:
    return media("single_face.jpg")


@pytest.fixture(scope="session")
def multi_face_jpg() -> Path:
    return media("multi_face.jpg")
