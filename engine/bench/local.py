"""A benchmark from a name: which model, which backends the device profile asks for, which images, which export
each backend runs (found on the run or made); then, on this machine, each timed and recorded in the run history.

`plan_bench` is shared with the remote path (`detcli bench --host/--bundle`, engine/bench/remote.py), so a run name
and a profile mean the same there; `bench_here` is the local timing."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.bench.profiles import DeviceProfile, load_profile
from engine.bench.runner import BenchRow
from engine.config import RunConfig
from engine.errors import BenchFailed, ModelNotFound, UsageProblem
from engine.runs import RunStore
from engine.runs.targets import EXPORT_SUFFIXES, resolve_target

CPU_BACKENDS = ("torch", "onnx", "openvino")
Echo = Callable[[str], None]
# (label, done, total): one call per timed image, so a caller can draw its own progress bar
Progress = Callable[[str, int, int], None]


@dataclass
class BenchPlan:
    """What to time: the model file, its run (if any), the backends in order, the images to read."""

    profile: DeviceProfile
    model: Path
    is_export: bool  # an .onnx/.xml/.engine given directly: only its own backend runs
    run: dict | None
    store: RunStore
    backends: list[str]
    images: list[Path]
    config: RunConfig | None
    notes: list[str] = field(default_factory=list)


@dataclass
class BenchTable:
    """What `engine.bench` returns: one row per backend timed (see BenchRow), the profile, and its notes."""

    profile: str
    rows: list[BenchRow]
    notes: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def backend_setup(profile: DeviceProfile, backend: str) -> tuple[str, dict, str]:
    """(precision, backend options, device) the profile asks of `backend`."""
    opts = dict(profile.options.get(backend, {}))
    precision = "fp16" if opts.get("half") or opts.get("precision_hint") == "f16" else "fp32"
    kw = (
        {
            "hint": opts.get("hint", "LATENCY"),
            "threads": opts.get("threads"),
            "precision": opts.get("precision_hint"),
        }
        if backend == "openvino"
        else {}
    )
    return precision, kw, str(opts.get("device", "cpu"))


def plan_bench(
    model: str | Path,
    device: str = "auto",
    backends: list[str] | tuple[str, ...] | None = None,
    compare: bool = False,
    images: str | Path | None = None,
    runs_dir: str | Path = "runs",
    here: bool = True,
) -> BenchPlan:
    """Resolve the model (a run name, a .pt, or an export) and the profile (`here`: for this machine)."""
    from engine.data.formats.yolo import IMAGE_SUFFIXES, split_images
    from engine.infer.predictor import backend_for

    profile = load_profile(device, here=here)
    store = RunStore.open(runs_dir)
    path = Path(model)
    is_export = path.suffix.lower() in EXPORT_SUFFIXES
    if is_export:
        if not path.is_file():
            raise ModelNotFound(f"model not found: {path}")
        weights, run, chosen = path, None, [backend_for(path)]
    else:
        resolved = resolve_target(model, store)
        weights, run = resolved.path, resolved.run
        chosen = list(backends or ()) or (list(CPU_BACKENDS) if compare else list(profile.backends))
        if compare and profile.name in ("cuda", "rtx3060"):
            chosen = ["tensorrt", *CPU_BACKENDS]
    cfg = RunConfig.model_validate(run["config"]) if run else None
    if images:
        files = sorted(p for p in Path(images).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif cfg and cfg.data.root:
        files = split_images(Path(cfg.data.root), cfg.data.val_split)
    else:
        raise UsageProblem("no images to read: pass --images DIR (images=)")
    if not files:
        raise UsageProblem("no images found to benchmark with")
    return BenchPlan(profile, weights, is_export, run, store, chosen, files, cfg, list(profile.notes))


def artifact_for(plan: BenchPlan, backend: str, dynamic: bool, echo: Echo) -> Path:
    """The file `backend` runs in this plan: the export given, or the run's export at the profile's precision."""
    from engine.export.recorded import export_for_backend

    if plan.is_export:
        return plan.model
    precision = backend_setup(plan.profile, backend)[0] if backend != "onnx" else "fp32"
    return export_for_backend(backend, plan.model, plan.run, plan.store, precision, dynamic, echo)


def bench_here(
    plan: BenchPlan,
    runs: int = 200,
    warmup: int = 20,
    dynamic: bool = False,
    accuracy: bool = False,
    echo: Echo = print,
    progress: Progress | None = None,
) -> list[BenchRow]:
    """Time each backend of the plan on this machine and record each row; a backend that cannot run here is
    skipped with a message. With `dynamic`, each backend also runs cut-padding (its row's imgsz ends in " cut")."""
    from engine.bench.record import benchmark_record
    from engine.bench.runner import bench_predictor, host_cpu
    from engine.infer import Predictor

    rows = []
    for backend in plan.backends:
        precision, kw, device = backend_setup(plan.profile, backend)
        artifact = artifact_for(plan, backend, dynamic, echo)
        # --dynamic times the letterbox run and the cut-padding run of the same graph: the drop is the point
        for cut in (False, True) if dynamic else (False,):
            try:
                predictor = Predictor.from_path(
                    artifact, backend=backend, device=device, cut_padding=cut, **kw
                )
            except (ImportError, RuntimeError, ValueError) as e:
                echo(f"skipping {backend}: {e}")
                continue
            label = f"{backend} {precision}{' cut padding' if cut else ''}"
            row = bench_predictor(
                predictor,
                plan.images,
                runs,
                warmup,
                str(device),
                precision,
                str(artifact),
                progress=(lambda d, t, label=label: progress(label, d, t)) if progress else None,
            )
            row_acc = {}
            if accuracy and plan.config is not None and not cut:
                from engine.evaluation import evaluate_target
                from engine.runs.targets import ResolvedTarget

                res = evaluate_target(
                    ResolvedTarget(Path(artifact), backend, plan.config, plan.run, Path(plan.run["dir"])),
                    plan.config,
                    "val",
                    backend=backend,
                )
                row.notes.append(f"F1 {res.f1:.4f} mAP50 {res.map50:.4f}")
                row_acc = {"f1": res.f1, "map50": res.map50}
            if cut:
                row.imgsz += " cut"
            rows.append(row)
            plan.store.add_benchmark(
                benchmark_record(
                    row.to_dict(),
                    run_id=plan.run["id"] if plan.run else None,
                    artifact=str(artifact),
                    profile=plan.profile.name,
                    host_cpu=host_cpu(),
                    host_gpu=_gpu_name(),
                    extra={"dynamic": dynamic, "cut_padding": cut, **row_acc},
                )
            )
    if not rows:
        raise BenchFailed("no backend could run on this machine")
    return rows


def cut_padding_drops(rows: list[BenchRow]) -> list[tuple[str, float, float]]:
    """(backend, full ms, cut-padding ms) for each backend timed both ways, in row order."""
    out = []
    for full, cut in itertools.pairwise(rows):
        if full.backend == cut.backend and cut.imgsz.endswith(" cut") and not full.imgsz.endswith(" cut"):
            out.append((cut.backend, full.mean_ms, cut.mean_ms))
    return out


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
