"""The pool mosaic partners are drawn from: the images a loader worker decoded most recently, kept fitted to the
mosaic tile, so a mosaic costs one decode instead of four (the idea behind Ultralytics' buffer and mmdet's
CachedMosaic).

What a sample looks like depends on the order items were loaded in the same worker, which is fixed by the seed,
the batch size and the number of workers: runs with the same three values are identical. The pool is emptied at
every epoch start, so a run resumed at an epoch boundary sees exactly what the uninterrupted run saw.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

Tile = tuple[np.ndarray, np.ndarray, np.ndarray]  # image (fitted, uint8 BGR), boxes xyxy px, labels


class TilePool:
    """A FIFO of the last `size` fitted tiles, keyed by record index."""

    def __init__(self, size: int):
        self.size = size
        self.tiles: OrderedDict[int, Tile] = OrderedDict()

    def __len__(self) -> int:
        return len(self.tiles)

    def get(self, i: int) -> Tile | None:
        return self.tiles.get(i)

    def add(self, i: int, tile: Tile) -> None:
        if self.size <= 0:
            return
        self.tiles[i] = tile
        while len(self.tiles) > self.size:
            self.tiles.popitem(last=False)

    def clear(self) -> None:
        self.tiles.clear()

    def choose(self, rng: np.random.Generator, k: int, exclude: int) -> list[int]:
        """Up to k distinct record indices from the pool, never `exclude` (the image the mosaic is built around)."""
        keys = [i for i in self.tiles if i != exclude]
        if not keys:
            return []
        picks = rng.choice(len(keys), size=min(k, len(keys)), replace=False)
        return [keys[int(p)] for p in picks]
