"""`detcli data check` at scale: synthetic datasets of 2k / 8k / 32k images (64 px, `detcli data synth`).

Reports the time per image of the check with no cache, the growth ratio 32k/8k (target <= 4.6; linear is 4),
the check's time over decoding every file alone in the same pool (target <= 1.5), the cached re-check (target
<= 5% of the first) and the peak memory (RSS of this process and its workers) of the largest check (< 1 GiB).

Run: `python benchmarks/data_check_scale.py [--sizes 2000 8000 32000] [--data /tmp/scale]` (datasets are made
once under --data and reused).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, save

from engine.data.checks import check_dataset
from engine.data.file_check import decode_only
from engine.data.file_pool import default_workers, ordered_map


def _dataset(base: Path, n: int) -> Path:
    root = base / f"synth{n}"
    if not (root / "classes.txt").is_file():
        cli = [str(Path(sys.executable).parent / "detcli")]
        subprocess.run(
            [*cli, "data", "synth", str(root), "--images", str(n), "--size", "64"], check=True, cwd=ROOT
        )
    return root


def _peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    ap.add_argument("--data", type=Path, default=Path("/tmp/detcli-bench-data-check"))
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    out: dict = {"workers": default_workers(), "rows": []}
    for n in args.sizes:
        root = _dataset(args.data, n)
        images = sorted((root / "images").rglob("*.jpg"))
        t = time.perf_counter()
        sum(ordered_map(decode_only, images))
        decode_s = time.perf_counter() - t
        t = time.perf_counter()
        rep = check_dataset(root, use_cache=False)
        check_s = time.perf_counter() - t
        check_dataset(root)  # fills the cache
        t = time.perf_counter()
        cached = check_dataset(root)
        cached_s = time.perf_counter() - t
        assert cached.to_dict() == rep.to_dict(), "cached check differs from the fresh one"
        row = {
            "images": n,
            "check_s": round(check_s, 3),
            "ms_per_image": round(check_s / n * 1000, 4),
            "decode_alone_s": round(decode_s, 3),
            "check_over_decode": round(check_s / decode_s, 3),
            "cached_s": round(cached_s, 3),
            "cached_fraction": round(cached_s / check_s, 4),
            "findings": len(rep.findings),
            "peak_rss_mib_so_far": round(_peak_mib(), 1),
        }
        out["rows"].append(row)
        print(row)
    by = {r["images"]: r for r in out["rows"]}
    if 8000 in by and 32000 in by:
        out["growth_32k_over_8k"] = round(by[32000]["check_s"] / by[8000]["check_s"], 3)
    out["peak_rss_mib"] = round(_peak_mib(), 1)
    print({k: v for k, v in out.items() if k != "rows"})
    save("data_check_scale", out)
    return out


if __name__ == "__main__":
    main()
