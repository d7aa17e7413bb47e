"""From what a user typed (a registry name or a path) to a verified file on disk."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.weights import cache
from engine.weights.download import download_file, part_path
from engine.weights.errors import UnknownWeights, WeightsCorrupt, WeightsUnavailable
from engine.weights.registry import WeightsEntry, find_entry
from engine.weights.verify import verify_structure

_PATH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


@dataclass
class ResolvedWeights:
    """A weights file ready to load, and where it came from (recorded in the run history)."""

    path: Path
    name: str | None  # the registry name, None for a user's own file
    entry: WeightsEntry | None
    sha256: str
    url: str | None
    downloaded: bool
    sha256_pinned: bool  # checked against a published value (else: recorded on first use)

    def provenance(self) -> dict:
        return {
            "name": self.name,
            "file": str(self.path),
            "sha256": self.sha256,
            "sha256_pinned": self.sha256_pinned,
            "url": self.url,
            "downloaded": self.downloaded,
        }


def looks_like_path(text: str) -> bool:
    """A value is a path when it names a file, has a directory part, or ends like a checkpoint."""
    return os.sep in text or "/" in text or text.lower().endswith(_PATH_SUFFIXES) or Path(text).exists()


def file_url(entry: WeightsEntry, mirror: str | None = None) -> str:
    """The entry's official URL, or its official file name under a mirror ($DETCLI_WEIGHTS_MIRROR)."""
    mirror = mirror or os.environ.get("DETCLI_WEIGHTS_MIRROR") or None
    return f"{mirror.rstrip('/')}/{entry.file}" if mirror else entry.url


def resolve_source(
    name_or_path: str | Path, mirror: str | None = None, progress: bool = True
) -> ResolvedWeights:
    """Find, download if needed, and verify the weights `name_or_path` designates."""
    text = str(name_or_path)
    entry = None if isinstance(name_or_path, Path) else find_entry(text)
    if entry is None:
        path = Path(text).expanduser()
        if path.is_file():
            return ResolvedWeights(path, None, None, cache.sha256_file(path), None, False, False)
        if looks_like_path(text):
            raise UnknownWeights(f"weights file not found: {path}")
        from engine.weights.registry import get_entry

        get_entry(text)  # raises with "did you mean"
    return _resolve_entry(entry, mirror, progress)


def resolve_weights(name_or_path: str | Path, mirror: str | None = None, progress: bool = True) -> Path:
    """The local path of a registry name (downloaded into the cache on first use) or of a user's file."""
    return resolve_source(name_or_path, mirror, progress).path


def cached_file(entry: WeightsEntry) -> Path:
    """Where `entry` lives in the cache (whether or not it is there yet)."""
    return cache.weights_dir() / entry.file


def _resolve_entry(entry: WeightsEntry, mirror: str | None, progress: bool) -> ResolvedWeights:
    dest = cached_file(entry)
    url = file_url(entry, mirror)
    downloaded = False
    if not dest.is_file():
        try:
            download_file(url, dest, progress=progress)
        except WeightsUnavailable as e:
            raise WeightsUnavailable(
                f"{e}\nWithout network: download {entry.url} by hand and put it at {dest}, or set "
                "DETCLI_WEIGHTS_MIRROR (or --mirror) to a folder URL that holds it under its official name"
            ) from None
        downloaded = True
    digest = _verify(entry, dest, downloaded)
    return ResolvedWeights(dest, entry.name, entry, digest, url, downloaded, entry.sha256 is not None)


def _verify(entry: WeightsEntry, path: Path, fresh: bool) -> str:
    """Check a cached file against the pinned or recorded SHA-256 (or its structure on first use)."""
    digest = cache.sha256_file(path)
    expected = entry.sha256 or cache.recorded_sha256(path)
    if expected and digest != expected:
        cache.forget(path)
        source = "published" if entry.sha256 else "recorded at its first download"
        raise WeightsCorrupt(
            f"checksum mismatch for {entry.file}: SHA-256 {digest} ({path.stat().st_size if path.exists() else 0:,}"
            f" bytes), expected {expected} ({source}"
            + (f", {entry.bytes:,} bytes" if entry.bytes else "")
            + f"); the file was removed from the cache ({path}): download it again"
        )
    if not expected or fresh:
        try:
            verify_structure(path, entry)
        except WeightsCorrupt:
            cache.forget(path)
            raise
        if not entry.sha256:
            cache.record_sha256(path, digest)
    return digest


def add_to_cache(path: str | Path, name: str) -> ResolvedWeights:
    """Copy a file the user already has into the cache under `name`'s official file name, verified."""
    from engine.weights.registry import get_entry

    entry = get_entry(name)
    src = Path(path).expanduser()
    if not src.is_file():
        raise UnknownWeights(f"weights file not found: {src}")
    dest = cached_file(entry)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_path(dest)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    for old in (dest.with_name(dest.name + ".sha256"),):
        if old.exists():
            old.unlink()
    digest = _verify(entry, dest, True)
    return ResolvedWeights(dest, entry.name, entry, digest, None, False, entry.sha256 is not None)
