"""Size and modification time of many files, on two cores where the system allows it.

A re-check of an unchanged dataset is mostly this: one stat per image and per label file. A stat costs a
microsecond in the kernel and another in Python, so a 100k-image dataset spends a third of a second here on one
core; a forked child takes half of the paths.
"""

from __future__ import annotations

import os
import sys
import warnings
from array import array

import numpy as np

# below this, forking costs more than the child saves
MIN_PATHS_TO_SPLIT = 8192


def stat_table(paths: list[str]) -> np.ndarray:
    """(len(paths), 2) int64: size and mtime in ns of each path, (-1, -1) for one that cannot be stat'ed."""
    if len(paths) >= MIN_PATHS_TO_SPLIT and sys.platform == "linux":
        flat = _split_with_child(paths)
    else:
        flat = _stat_flat(paths)
    return np.frombuffer(flat, np.int64).reshape(-1, 2) if len(flat) else np.zeros((0, 2), np.int64)


def stat_key_strings(table: np.ndarray) -> list[str]:
    """'size:mtime' of each row of a `stat_table`, '-' for a missing file (the per-file cache's keys)."""
    return [f"{s}:{m}" if s >= 0 else "-" for s, m in table.tolist()]


def _stat_flat(paths: list[str]) -> array:
    out = array("q")
    add, stat = out.extend, os.stat
    for p in paths:
        try:
            st = stat(p)
        except OSError:
            add((-1, -1))
        else:
            add((st.st_size, st.st_mtime_ns))
    return out


def _split_with_child(paths: list[str]) -> array:
    """`_stat_flat(paths)`, the second half stat'ed by a forked child that sends its table through a pipe.

    The child runs nothing but stat calls and exits without cleanup, so the parent's threads and locks are never
    touched. Any failure (no fork, a child that dies) means the parent stats that half itself.
    """
    half = len(paths) // 2
    try:
        r, w = os.pipe()
    except OSError:
        return _stat_flat(paths)
    try:
        with warnings.catch_warnings():  # 3.12+ warns of fork with threads: this child touches no lock
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return _stat_flat(paths)
    if pid == 0:  # the child
        code = 1
        try:
            os.close(r)
            data = memoryview(_stat_flat(paths[half:])).cast("B")
            while data:
                data = data[os.write(w, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    first = _stat_flat(paths[:half])
    chunks = []
    with os.fdopen(r, "rb") as f:
        while chunk := f.read(1 << 20):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    second = array("q")
    if status == 0 and len(data) == 16 * (len(paths) - half):
        second.frombytes(data)
    else:
        second = _stat_flat(paths[half:])
    first.extend(second)
    return first
