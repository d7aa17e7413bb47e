"""Size and modification time of many files, on two cores where the system allows it.

A re-check of an unchanged dataset is mostly this: one stat per image and per label file. A stat costs about a
microsecond in the kernel and, from Python, another in the interpreter, so a 100k-image dataset spends a third of
a second here on one core. The native loop (`_dir_stats`, built from C by `pip install` on POSIX systems) drops
the interpreter's part, and a forked child takes half of the work.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from array import array
from collections.abc import Callable

import numpy as np

try:
    from engine.data import _dir_stats
except ImportError:  # not built (no C compiler at install time, or not POSIX): the same stats from Python
    _dir_stats = None

# below this many files, forking costs more than the child saves
MIN_PATHS_TO_SPLIT = 8192
STAMP_BYTES = 20


def stat_table(paths: list[str]) -> np.ndarray:
    """(len(paths), 2) int64: size and mtime in ns of each path, (-1, -1) for one that cannot be stat'ed."""
    if len(paths) >= MIN_PATHS_TO_SPLIT:
        half = len(paths) // 2
        child = _Child.start(lambda: _stat_flat(paths[half:]).tobytes())
        flat = _stat_flat(paths[:half])
        rest = child.result() if child else None
        if rest is None or len(rest) != 16 * (len(paths) - half):
            rest = _stat_flat(paths[half:]).tobytes()
        flat.frombytes(rest)
    else:
        flat = _stat_flat(paths)
    return np.frombuffer(flat, np.int64).reshape(-1, 2) if len(flat) else np.zeros((0, 2), np.int64)


def stat_key_strings(table: np.ndarray) -> list[str]:
    """'size:mtime' of each row of a `stat_table`, '-' for a missing file (the per-file cache's keys)."""
    return [f"{s}:{m}" if s >= 0 else "-" for s, m in table.tolist()]


def tree_stamps(folders: list[str]) -> list[bytes]:
    """`tree_stamp` of each folder, the first one in a forked child while this process does the others."""
    if not folders:
        return []
    child = _Child.start(lambda: tree_stamp(folders[0])) if len(folders) > 1 else None
    rest = [tree_stamp(f) for f in folders[1:]]
    first = child.result() if child else None
    if first is None or len(first) != STAMP_BYTES:
        first = tree_stamp(folders[0])
    return [first, *rest]


def tree_stamp(folder: str) -> bytes:
    """A digest of the name, size and mtime of every entry under `folder` (symlinks followed, symlinked folders
    not entered): it changes when any file is added, removed, renamed or rewritten."""
    # BLAKE2 is CPython's own code, not OpenSSL's: safe in a forked child of a threaded parent
    h = hashlib.blake2b(digest_size=STAMP_BYTES)
    _stamp(folder, "", h)
    return h.digest()


def _stamp(folder: str, rel: str, h) -> None:
    listed = _listing(folder)
    if listed is None:  # missing or unreadable: a stamp of its own, which changes when the folder appears
        h.update(b"\0?")
        return
    count, names, stats, sub = listed
    h.update(f"\0{rel}\0{count}\0".encode("utf-8", "surrogateescape"))
    h.update(names)
    h.update(stats)
    for name in sorted(sub):
        _stamp(os.path.join(folder, name), f"{rel}/{name}", h)


def _listing(folder: str) -> tuple[int, bytes, bytes, list[str]] | None:
    """(count, names, stamps, sub-folders) of the entries of `folder` in listing order: how many files (every
    entry but folders; symlinked folders are files here), their names joined by NUL, their (size, mtime_ns) as
    native int64 pairs ((-1, -1) for one that cannot be stat'ed), and the names of the sub-folders; None if the
    folder cannot be listed."""
    if _dir_stats is not None:
        listed = _dir_stats.listing(folder)
        if listed is None:
            return None
        count, names, stats, sub = listed
        return count, names, stats, [os.fsdecode(n) for n in sub.split(b"\0")[:-1]]
    # listed by descriptor where the system allows, each entry then stat'ed by name relative to it (a one-name
    # path walk); elsewhere (Windows) by path
    by_fd = os.scandir in os.supports_fd
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if by_fd else None
    except OSError:
        return None
    names: list[str] = []
    sub: list[str] = []
    stats = array("q")
    add = stats.extend
    try:
        with os.scandir(fd if fd is not None else folder) as it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        sub.append(entry.name)
                        continue
                    st = entry.stat()
                    add((st.st_size, st.st_mtime_ns))
                except OSError:  # a broken link, or gone while listing: its name still counts
                    add((-1, -1))
                names.append(entry.name)
    except OSError:
        return None
    finally:
        if fd is not None:
            os.close(fd)
    return len(names), "\0".join(names).encode("utf-8", "surrogateescape"), stats.tobytes(), sub


def _stat_flat(paths: list[str]) -> array:
    out = array("q")
    if _dir_stats is not None:
        out.frombytes(_dir_stats.stat_paths(paths))
        return out
    add, stat = out.extend, os.stat
    for p in paths:
        try:
            st = stat(p)
        except OSError:
            add((-1, -1))
        else:
            add((st.st_size, st.st_mtime_ns))
    return out


class _Child:
    """A forked child computing bytes while the parent works on, sent back through a pipe.

    The child runs nothing but stat calls and hashing (never OpenSSL, whose locks a parent's thread may hold), and
    exits without cleanup, so the parent's threads and locks are never touched. Only on Linux (fork is unsafe with some macOS frameworks, absent on Windows); any failure (no fork,
    a child that dies) gives None, and the caller does the work itself.
    """

    def __init__(self, pid: int, fd: int):
        self.pid, self.fd = pid, fd

    @classmethod
    def start(cls, work: Callable[[], bytes]) -> _Child | None:
        if sys.platform != "linux":
            return None
        try:
            r, w = os.pipe()
        except OSError:
            return None
        try:
            with warnings.catch_warnings():  # 3.12+ warns of fork with threads: this child touches no lock
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return None
        if pid == 0:
            code = 1
            try:
                os.close(r)
                data = memoryview(work()).cast("B")
                while data:
                    data = data[os.write(w, data) :]
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        return cls(pid, r)

    def result(self) -> bytes | None:
        chunks = []
        with os.fdopen(self.fd, "rb") as f:
            while chunk := f.read(1 << 20):
                chunks.append(chunk)
        _, status = os.waitpid(self.pid, 0)
        return b"".join(chunks) if status == 0 else None
