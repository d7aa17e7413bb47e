"""Run-history cost: insert 100k step rows in batches, then the queries a dashboard makes.

Targets (issue 2): logging a step costs < 0.5 ms amortised; the dashboard query < 20 ms at 100k rows.
Run: `python benchmarks/run_store.py` (or `just bench`). Results: benchmarks/results/run_store.json.
"""

from __future__ import annotations

import tempfile
import time

from _common import median_ms, save

from engine.runs import RunStore, StepLogger

ROWS = 100_000
BATCH = 50  # the trainer's StepLogger default


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore.open(tmp)
        run = store.create_run(preset="bench", model="dfine-s", dataset="x", config={}, epochs=100)
        log = StepLogger(store, run["id"], batch=BATCH, interval_s=1e9)
        losses = {f"loss_{k}": 0.1 for k in ("vfl", "bbox", "giou", "fgl", "ddf")}
        lr = {"backbone": 1e-4, "backbone_norm": 1e-4, "head": 2e-4, "head_norm": 2e-4}
        t0 = time.perf_counter()
        for i in range(ROWS):
            log.log(
                step=i, epoch=i // 1000, loss=1.0, losses=losses, lr=lr, mem_mb=1234.0, img_s=30.0, eta_s=99.0
            )
        log.flush()
        insert_s = time.perf_counter() - t0

        last_ms = median_ms(lambda: store.last_steps(run["id"], 1000), 20)
        series_ms = median_ms(lambda: store.step_series(run["id"], 400), 20)
        epochs_ms = median_ms(lambda: store.epochs(run["id"]), 20)
        store.close()
    result = {
        "rows": ROWS,
        "batch": BATCH,
        "rows_per_s": ROWS / insert_s,
        "ms_per_step_amortised": insert_s / ROWS * 1000,
        "query_last_1000_ms": last_ms,
        "query_series_400_ms": series_ms,
        "query_epochs_ms": epochs_ms,
        "targets": {"ms_per_step_amortised": "< 0.5", "query_last_1000_ms": "< 20"},
    }
    print(
        f"insert: {result['rows_per_s']:,.0f} rows/s ({result['ms_per_step_amortised']:.4f} ms/step amortised)"
    )
    print(f"query last 1,000 steps: {last_ms:.2f} ms; downsampled series (400 pts): {series_ms:.2f} ms")
    save("run_store", result)
    return result


if __name__ == "__main__":
    main()
