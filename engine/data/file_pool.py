"""Run a per-file function over many files on all cores, results in input order (deterministic reports)."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar

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
) -> OrderedResults[R]:
    """The results of `fn` (which maps a batch of items to a list of results) for every item, in the order of
    `items` (or, by `.batches()`, what `fn` returned for each batch); `progress(done, total)` after each batch.

    The pool starts, and is handed every batch, before this returns: the caller can do other work while the
    workers boot and run. Iterate the result (or `close()` it) to end the pool.

    A task is a batch, not one file: per-file tasks cost more in pickling and queueing than a small image costs
    to check. Workers come from a fork server: a fresh process imports only what `fn` needs, so a parent that
    holds threads (torch, OpenCV) is never forked mid-lock.
    """
    total = len(items)
    workers = default_workers() if workers is None else max(1, workers)
    # a few batches per worker keeps them all busy to the end; the cap keeps progress lines coming
    size = max(1, min(256, -(-total // (workers * 8))))
    batches = [list(items[i : i + size]) for i in range(0, total, size)]
    sizes = [len(b) for b in batches]
    if workers == 1 or total < MIN_FILES_FOR_POOL:
        return OrderedResults(map(fn, batches), None, sizes, progress)
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        # the server imports what the workers need once, and each worker forks from it ready to go (the
        # preload only counts for the first pool of this process, which starts the server)
        ctx.set_forkserver_preload([getattr(fn, "func", fn).__module__])
    pool = ctx.Pool(workers)
    return OrderedResults(pool.imap(fn, batches), pool, sizes, progress)


class OrderedResults(Generic[R]):
    """The per-item results of `ordered_map`, one pass; the pool ends when they run out or on `close()`."""

    def __init__(self, batches: Iterable, pool, sizes: list[int], progress) -> None:
        self._batches, self._pool, self._sizes, self._progress = batches, pool, sizes, progress

    def __iter__(self) -> Iterator[R]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator:
        """What `fn` returned for each batch, in order (for a `fn` whose result is not a list of results)."""
        done, total = 0, sum(self._sizes)
        try:
            for batch, size in zip(self._batches, self._sizes, strict=True):
                done += size
                if self._progress:
                    self._progress(done, total)
                yield batch
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
