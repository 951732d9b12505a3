"""The model registry: every file in ``models/`` has a card, and is verified on load.

A card is ``models/<stem>.card.toml`` beside the model file.  It names the file,
its sha256 and size, classes, input spec, preprocessing, provenance, licence and
measured accuracy.  :func:`resolve` refuses a missing, truncated or altered file
with a :class:`~emotiond.errors.ModelError` that names the file and the fix.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from emotiond.errors import ModelError

_PKG_DIR = Path(__file__).resolve().parent
_HEX64 = re.compile(r"[0-9a-f]{64}")

# The models the product needs (name -> task); `emotiond models` reports any that is missing.
REQUIRED: dict[str, str] = {
    "face_landmarker": "face-landmarks",
    "face_detector_full_range": "face-detection",
    "face_emotion_fer": "face-emotion",
    "silero_vad": "voice-activity",
    "voice_emotion": "voice-emotion",
}


def default_models_dir() -> Path:
    """``emotiond/_models`` in an installed wheel, else ``models/`` of the checkout."""
    for candidate in (_PKG_DIR / "_models", _PKG_DIR.parent / "models"):
        if candidate.is_dir():
            return candidate
    return _PKG_DIR.parent / "models"


@dataclass(frozen=True)
class ModelCard:
    name: str  # stem, e.g. "face_emotion_fer"
    path: Path  # the model file
    card_path: Path
    sha256: str
    size: int
    task: str
    classes: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # the whole card

    @property
    def rebuild_hint(self) -> str:
        script = self.data.get("provenance", {}).get("script")
        how = f"rebuild it with `python {script}`" if script else "restore it from the repository"
        return f"run `git checkout -- models/{self.path.name}` or {how}"


def _read_card(card_path: Path) -> ModelCard:
    try:
        data = tomllib.loads(card_path.read_text(encoding="utf-8"))
        return ModelCard(
            name=card_path.name.removesuffix(".card.toml"),
            path=card_path.parent / data["file"],
            card_path=card_path,
            sha256=str(data["sha256"]).lower(),
            size=int(data["size"]),
            task=str(data["task"]),
            classes=tuple(data.get("classes", ())),
            data=data,
        )
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise ModelError(
            f"model card {card_path} is unreadable ({exc.__class__.__name__}: {exc})",
            "restore it with `git checkout -- models/`",
        ) from None


def cards(models_dir: Path | None = None) -> list[ModelCard]:
    """All cards in the models folder, sorted by name."""
    root = Path(models_dir) if models_dir else default_models_dir()
    return [_read_card(p) for p in sorted(root.glob("*.card.toml"))]


def card(name: str, models_dir: Path | None = None) -> ModelCard:
    root = Path(models_dir) if models_dir else default_models_dir()
    card_path = root / f"{name}.card.toml"
    if not card_path.is_file():
        raise ModelError(
            f"no model card {card_path}",
            f"the models folder must hold {name}.card.toml and its model file; "
            "restore it with `git checkout -- models/` or set EMOTIOND_MODELS_DIR",
        )
    return _read_card(card_path)


@lru_cache(maxsize=64)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(c: ModelCard) -> str | None:
    """``None`` when the file matches its card, else what is wrong with it."""
    try:
        st = c.path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if st.st_size != c.size:
        kind = "truncated" if st.st_size < c.size else "altered"
        return f"{kind} ({st.st_size} bytes, card says {c.size})"
    try:
        digest = _sha256(c.path, st.st_size, st.st_mtime_ns)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if digest != c.sha256:
        if not _HEX64.fullmatch(c.sha256):
            return f"not checkable: its card {c.card_path.name} has a malformed sha256 ({c.sha256[:20]!r})"
        # same size, other digest: the file was altered, or the card's digest was edited
        return (f"altered or its card's sha256 is wrong (file sha256 {digest[:12]}…, card {c.card_path.name} "
                f"says {c.sha256[:12]}…)")
    return None


def resolve(name: str, models_dir: Path | None = None) -> ModelCard:
    """The card of model ``name`` after verifying its file; raises ModelError otherwise."""
    c = card(name, models_dir)
    problem = check(c)
    if problem:
        hint = c.rebuild_hint
        if "sha256" in problem and "card" in problem:  # the card may be the damaged one: restore both
            script = c.data.get("provenance", {}).get("script")
            how = f"rebuild both with `python {script}`" if script else "reinstall emotiond"
            hint = f"restore the file and its card with `git checkout -- models/{c.path.name} models/{c.card_path.name}`, or {how}"
        raise ModelError(f"model file {c.path} is {problem}", hint)
    return c
