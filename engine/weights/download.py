"""Streamed, resumable HTTP downloads into a `.part` file, renamed into place only when complete.

A dropped connection resumes with an HTTP Range request (up to `retries` times in one call, and again on the
next call); a server that ignores Range restarts from zero. What reaches the final name has the length the
server announced: an HTML error page or a short body never does.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from engine.weights.errors import WeightsCorrupt, WeightsUnavailable

CHUNK = 1 << 20


@dataclass
class Fetched:
    path: Path
    bytes_fetched: int  # over the network in this call, resumed attempts included
    resumed: bool


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download_file(
    url: str, dest: str | Path, *, progress: bool = True, retries: int = 3, timeout: float = 30.0
) -> Fetched:
    """Fetch `url` to `dest` atomically; WeightsUnavailable when it cannot, WeightsCorrupt for a non-file."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    fetched, resumed, last_error = 0, False, ""
    bar = tqdm(
        total=None,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=dest.name,
        disable=not progress,
        file=sys.stderr,
        leave=False,
        delay=1.0,  # only a download that takes a while shows a bar: an offline failure prints just its message
    )
    try:
        for _attempt in range(retries + 1):
            have = part.stat().st_size if part.exists() else 0
            resumed = resumed or have > 0
            try:
                done, total, got = _fetch_once(url, part, have, timeout, bar)
            except _Dropped as e:
                fetched += e.got
                last_error = str(e)
                continue
            fetched += got
            if total is not None and done != total:
                last_error = f"got {done:,} of {total:,} bytes"
                continue
            os.replace(part, dest)
            return Fetched(dest, fetched, resumed)
    finally:
        bar.close()
    raise WeightsUnavailable(
        f"download of {url} stopped ({last_error}) after {retries + 1} tries; the partial file is kept at "
        f"{part} and the next attempt resumes it"
    )


class _Dropped(Exception):
    def __init__(self, message: str, got: int):
        super().__init__(message)
        self.got = got


def _fetch_once(url: str, part: Path, have: int, timeout: float, bar: tqdm) -> tuple[int, int | None, int]:
    """One request: append to `part` from byte `have`. Returns (bytes in part, expected total, fetched)."""
    headers = {"User-Agent": "detcli", "Accept": "application/octet-stream"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part already holds the whole file
            return have, have, 0
        raise WeightsUnavailable(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise WeightsUnavailable(f"cannot reach {url} ({reason})") from None
    with resp:
        ctype = resp.headers.get("Content-Type", "")
        if "text/html" in ctype.lower():
            # a login page, a proxy's block page or a 200 "not found" page: never a weights file
            raise WeightsCorrupt(
                f"{url} returned a web page ({ctype}), not a weights file: check the URL or the mirror"
            )
        if have and resp.status != 206:
            have = 0  # the server ignored Range: start over
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar.reset(total=total)
        bar.update(have)
        got = 0
        with open(part, "ab" if have else "wb") as f:
            while True:
                try:
                    block = resp.read(CHUNK)
                except (TimeoutError, http.client.IncompleteRead, ConnectionError, OSError) as e:
                    f.flush()
                    raise _Dropped(f"connection dropped: {e}", got) from None
                if not block:
                    break
                f.write(block)
                got += len(block)
                bar.update(len(block))
    return have + got, total, got
