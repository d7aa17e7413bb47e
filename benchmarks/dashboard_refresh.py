"""One dashboard refresh (queries + render) on a run with 200k step rows. Target (issue 8): < 100 ms.

Downsampling happens in SQL (RunStore.step_series). Run: `python benchmarks/dashboard_refresh.py`.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time

from _common import save

from detcli.tui.app import DashboardApp
from engine.runs import RunStore


def main() -> dict:
    rows = 200_000
    with tempfile.TemporaryDirectory() as tmp:
        s = RunStore.open(tmp)
        run = s.create_run(preset="bench", model="dfine-s", dataset="x", config={}, epochs=100, name="big")
        losses = {f"loss_{k}": 0.1 for k in ("vfl", "bbox", "giou", "fgl", "ddf")}
        lr = {"backbone": 1e-4, "backbone_no_wd": 1e-4, "head": 2e-4, "head_no_wd": 2e-4}
        for start in range(0, rows, 20_000):
            s.log_steps(
                run["id"],
                [
                    {
                        "step": i,
                        "epoch": i // 2000,
                        "loss": 10 - i / rows,
                        "losses": losses,
                        "lr": lr,
                        "mem_mb": 1000.0,
                        "img_s": 30.0,
                        "eta_s": 100.0,
                        "t": float(i),
                    }
                    for i in range(start, start + 20_000)
                ],
            )
        for e in range(100):
            s.log_epoch(
                run["id"],
                e,
                train_loss=1.0,
                map50=0.5,
                map50_95=0.3,
                precision=0.5,
                recall=0.5,
                f1=0.5,
                iou=0.7,
            )
        query_ms, refresh_ms = [], []

        async def drive() -> None:
            app = DashboardApp(tmp, interval=3600)
            async with app.run_test(size=(160, 48)) as pilot:
                await pilot.pause()
                for _ in range(10):
                    t = time.perf_counter()
                    view = app.data.view(run["id"])
                    q = time.perf_counter()
                    app.render_run(view)
                    await pilot.pause()
                    query_ms.append((q - t) * 1000)
                    refresh_ms.append((time.perf_counter() - t) * 1000)

        asyncio.run(drive())
        s.close()
    out = {
        "step_rows": rows,
        "query_ms_median": statistics.median(query_ms),
        "refresh_ms_median": statistics.median(refresh_ms),
        "target_ms": 100,
    }
    print(
        f"200k steps: queries {out['query_ms_median']:.1f} ms, queries + render {out['refresh_ms_median']:.1f} ms "
        "(target < 100 ms)"
    )
    save("dashboard_refresh", out)
    return out


if __name__ == "__main__":
    main()
