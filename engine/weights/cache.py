"""Where downloaded weights live, and the SHA-256 recorded beside each file on its first use."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def weights_dir() -> Path:
    """$DETCLI_WEIGHTS_DIR, else $XDG_CACHE_HOME/detcli/weights, else ~/.cache/detcli/weights."""
    env = os.environ.get("DETCLI_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "detcli" / "weights"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path: str | Path) -> str | None:
    """The SHA-256 recorded when `path` was first verified (sha256sum format), or None."""
    side = _sidecar(Path(path))
    if not side.is_file():
        return None
    text = side.read_text().split()
    return text[0] if text else None


def record_sha256(path: str | Path, digest: str) -> None:
    """Write `<file>.sha256` in the format `sha256sum -c` reads."""
    path = Path(path)
    _sidecar(path).write_text(f"{digest}  {path.name}\n")


def forget(path: str | Path) -> None:
    """Remove a cached file and its recorded SHA-256 (a file that failed verification)."""
    path = Path(path)
    for p in (path, _sidecar(path)):
        if p.exists():
            p.unlink()
