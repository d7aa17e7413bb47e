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
    fn: Callable[[list[T]], list[R]],
    items: Sequence[T],
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[R]:
    """The results of `fn` (which maps a batch of items to a list of results) for every item, yielded in the
    order of `items`; `progress(done, total)` after each batch.

    A task is a batch, not one file: per-file tasks cost more in pickling and queueing than a small image costs
    to check. Workers come from a fork server: a fresh process imports only what `fn` needs, so a parent that
    holds threads (torch, OpenCV) is never forked mid-lock.
    """
    total = len(items)
    workers = default_workers() if workers is None else max(1, workers)
    # a few batches per worker keeps them all busy to the end; the cap keeps progress lines coming
    size = max(1, min(256, -(-total // (workers * 8))))
    batches = [list(items[i : i + size]) for i in range(0, total, size)]
    if workers == 1 or total < MIN_FILES_FOR_POOL:
        results: Iterable[list[R]] = map(fn, batches)
        pool = None
    else:
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        pool = ctx.Pool(workers)
        results = pool.imap(fn, batches)
    done = 0
    try:
        for batch in results:
            done += len(batch)
            if progress:
                progress(done, total)
            yield from batch
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
