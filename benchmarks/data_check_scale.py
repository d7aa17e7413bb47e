"""`detcli data check` at scale: synthetic datasets of 2k / 8k / 32k images (64 px, `detcli data synth`).

Reports the time per image of the check with no cache, the growth ratio 32k/8k (target <= 4.6; linear is 4),
the check's time over reading and decoding every image alone in the same pool (target <= 1.5), the cached
re-check (target <= 5% of the first, the check with no cache) and the peak memory of the largest check (target
< 1 GiB). `first_with_cache_s` is a first check as a user runs it: cache on, nothing cached yet (and
`cached_fraction_of_first_with_cache` the re-check over it). A re-check of an unchanged dataset is one stat per
image and per label file, and reading the stored report: `stat_every_file_s` times those stats alone. Both are
the best of three times the rounds (they are short: a burst of load can cover a few).

The check and its floor run interleaved (decode, check, decode, check, ...) with the same worker count, and each
ratio takes the best time of each side, so a neighbour's load on a shared machine hits both alike
(`check_over_decode_by_round` is the median of each round's pair instead). The floor is
the images alone: listed, read and decoded (`cv2.imdecode`, as the check decodes) in the same pool. Memory is
the proportional set size (PSS: shared pages split between the processes) of this process and all its children
(the pool's fork server and workers), sampled every 20 ms while the check runs.

`native_kernels` says whether the C kernels ran (built by `pip install` where a compiler is found; without them
the same work runs in Python). `per_file_us` splits one core's time per file of the largest dataset (4000 files,
best of 5; its `check_over_decode_one_core` is the check's time over the floor's on one core, without the pool)
into what the check does beyond the floor: the difference hash (grey image, 9x8 thumbnail), reading the label
file, and the rest of `check_files` (label parsing and findings, result records). It says where the check's time over decoding goes.
(No file is hashed whole: exact copies share size and difference hash, and only files that share both with an
earlier one are read again and compared, in the parent.)

Run: `python benchmarks/data_check_scale.py [--sizes 2000 8000 32000] [--rounds 3] [--workers N] [--data DIR]`
(datasets are made once under --data and reused).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from _common import ROOT, save

from engine.data import file_stat
from engine.data.checks import check_dataset
from engine.data.file_check import (
    FileCheckSettings,
    check_files,
    decode_files,
    label_paths,
    read_file,
)
from engine.data.file_pool import default_workers, ordered_map
from engine.data.file_stat import tree_stamps
from engine.data.file_walk import files_under
from engine.data.image_hash import HashBatch, native_kernel


def _dataset(base: Path, n: int) -> Path:
    root = base / f"synth{n}"
    if not (root / "classes.txt").is_file():
        cli = [str(Path(sys.executable).parent / "detcli")]
        subprocess.run(
            [*cli, "data", "synth", str(root), "--images", str(n), "--size", "64"], check=True, cwd=ROOT
        )
    return root


def _tree_pss_mib(pid: int) -> float:
    """PSS of `pid` and its descendants (Linux /proc; 0 where it cannot be read)."""
    total_kib, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total_kib += next(int(ln.split()[1]) for ln in f if ln.startswith("Pss:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (OSError, StopIteration, ValueError):  # a worker that just exited
            continue
    return total_kib / 1024


class PeakMemory:
    """Peak PSS of this process tree while in the `with` block."""

    def __init__(self, every_s: float = 0.02):
        self.every_s, self.peak_mib = every_s, 0.0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, _tree_pss_mib(os.getpid()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def _decode_all(root: Path, workers: int) -> int:
    """The floor of the check: list, read and decode every image in the same pool, nothing else."""
    return sum(ordered_map(decode_files, files_under(str(root / "images")), workers))


def _hash_all(images: list[np.ndarray]) -> np.ndarray:
    batch = HashBatch()
    for img in images:
        batch.add(img)
    return batch.hashes()


def _per_file_us(root: Path, n: int = 4000, batch: int = 256) -> dict:
    """One core's time per file (µs, best of 5 rounds) of the floor and of each part of the check beyond it."""
    images = files_under(str(root / "images"))[:n]
    layout = (str(root / "images") + os.sep, str(root / "labels") + os.sep)
    data = [read_file(p) for p in images]
    decoded = [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in data]
    settings = FileCheckSettings(None, (640, 640), 4.0, 1.0)
    batches = [images[i : i + batch] for i in range(0, len(images), batch)]
    parts = {
        "read_and_decode": lambda: [decode_files(b) for b in batches],
        "dhash": lambda: _hash_all(decoded),
        "read_label": lambda: [read_file(p) for p in label_paths(layout, images)],
        "check_files": lambda: [check_files(settings, layout, b) for b in batches],
    }
    # the parts take turns (a round runs each once), so a burst of a neighbour's load hits one round of all
    # parts rather than every run of one
    best = dict.fromkeys(parts, float("inf"))
    for _ in range(5):
        for name, fn in parts.items():
            best[name] = min(best[name], _timed(fn)[0])
    out = {name: round(t / len(images) * 1e6, 2) for name, t in best.items()}
    known = out["read_and_decode"] + out["dhash"] + out["read_label"]
    out["labels_findings_records"] = round(out["check_files"] - known, 2)
    # the check's work over the floor's on one core, without the pool: steadier than the wall-clock ratio on a
    # shared machine, where the workers and the parent contend for caches and for what the host lends them
    out["check_over_decode_one_core"] = round(out["check_files"] / out["read_and_decode"], 3)
    return out


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved decode/check rounds per size")
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--data", type=Path, default=Path("/tmp/detcli-bench-data-check"))
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    workers = args.workers
    # the load when the run started: on a shared machine, read the times in its light
    out: dict = {"workers": workers, "rounds": args.rounds, "load_avg_1m": os.getloadavg()[0]}
    # which paths ran: the C kernels where they were built (`pip install` with a compiler), else Python's
    out["native_kernels"] = {"dhash": native_kernel() is not None, "stats": file_stat._dir_stats is not None}
    out["rows"] = []
    for n in args.sizes:
        root = _dataset(args.data, n)
        decode_s, check_s, rep = [], [], None
        with PeakMemory() as mem:
            for _ in range(args.rounds):
                d, _ = _timed(_decode_all, root, workers)
                c, rep = _timed(check_dataset, root, use_cache=False, workers=workers)
                decode_s.append(d)
                check_s.append(c)
        for stale in (root / ".detcli-cache").glob("*.json"):  # a first check, as on a new dataset
            stale.unlink()
        fill_s, _ = _timed(check_dataset, root, workers=workers)  # with the cache on: checks and fills it
        cached_s, stats_s = [], []
        # a re-check takes a few hundredths of a second, so a burst of a neighbour's load can cover every one of
        # a few: three times the rounds (still a fraction of one check)
        for _ in range(3 * args.rounds):
            c, cached = _timed(check_dataset, root, workers=workers)
            cached_s.append(c)
            assert cached.to_dict() == rep.to_dict(), "the cached check differs from the fresh one"
            stats_s.append(_timed(tree_stamps, [str(root / "labels"), str(root / "images")])[0])
        best_check, best_decode, best_cached = min(check_s), min(decode_s), min(cached_s)
        row = {
            "images": n,
            "check_s": [round(t, 3) for t in check_s],
            "ms_per_image": round(best_check / n * 1000, 4),
            "decode_alone_s": [round(t, 3) for t in decode_s],
            "check_over_decode": round(best_check / best_decode, 3),
            # each round's check over the floor run just before it (the same moment's neighbours), the median
            "check_over_decode_by_round": round(float(np.median(np.divide(check_s, decode_s))), 3),
            "cached_s": [round(t, 3) for t in cached_s],
            "cached_fraction": round(best_cached / best_check, 4),
            "first_with_cache_s": round(fill_s, 3),
            "cached_fraction_of_first_with_cache": round(best_cached / fill_s, 4),
            "stat_every_file_s": round(min(stats_s), 3),  # the stamp of images/ and labels/ alone
            "findings": len(rep.findings),
            "peak_pss_mib": round(mem.peak_mib, 1),
        }
        out["rows"].append(row)
        print(row, flush=True)
    by = {r["images"]: r for r in out["rows"]}
    sizes = sorted(by)
    if len(sizes) > 1:  # growth of the best check time from the second largest size to the largest
        a, b = sizes[-2], sizes[-1]
        key = "growth_32k_over_8k" if (a, b) == (8000, 32000) else f"growth_{b}_over_{a}"
        out[key] = round(by[b]["ms_per_image"] * b / (by[a]["ms_per_image"] * a), 3)
    out["peak_pss_mib"] = max(r["peak_pss_mib"] for r in out["rows"])
    out["per_file_us"] = _per_file_us(_dataset(args.data, sizes[-1]))
    print({k: v for k, v in out.items() if k != "rows"})
    save("data_check_scale", out)
    return out


if __name__ == "__main__":
    main()
