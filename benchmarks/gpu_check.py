"""GPU self-test (`just gpu-check`): AMP training, DDP through torchrun then SIGKILL and resume, inference agreement
and the bench breakdown across backends, written to benchmarks/results/gpu_check.json. Without CUDA it prints one
line and exits 0.

`--steps N` sets the training steps of each AMP run (default 100). `--device cpu` (hidden, for the test suite)
runs the same code on the CPU at toy sizes (bf16 autocast, gloo instead of NCCL), so the script cannot rot where
no GPU exists; its numbers are not GPU numbers and it writes them only under DETCLI_BENCH_RESULTS.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import ROOT, save
from _ddp_resume import ddp_and_resume

DETCLI = [sys.executable, "-m", "detcli.cli"]


@dataclass(frozen=True)
class Sizes:
    """How big each part runs: the GPU check's sizes, or the CPU dry mode's toy ones."""

    images: int  # synthetic images (70 % train)
    imgsz: int
    batch: int
    ddp_batch: int  # small, so an epoch logs > 50 step rows and some reach disk before its checkpoint
    workers: int
    extra: tuple[str, ...]  # overrides for every training run
    agreement_images: int
    bench_runs: int
    bench_warmup: int
    s640: bool  # also D-FINE-S at 640
    ddp_min_epochs: int  # 3: killed once rows past epoch 1's checkpoint are on disk; 2: killed after epoch 1
    threads: int | None  # torch/OpenMP threads per process (None: torch's default)


GPU = Sizes(
    images=240,
    imgsz=256,
    batch=8,
    ddp_batch=2,
    workers=2,
    extra=(),
    agreement_images=8,
    bench_runs=100,
    bench_warmup=20,
    s640=True,
    ddp_min_epochs=3,
    threads=None,
)
# One thread a process: on a shared CPU, OpenMP's spinning barriers made these toy steps 2-5x slower with two
# (measured on a loaded 2-core box); the dry mode proves code paths, not speed.
DRY = Sizes(
    images=12,
    imgsz=64,
    batch=2,
    ddp_batch=2,
    workers=0,
    extra=("model.num_queries=10", "model.num_denoising=5", "train.ema_warmups=5"),
    agreement_images=2,
    bench_runs=2,
    bench_warmup=1,
    s640=False,
    ddp_min_epochs=2,
    threads=1,
)


def _detcli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run([*DETCLI, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"detcli {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def steps_per_epoch(n_train: int, batch: int) -> int:
    """Optimizer steps in one epoch (the train loader drops the last partial batch when there is more than one)."""
    return n_train // batch if n_train > batch else 1


def _common_args(data: Path, sizes: Sizes, device: str) -> list[str]:
    return [
        "--preset",
        "demo",
        f"data.root={data}",
        "data.synth=null",
        f"train.devices={'0' if device == 'cuda' else 'cpu'}",
        f"train.workers={sizes.workers}",
        "train.log_every=1",
        "train.time_hours=null",  # the demo's 9-minute cap would cut a run short of its steps
        *sizes.extra,
    ]


@dataclass(frozen=True)
class Job:
    """What every training run of one check shares."""

    data: Path
    n_train: int
    env: dict
    sizes: Sizes
    device: str
    steps: int  # --steps: each AMP run trains whole epochs of at least this many steps


def _train(name: str, amp: str, model: str, imgsz: int, job: Job) -> dict:
    """Train `model` with `amp` for about `steps` steps (whole epochs); loss, steps, peak memory and throughput
    from the run history's step rows."""
    from engine.runs import RunStore

    epochs = math.ceil(job.steps / steps_per_epoch(job.n_train, job.sizes.batch))
    t0 = time.perf_counter()
    _detcli(
        [
            "train",
            *_common_args(job.data, job.sizes, job.device),
            "--name",
            name,
            f"model.name={model}",
            f"data.imgsz={imgsz}",
            f"train.batch={job.sizes.batch}",
            f"train.epochs={epochs}",
            f"train.amp={amp}",
        ],
        job.env,
    )
    with RunStore.open(job.env["DETCLI_RUNS_DIR"]) as store:
        run = store.resolve_run(name)
        rows = store.last_steps(run["id"], limit=100000)
    losses = [r["loss"] for r in rows if r["loss"] is not None]
    fifth = max(1, len(losses) // 5)  # single steps are noisy: the first and last fifth's means
    return {
        "model": model,
        "imgsz": imgsz,
        "amp": amp,
        "steps_requested": job.steps,
        "epochs": epochs,
        "steps": len(rows),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "loss_fell": bool(losses) and sum(losses[-fifth:]) / fifth < sum(losses[:fifth]) / fifth,
        "finite": all(v == v and abs(v) != float("inf") for v in losses),
        "max_vram_mb" if job.device == "cuda" else "max_rss_mb": max((r["mem_mb"] or 0) for r in rows),
        "img_s": sorted(r["img_s"] or 0 for r in rows)[len(rows) // 2] if rows else None,
        "wall_s": round(time.perf_counter() - t0, 1),
        "run_device": run["device"],
    }


def _agreement(weights: Path, images: list[Path], device: str, sizes: Sizes) -> dict:
    """Per backend: outputs against torch eager (top detection equal, max abs diff on boxes and scores) and the
    bench breakdown (read/pre/infer/post, the graph alone, and files streamed with reading overlapped)."""
    import numpy as np

    from engine.bench.runner import bench_predictor
    from engine.data.decode import read_image
    from engine.export.run_export import export_checkpoint
    from engine.infer import Predictor

    imgs = [read_image(p) for p in images[: sizes.agreement_images]]
    ref = Predictor.from_path(weights, backend="torch", device=device)
    out: dict = {}
    targets = [("torch", weights, device)]
    onnx_path = export_checkpoint(weights, "onnx").path
    targets.append(("onnx", onnx_path, device))
    try:
        import tensorrt  # noqa: F401

        if device == "cuda":
            for half in (False, True):
                trt = export_checkpoint(weights, "tensorrt", half=half).path
                targets.append((f"tensorrt_{'fp16' if half else 'fp32'}", trt, "cuda"))
    except ImportError:
        out["tensorrt"] = {"skipped": "tensorrt not installed: pip install 'detcli[tensorrt]'"}
    for name, path, dev in targets:
        backend = name.split("_")[0]
        try:
            pred = Predictor.from_path(path, backend=backend, device=dev)
        except (ImportError, RuntimeError, ValueError) as e:
            out[name] = {"skipped": str(e)}
            continue
        box_diff = score_diff = 0.0
        top_equal = True
        for img in imgs:
            a = ref.predict(img, conf=0.0)
            b = pred.predict(img, conf=0.0)
            k = min(len(a.scores), len(b.scores), 10)
            if k:
                top_equal &= int(a.labels[0]) == int(b.labels[0])
                box_diff = max(box_diff, float(np.abs(a.boxes[:k] - b.boxes[:k]).max()))
                score_diff = max(score_diff, float(np.abs(a.scores[:k] - b.scores[:k]).max()))
        if dev == "cuda" and pred.backend.on_cpu:
            # ONNX Runtime without its CUDA provider (the CPU wheel) falls back to the CPU: say so, not "cuda"
            dev = "cpu (no CUDA provider here: pip install onnxruntime-gpu)"
        # stream=True: the read-ahead path runs on the CPU dry mode too, not only where the graph is off the CPU
        row = bench_predictor(
            pred, images, runs=sizes.bench_runs, warmup=sizes.bench_warmup, device=dev, stream=True
        )
        out[name] = {
            "device": dev,
            "precision": row.precision,
            "providers": getattr(getattr(pred.backend, "session", None), "get_providers", lambda: None)(),
            "latency_ms_median": row.p50_ms,
            "top_detection_equal": bool(top_equal),
            "max_abs_box_diff_px": box_diff,
            "max_abs_score_diff": score_diff,
            "bench": {
                "runs": row.runs,
                "read_ms": row.read_ms,
                "pre_ms": row.pre_ms,
                "infer_ms": row.infer_ms,
                "post_ms": row.post_ms,
                "mean_ms": row.mean_ms,
                "p95_ms": row.p95_ms,
                "model_only_ms": row.model_only_ms,
                "streamed_ms": row.stream_ms,
                "fps": row.fps,
            },
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=100, help="training steps of each AMP run (default 100)")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    dry = args.device == "cpu"
    if dry and not os.environ.get("DETCLI_BENCH_RESULTS"):
        print("the dry mode writes only under DETCLI_BENCH_RESULTS (its numbers are not GPU numbers)")
        return 2
    sizes = DRY if dry else GPU
    t_start = time.monotonic()
    result: dict = {
        "gpu": torch.cuda.get_device_name(0) if not dry else "none (cpu dry run)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "steps": args.steps,
    }
    from engine.data.formats.yolo import split_images
    from engine.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        # the checkout first, before what the caller set (a `pip install --target` folder of missing wheels)
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "DETCLI_RUNS_DIR": str(runs_dir), "PYTHONPATH": pythonpath}
        if sizes.threads:
            env["OMP_NUM_THREADS"] = str(sizes.threads)
            torch.set_num_threads(sizes.threads)
        data = generate(Path(tmp) / "demo", images=sizes.images, size=sizes.imgsz, seed=0)
        n_train = len(split_images(data, "train"))
        amps = ["bf16"] if dry else ["fp16", "bf16"]
        job = Job(data, n_train, env, sizes, args.device, args.steps)
        for amp in amps:
            print(f"gpu_check: training dfine-n {sizes.imgsz} with {amp} ({args.steps} steps)", flush=True)
            result[f"train_{amp}"] = _part(_train, f"demo-{amp}", amp, "dfine-n", sizes.imgsz, job)
            if sizes.s640:
                print(f"gpu_check: training dfine-s 640 with {amp} ({args.steps} steps)", flush=True)
                result[f"train_{amp}_dfine_s_640"] = _part(_train, f"s640-{amp}", amp, "dfine-s", 640, job)
        print("gpu_check: torchrun training, SIGKILL mid-run, --resume", flush=True)
        spe = steps_per_epoch(n_train, sizes.ddp_batch)
        ddp_epochs = max(sizes.ddp_min_epochs, math.ceil(args.steps / spe))  # resume has epochs left
        ddp_args = [*_common_args(data, sizes, args.device), f"data.imgsz={sizes.imgsz}"]
        try:
            result["ddp"], result["resume"] = ddp_and_resume(
                [*ddp_args, f"train.batch={sizes.ddp_batch}"],
                "ddp",
                ddp_epochs,
                spe,
                runs_dir,
                env,
                args.device,
            )
        except Exception as e:
            result["ddp"] = result["resume"] = _failed(e)
        print("gpu_check: inference agreement and bench per backend", flush=True)
        weights = runs_dir / f"demo-{amps[0]}" / "best.pt"
        images = split_images(data, "val") or sorted(data.rglob("*.jpg"))
        result["inference"] = _part(_agreement, weights, images, args.device, sizes)
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    result["ok"] = _all_ok(result, amps, sizes)
    path = save("gpu_check", result)
    print(
        f"gpu_check: {path} ({'all checks passed' if result['ok'] else 'SOME CHECKS FAILED: see the JSON'})"
    )
    return 0 if result["ok"] else 1


def _part(fn, *args) -> dict:
    """One part of the check; an exception becomes that part's `error` (with the output tail), so the JSON still
    says what the other parts proved: on a borrowed GPU box there may be no second try."""
    try:
        return fn(*args)
    except Exception as e:
        return _failed(e)


def _failed(e: Exception) -> dict:
    print(f"gpu_check: FAILED: {type(e).__name__}: {str(e)[-500:]}", flush=True)
    return {"ok": False, "error": f"{type(e).__name__}: {str(e)[-3000:]}"}


def _all_ok(result: dict, amps: list[str], sizes: Sizes) -> bool:
    """Every training finite with a falling loss, DDP and resume proven, every backend agreeing with torch."""
    trains = [result[f"train_{a}"] for a in amps] + (
        [result[f"train_{a}_dfine_s_640"] for a in amps] if sizes.s640 else []
    )
    if any("error" in t for t in trains) or "error" in result["inference"]:
        return False
    inference = [v for v in result["inference"].values() if "skipped" not in v]
    return bool(
        all(t["finite"] and t["steps"] >= t["steps_requested"] for t in trains)
        and (all(t["loss_fell"] for t in trains) or sizes is DRY)  # a few toy steps need not fall
        and result["ddp"]["ok"]
        and result["resume"]["ok"]
        and inference
        and all(v["top_detection_equal"] for v in inference)
    )


if __name__ == "__main__":
    sys.exit(main())
