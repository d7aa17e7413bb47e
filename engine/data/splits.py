"""Splits as CSV files of relative image paths (no files are moved), optionally grouped by scene."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from engine.data.formats.yolo import IMAGE_SUFFIXES


def make_splits(
    root: str | Path, val: float = 0.2, test: float = 0.1, seed: int = 0, group_by: str | None = None
) -> dict[str, int]:
    """Write train.csv / val.csv / test.csv under root; with group_by (a regex whose first group, or whole
    match, names the scene) all images of one scene land in the same split. Returns the counts."""
    root = Path(root)
    images = sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"{root}/images has no images")
    if not 0 <= val + test < 1:
        raise ValueError("val + test must be in [0, 1)")
    rel = [str(p.relative_to(root)) for p in images]
    if group_by:
        pat = re.compile(group_by)
        keys = []
        for r in rel:
            m = pat.search(r)
            if not m:
                raise ValueError(f"--group-by {group_by!r} does not match {r}")
            keys.append(m.group(1) if m.groups() else m.group(0))
    else:
        keys = rel
    groups = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    n_val, n_test = round(len(groups) * val), round(len(groups) * test)
    assign = {}
    for rank, gi in enumerate(order):
        assign[groups[gi]] = "val" if rank < n_val else ("test" if rank < n_val + n_test else "train")
    out = {"train": [], "val": [], "test": []}
    for r, k in zip(rel, keys, strict=True):
        out[assign[k]].append(r)
    for split, rows in out.items():
        with open(root / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([[r] for r in rows])
    return {k: len(v) for k, v in out.items()}
