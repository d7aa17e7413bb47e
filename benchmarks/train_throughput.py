"""Full training steps (data loading included) for dfine-n at the demo size and at 640: images/s, and the share
of step time spent waiting for data and writing the run history. Targets (issue 5): logging < 1%, data wait < 10%.

Run: `python benchmarks/train_throughput.py [--steps 12]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import save

from engine.config import load_config
from engine.data.dataset import to_model_input
from engine.data.synth import generate
from engine.runs import RunStore
from engine.train.trainer import Trainer


def measure(root: Path, imgsz: int, steps: int, runs_dir: Path) -> dict:
    cfg = load_config(
        "demo",
        overrides=[
            f"data.root={root}",
            f"data.imgsz={imgsz}",
            "train.epochs=1",
            "train.time_hours=null",
            "train.log_every=1",
        ],
    )
    store = RunStore.open(runs_dir)
    run = store.create_run(
        preset="demo", model="dfine-n", dataset=str(root), config=cfg.model_dump(mode="json"), epochs=1
    )
    tr = Trainer(cfg, store, run, quiet=True)
    loader = tr._loader(0)
    tr.model.train()
    wait = compute = log = 0.0
    n = 0
    it = iter(loader)
    t_all = time.perf_counter()
    for i in range(steps):
        t0 = time.perf_counter()
        images, targets = next(it)
        t1 = time.perf_counter()
        images = to_model_input(images, tr.device)  # uint8 from the loader, as the trainer converts it
        targets = [{"labels": t["labels"], "boxes": t["boxes"]} for t in targets]
        total = sum(tr.criterion(tr.model(images, targets=targets), targets).values())
        tr.stepper.backward(total)
        tr.stepper.maybe_step(i, True)
        t2 = time.perf_counter()
        tr.logger.log(
            step=i,
            epoch=0,
            loss=float(total.detach()),
            losses={},
            lr={"head": 1e-4},
            mem_mb=1.0,
            img_s=1.0,
            eta_s=1.0,
        )
        t3 = time.perf_counter()
        if i >= 2:  # skip warm-up (worker start, first allocations)
            wait, compute, log, n = wait + t1 - t0, compute + t2 - t1, log + t3 - t2, n + len(images)
    tr.logger.flush()
    total_t = wait + compute + log
    del t_all
    return {
        "imgsz": imgsz,
        "img_s": n / total_t,
        "data_wait_pct": 100 * wait / total_t,
        "logging_pct": 100 * log / total_t,
        "workers": cfg.train.workers,
        "batch": cfg.train.batch,
    }


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "ds", images=160, size=640, seed=0)
        for size in (256, 640):
            r = measure(root, size, args.steps, Path(tmp) / f"runs{size}")
            out[f"dfine-n@{size}"] = r
            print(
                f"dfine-n @{size}: {r['img_s']:.2f} images/s, data wait {r['data_wait_pct']:.1f}%, run-history "
                f"logging {r['logging_pct']:.2f}% of step time ({r['workers']} workers, batch {r['batch']})"
            )
    save("train_throughput", out)
    return out


if __name__ == "__main__":
    main()
