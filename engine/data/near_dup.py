"""Near-duplicate search over 64-bit perceptual hashes that grows near-linearly with the number of images.

Multi-index hashing: split the 64 bits into k+1 bands; two hashes within Hamming distance k differ in at most k
bands, so they are equal in at least one. Sorting by each band's value puts every candidate pair next to each
other; distances are then checked with vectorised popcounts. The result is exactly the set of pairs a pairwise
search finds, in the same order (by first index, then second).
"""

from __future__ import annotations

import numpy as np


def _bands(k: int) -> list[tuple[int, int]]:
    """(shift, width) of k+1 bands covering the 64 bits as evenly as possible."""
    m = min(k + 1, 64)
    widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    out, shift = [], 0
    for w in widths:
        out.append((shift, w))
        shift += w
    return out


def near_duplicate_pairs(hashes: np.ndarray, k: int) -> np.ndarray:
    """Index pairs (i < j) whose hashes are within Hamming distance `k`, with the distance: an (n, 3) int array
    sorted by i then j."""
    h = np.asarray(hashes, dtype=np.uint64)
    n = len(h)
    if n < 2 or k < 0:
        return np.zeros((0, 3), np.int64)
    if k >= 64:  # every pair qualifies: nothing to index
        return near_duplicate_pairs_pairwise(h, k)
    found = []
    for shift, width in _bands(k):
        band = (h >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(band, kind="stable")
        sb = band[order]
        # members of one band value sit in one run of the sorted order: compare each with the one d places on,
        # for growing d, until no run is that long
        for d in range(1, n):
            same = sb[d:] == sb[:-d]
            if not same.any():
                break
            a, b = order[:-d][same], order[d:][same]
            dist = np.bitwise_count(h[a] ^ h[b]).astype(np.int64)
            keep = dist <= k
            if keep.any():
                a, b = a[keep], b[keep]
                found.append(np.stack([np.minimum(a, b), np.maximum(a, b), dist[keep]], axis=1))
    if not found:
        return np.zeros((0, 3), np.int64)
    pairs = np.unique(np.concatenate(found).astype(np.int64), axis=0)  # a pair equal in several bands once
    return pairs


def near_duplicate_pairs_pairwise(hashes: np.ndarray, k: int) -> np.ndarray:
    """The same pairs by comparing every pair (quadratic): the reference the indexed search is tested against."""
    h = np.asarray(hashes, dtype=np.uint64)
    rows = []
    for i in range(len(h) - 1):
        dist = np.bitwise_count(h[i] ^ h[i + 1 :]).astype(np.int64)
        j = np.nonzero(dist <= k)[0]
        rows.extend((i, i + 1 + int(jj), int(dist[jj])) for jj in j)
    return np.asarray(rows, np.int64).reshape(-1, 3)
