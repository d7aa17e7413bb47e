"""D-FINE N and S on CPU: eval forward at 640 (batch 1) and one train step (batch 2: forward + loss + backward).

Where a local copy of the official repository exists (DETCLI_OFFICIAL_DFINE=path, outside our tree, never
committed), it is measured in the same run: one fresh interpreter per size (the official config system keeps
global state) builds both models, gives ours the official model's weights, and alternates the two iteration by
iteration, so the drift in speed of a shared machine hits both sides alike. The official code needs torchvision,
which does not install beside the CPU torch wheel: point DETCLI_PEER_PY at a python with torch + torchvision
(`just peer-venv`); ours runs in that same python then, so both sides use the same torch.

Run: `python benchmarks/model_speed.py [--runs 20]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import ROOT, save

MEASURE = r"""
import json, statistics, sys, time
import torch

root, size, runs, official = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, root)
from engine.models import build_criterion, build_model

torch.manual_seed(0)
sides = {"ours": (build_model(f"dfine-{size}"), build_criterion(f"dfine-{size}"))}
if official:
    sys.path.insert(0, official)
    from src.core import YAMLConfig

    cfg = YAMLConfig(f"{official}/configs/dfine/dfine_hgnetv2_{size}_coco.yml", HGNetv2={"pretrained": False})
    sides["official"] = (cfg.model, cfg.criterion)
    sides["ours"][0].load_state_dict(cfg.model.state_dict())  # same weights: the same work on both sides

x = torch.rand(1, 3, 640, 640)
xb = torch.rand(2, 3, 640, 640)
targets = [
    {"labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1]])},
    {"labels": torch.tensor([3]), "boxes": torch.tensor([[0.6, 0.4, 0.3, 0.2]])},
]


def evaluate(model, criterion):
    with torch.no_grad():
        model(x)


def train_step(model, criterion):
    model.zero_grad()
    out = model(xb, targets=targets)
    losses = criterion(out, targets, epoch=0, step=0, global_step=0, epoch_step=1)
    sum(losses.values()).backward()


result = {"torch": torch.__version__}
for name, fn, n, mode in (("eval_ms", evaluate, runs, "eval"), ("train_step_ms", train_step, max(3, runs // 3), "train")):
    times = {side: [] for side in sides}
    for model, criterion in sides.values():
        model.train(mode == "train")
        fn(model, criterion)  # warm-up
    for _ in range(n):
        for side, (model, criterion) in sides.items():
            t = time.perf_counter()
            fn(model, criterion)
            times[side].append((time.perf_counter() - t) * 1000)
    for side in sides:
        result.setdefault(side, {})[name] = statistics.median(times[side])
print(json.dumps(result))
"""


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", 20)))
    args = ap.parse_args()
    official = os.environ.get("DETCLI_OFFICIAL_DFINE", "")
    python = os.environ.get("DETCLI_PEER_PY", sys.executable)
    out: dict = {}
    for size in ("n", "s"):
        r = subprocess.run(
            [python, "-c", MEASURE, str(ROOT), size, str(args.runs), official], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise SystemExit(f"dfine-{size}: {r.stderr.strip()[-2000:]}")
        row = json.loads(r.stdout.strip().splitlines()[-1])
        if official:
            for k in ("eval_ms", "train_step_ms"):
                row[f"{k.removesuffix('_ms')}_ratio_ours_over_official"] = row["ours"][k] / row["official"][k]
        else:
            row["official"] = "not measured (set DETCLI_OFFICIAL_DFINE to a local checkout)"
        out[f"dfine-{size}"] = row
        print(f"dfine-{size}: {json.dumps(row)}")
    out["target"] = "ours <= 1.0x the official (eval and train step)"
    save("model_speed", out)
    return out


if __name__ == "__main__":
    main()
