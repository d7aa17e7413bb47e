"""From a name a user types (or a path) to a verified weights file on disk.

`resolve_weights("dfine-s-coco")` finds the file in the cache or downloads it (from the official URL, or from
`DETCLI_WEIGHTS_MIRROR` / `mirror=`, a base URL holding the official file names), then checks it: the pinned
SHA-256 where a published source states one, else the SHA-256 recorded beside the file on its first download,
and always that it reads as a tensor-only checkpoint. A file that fails is removed, so the cache never keeps it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.weights.cache import forget, record_sha256, recorded_sha256, sha256_file, weights_dir
from engine.weights.download import download_file
from engine.weights.errors import UnknownWeights, WeightsCorrupt, WeightsUnavailable
from engine.weights.registry import WeightsEntry, find_entry, get_entry


@dataclass
class ResolvedWeights:
    """A verified file, and where it came from (recorded in the run's provenance)."""

    path: Path
    entry: WeightsEntry | None  # None: a user's own file given by path
    sha256: str
    source: str  # "path", "cache" or the URL it was downloaded from
    bytes_fetched: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.entry.name if self.entry else self.path.name

    def provenance(self) -> dict:
        """JSON-ready: what a run records about its starting weights."""
        return {
            "name": self.name,
            "file": str(self.path),
            "sha256": self.sha256,
            "source": self.source,
            "trained_on": self.entry.trained_on if self.entry else None,
            "licence": self.entry.licence if self.entry else None,
        }


def mirror_url() -> str | None:
    """$DETCLI_WEIGHTS_MIRROR, the base URL of an in-house copy of the release files (air-gapped sites)."""
    return os.environ.get("DETCLI_WEIGHTS_MIRROR") or None


def url_for(entry: WeightsEntry, mirror: str | None = None) -> str:
    """The official URL, or the same file name under `mirror`."""
    mirror = mirror or mirror_url()
    return f"{mirror.rstrip('/')}/{entry.file}" if mirror else entry.url


def cached_path(entry: WeightsEntry) -> Path:
    """Where `entry` lives in the cache (whether or not it is there yet)."""
    return weights_dir() / entry.file


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".pt", ".pth", ".safetensors"))


def resolve_weights(
    name_or_path: str | os.PathLike,
    *,
    mirror: str | None = None,
    download: bool = True,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
) -> ResolvedWeights:
    """A registry name (fetched and verified) or an existing file; typed WeightsError otherwise."""
    text = os.fspath(name_or_path)
    given = Path(text).expanduser()
    if given.is_file():
        return ResolvedWeights(given, find_entry(given.name), sha256_file(given), "path")
    entry = find_entry(text)
    if entry is None:
        if _looks_like_path(text):
            raise UnknownWeights(
                f"weights file not found: {text} (nor is it a name in `detcli weights list`)"
            )
        get_entry(text)  # raises UnknownWeights with did-you-mean
    dest = cached_path(entry)
    if dest.is_file():
        return ResolvedWeights(dest, entry, _verify(entry, dest, cached=True), "cache")
    if not download:
        raise WeightsUnavailable(
            f"{entry.name} is not in the cache ({dest}); `detcli weights download {entry.name}`"
        )
    url = url_for(entry, mirror)
    try:
        got = download_file(url, dest, progress=progress, retries=retries, timeout=timeout)
    except WeightsUnavailable as e:
        official = "it" if url == entry.url else entry.url
        raise WeightsUnavailable(
            f"{e}. Offline? Fetch {official} elsewhere and put it at {dest}, "
            "or set DETCLI_WEIGHTS_MIRROR to a base URL holding the release files"
        ) from None
    return ResolvedWeights(dest, entry, _verify(entry, dest, cached=False), url, got.bytes_fetched)


def _verify(entry: WeightsEntry, path: Path, *, cached: bool) -> str:
    """The file's SHA-256 once it checks out; removes it and raises WeightsCorrupt when it does not."""
    size = path.stat().st_size
    digest = sha256_file(path)
    where = "cached" if cached else "downloaded"
    expected = entry.sha256 or (recorded_sha256(path) if cached else None)
    problem = None
    if expected and digest != expected:
        origin = entry.sha256_source if entry.sha256 else "its first download"
        problem = f"SHA-256 {digest[:16]}... differs from {expected[:16]}... ({origin})"
    elif entry.bytes is not None and size != entry.bytes:
        problem = f"{size:,} bytes, expected {entry.bytes:,}"
    elif not cached or recorded_sha256(path) is None:
        problem = _structure_problem(path)
    if problem:
        forget(path)
        raise WeightsCorrupt(
            f"{where} {entry.file} is not the release file ({problem}); removed it, run the command again to "
            "download it afresh"
        )
    if recorded_sha256(path) is None:
        record_sha256(path, digest)
    return digest


def _structure_problem(path: Path) -> str | None:
    """Why the file is not a tensor-only checkpoint in a known layout, or None."""
    from engine.models.checkpoint import extract_state_dict, read_checkpoint

    try:
        extract_state_dict(read_checkpoint(path))
    except (ValueError, FileNotFoundError) as e:
        return str(e).replace(str(path), "it")
    return None
