"""D-FINE N and S on CPU: eval forward at 640 (batch 1) and one train step (batch 2: forward + loss + backward).

Where a local copy of the official repository exists (DETCLI_OFFICIAL_DFINE=path, outside our tree), the same is
measured for it in a subprocess and the ratio printed. Run: `python benchmarks/model_speed.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from _common import median_ms, save

from engine.models import build_criterion, build_model

OFFICIAL_SNIPPET = r"""
import sys, time, json, torch, statistics
sys.path.insert(0, sys.argv[1])
from src.core import YAMLConfig
cfg = YAMLConfig(f"{sys.argv[1]}/configs/dfine/dfine_hgnetv2_{sys.argv[2]}_coco.yml", HGNetv2={"pretrained": False})
m = cfg.model.eval()
x = torch.rand(1, 3, 640, 640)
with torch.no_grad():
    for _ in range(2): m(x)
    ts = []
    for _ in range(int(sys.argv[3])):
        t = time.perf_counter(); m(x); ts.append((time.perf_counter() - t) * 1000)
print(json.dumps({"eval_ms": statistics.median(ts)}))
"""


def measure(size: str, runs: int) -> dict:
    torch.manual_seed(0)
    m = build_model(f"dfine-{size}").eval()
    x = torch.rand(1, 3, 640, 640)
    with torch.no_grad():
        eval_ms = median_ms(lambda: m(x), runs)
    crit = build_criterion(f"dfine-{size}")
    m.train()
    xb = torch.rand(2, 3, 640, 640)
    targets = [
        {"labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1]])},
        {"labels": torch.tensor([3]), "boxes": torch.tensor([[0.6, 0.4, 0.3, 0.2]])},
    ]

    def step() -> None:
        m.zero_grad()
        sum(crit(m(xb, targets=targets), targets).values()).backward()

    return {"eval_ms": eval_ms, "train_step_ms": median_ms(step, max(3, runs // 3), warmup=1)}


def main() -> dict:
    runs = int(os.environ.get("RUNS", 10))
    official = os.environ.get("DETCLI_OFFICIAL_DFINE")
    out = {}
    for size in ("n", "s"):
        ours = measure(size, runs)
        row = {"ours": ours}
        if official:
            r = subprocess.run(
                [sys.executable, "-c", OFFICIAL_SNIPPET, official, size, str(runs)],
                capture_output=True,
                text=True,
            )
            if r.returncode == 0:
                row["official"] = json.loads(r.stdout.strip().splitlines()[-1])
                row["eval_ratio_ours_over_official"] = ours["eval_ms"] / row["official"]["eval_ms"]
            else:
                row["official"] = f"failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}"
        else:
            row["official"] = "not measured (set DETCLI_OFFICIAL_DFINE to a local checkout)"
        out[f"dfine-{size}"] = row
        print(
            f"dfine-{size}: eval {ours['eval_ms']:.1f} ms, train step (batch 2) {ours['train_step_ms']:.1f} ms; "
            f"official: {row['official']}"
        )
    save("model_speed", out)
    return out


if __name__ == "__main__":
    main()
