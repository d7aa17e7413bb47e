"""Resumable HTTP downloads with progress and checksum (used by `detcli data prepare visdrone --download`)."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Callable
from pathlib import Path


def download(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    chunk: int = 1 << 20,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download to `dest`, resuming a partial `dest.part` with an HTTP Range request; verify md5 if given."""
    dest = Path(dest)
    if dest.is_file() and (md5 is None or _md5(dest) == md5):
        return dest
    part = dest.with_suffix(dest.suffix + ".part")
    done = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if done and resp.status != 206:  # the server ignored Range: start over
            done = 0
        length = resp.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(part, "ab" if done else "wb") as f:
            while True:
                block = resp.read(chunk)
                if not block:
                    break
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if md5 is not None and (got := _md5(part)) != md5:
        part.unlink()
        raise ValueError(
            f"checksum mismatch for {url}: expected md5 {md5}, got {got} (the partial file was removed)"
        )
    part.replace(dest)
    return dest


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
