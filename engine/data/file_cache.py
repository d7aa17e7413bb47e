"""Per-dataset result cache in `<root>/.detcli-cache/`: a file's result is reused while its path, size and
modification time are unchanged, so re-checking an unchanged dataset costs a stat per file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_DIR = ".detcli-cache"


class FileCache:
    """Results of one kind (`name`) under one set of settings (`settings`), keyed by file path.

    Results must be JSON values (a dataset folder may come from anyone: its cache is data, never code, so no
    pickle). Unreadable, stale or foreign cache files are ignored (the work is redone); a dataset on a read-only
    disk is checked without a cache.
    """

    def __init__(
        self, root: str | Path, name: str, settings: str = "", enabled: bool = True, prune: bool = True
    ):
        self.enabled, self.prune = enabled, prune
        tag = hashlib.sha1(settings.encode()).hexdigest()[:12]
        self.path = Path(root) / CACHE_DIR / f"{name}-{tag}.json"
        self.settings = settings
        self._old: dict[str, list] = {}
        self._new: dict[str, list] = {}
        self.hits = 0
        if enabled and self.path.is_file():
            try:
                saved = json.loads(self.path.read_text())
                if saved.get("settings") == settings and isinstance(saved.get("files"), dict):
                    self._old = saved["files"]
            except Exception as e:  # a cache is an optimisation: any damage means recompute
                log.debug("ignoring unreadable cache %s: %s", self.path, e)

    def get(self, path: str, key: str):
        """The stored result for `path` if it was stored under the same `key`, else None."""
        hit = self._old.get(path)
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == key:
            self._new[path] = hit
            self.hits += 1
            return hit[1]
        return None

    def put(self, path: str, key: str, result) -> None:
        entry = [key, result]
        if self._old.get(path) == entry:  # the same as stored: no reason to rewrite the file
            self.hits += 1
        self._new[path] = entry

    def save(self) -> None:
        """Write what was got or put in this run; with `prune`, files not seen in this run drop out (a run that
        sees the whole dataset), else they are kept (a run that sees a part of it)."""
        unchanged = self.hits == len(self._new) and (len(self._new) == len(self._old) or not self.prune)
        if not self.enabled or unchanged:
            return
        if not self.prune:
            self._new = {**self._old, **self._new}
        try:
            self.path.parent.mkdir(exist_ok=True)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"settings": self.settings, "files": self._new}, separators=(",", ":")))
            os.replace(tmp, self.path)
        except OSError as e:
            log.info(
                "could not write the result cache %s (%s): the next run starts from scratch", self.path, e
            )
