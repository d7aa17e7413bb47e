"""Run a per-file function over many files on all cores, results in input order (deterministic reports)."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# below this many files the pool's start-up (a fresh interpreter per worker) costs more than it saves
MIN_FILES_FOR_POOL = 256


def default_workers() -> int:
    """The cores this process may use, capped: decoding small files saturates the disk before 8 workers."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def ordered_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[R]:
    """fn(item) for every item, yielded in the order of `items`; `progress(done, total)` after each.

    Workers come from a fork server: a fresh process imports only what `fn` needs, so a parent that holds
    threads (torch, OpenCV) is never forked mid-lock.
    """
    total = len(items)
    workers = default_workers() if workers is None else max(1, workers)
    if workers == 1 or total < MIN_FILES_FOR_POOL:
        results: Iterable[R] = map(fn, items)
        pool = None
    else:
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        pool = ctx.Pool(workers)
        # chunks keep the inter-process traffic per file small; a few chunks per worker keeps them all busy
        chunk = max(1, min(256, total // (workers * 8)))
        results = pool.imap(fn, items, chunksize=chunk)
    try:
        for n, r in enumerate(results, start=1):
            if progress:
                progress(n, total)
            yield r
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
