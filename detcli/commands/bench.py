"""`detcli bench`: latency per backend on a device profile, like the article's tables, stored in the run history."""

from __future__ import annotations

import itertools
from pathlib import Path

import click

from detcli.commands.export import resolve_weights

CPU_BACKENDS = ("torch", "onnx", "openvino")


def _artifact_for(
    backend: str, weights: Path, run: dict | None, store, precision: str, dynamic: bool, echo
) -> Path:
    """The run's existing export for this backend, or a fresh one next to the weights."""
    from engine.export.run_export import export_checkpoint

    if backend == "torch":
        return weights
    fmt = {"onnx": "onnx", "openvino": "openvino", "tensorrt": "tensorrt"}[backend]
    if run is not None:
        for a in reversed(store.artifacts(run["id"], "export")):
            m = a["meta"]
            if (
                m.get("format") == fmt
                and m.get("precision") == precision
                and bool(m.get("dynamic")) == dynamic
                and Path(a["path"]).exists()
            ):
                return Path(a["path"])
    echo(f"exporting {fmt} {precision} for the benchmark ...")
    res = export_checkpoint(weights, fmt, half=precision == "fp16", dynamic=dynamic)
    if run is not None:
        store.add_artifact(
            run["id"],
            "export",
            res.path,
            {"format": fmt, "precision": precision, "imgsz": list(res.imgsz), "dynamic": dynamic},
        )
    return res.path


def _backend_setup(profile, backend: str) -> tuple[str, dict, str]:
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


@click.command("bench")
@click.argument("model", metavar="RUN|MODEL")
@click.argument("results", required=False, metavar="[RESULTS.json]")
@click.option(
    "--device",
    "device_profile",
    default="auto",
    show_default=True,
    help="Device profile from presets/devices (n100, cpu, rtx3060, cuda, auto).",
)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=click.Choice(["torch", "onnx", "openvino", "tensorrt"]),
    help="Benchmark only these backends (repeatable).",
)
@click.option("--runs", type=int, default=200, show_default=True)
@click.option("--warmup", type=int, default=20, show_default=True)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder of images to read (default: the run's val split).",
)
@click.option(
    "--dynamic",
    is_flag=True,
    help="Also time the article's cut-padding trick: a letterbox model run at the padding-free size of each "
    "image (PyTorch, or exports made with free H/W, which bench creates), and report the latency drop.",
)
@click.option(
    "--compare", is_flag=True, help="Every backend available on this machine, with the ratio to the fastest."
)
@click.option("--accuracy", is_flag=True, help="Also F1/mAP50 on the val split per backend.")
@click.option(
    "--host",
    default=None,
    help="Benchmark on this machine over SSH (user@host or a ~/.ssh/config alias); needs Python there.",
)
@click.option(
    "--remote-python",
    default=None,
    help="Python on the --host target [default: the venv --setup made there, else python3].",
)
@click.option(
    "--ssh-config",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="ssh config file to use instead of ~/.ssh/config (ssh -F).",
)
@click.option("--setup", is_flag=True, help="Create a venv on the --host target and pip-install the runtime.")
@click.option("--remote-timeout", type=float, default=900.0, show_default=True, help="Seconds per ssh step.")
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a zip (artifact, images, runner, run.sh) for a target without SSH; "
    "record its output with `detcli bench import results.json`.",
)
@click.pass_context
def bench_cmd(
    ctx: click.Context,
    model: str,
    device_profile: str,
    backends: tuple[str, ...],
    runs: int,
    warmup: int,
    images_dir: str | None,
    dynamic: bool,
    compare: bool,
    accuracy: bool,
    results: str | None,
    host: str | None,
    remote_python: str | None,
    ssh_config: str | None,
    setup: bool,
    remote_timeout: float,
    bundle: str | None,
) -> None:
    """Measure latency per image (read, pre, infer, post; mean, p50, p95, FPS) as a user will get it.

    With --host, on that machine over SSH; `detcli bench import RESULTS.json` records a --bundle's output."""
    if model == "import":
        from detcli.commands.bench_remote import import_results

        if not results:
            raise click.UsageError("usage: detcli bench import RESULTS.json")
        import_results(ctx, Path(results))
        return
    from rich.progress import Progress

    from detcli.console import make_console
    from engine.bench.profiles import ProfileError, load_profile
    from engine.bench.record import benchmark_record
    from engine.bench.runner import bench_predictor, host_cpu
    from engine.config import RunConfig
    from engine.data.formats.yolo import IMAGE_SUFFIXES, split_images
    from engine.infer import Predictor

    console = make_console()
    try:
        profile = load_profile(device_profile, here=not (host or bundle))
    except ProfileError as e:
        raise click.UsageError(str(e)) from None
    for note in profile.notes:
        console.print(f"[yellow]warning:[/yellow] {note}")

    path = Path(model)
    if path.suffix in (".onnx", ".xml", ".engine"):
        from detcli.cli import runs_dir_from
        from engine.infer.predictor import backend_for
        from engine.runs import RunStore

        weights, run, store = path, None, RunStore.open(runs_dir_from(ctx))
        chosen = [backend_for(path)]
    else:
        weights, run, store = resolve_weights(ctx, model)
        chosen = list(backends) or (list(CPU_BACKENDS) if compare else profile.backends)
        if compare and profile.name in ("cuda", "rtx3060"):
            chosen = ["tensorrt", *CPU_BACKENDS]
    cfg = RunConfig.model_validate(run["config"]) if run else None
    if images_dir:
        images = sorted(p for p in Path(images_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif cfg and cfg.data.root:
        images = split_images(Path(cfg.data.root), cfg.data.val_split)
    else:
        raise click.UsageError("no images to read: pass --images DIR")
    if not images:
        raise click.UsageError("no images found to benchmark with")

    if host or bundle:
        from detcli.commands.bench_remote import bench_elsewhere

        artifacts = {}
        for b in [b for b in chosen if b != "torch"]:  # the target runs exports only, no PyTorch there
            prec = _backend_setup(profile, b)[0]
            artifacts[b] = (
                weights
                if path.suffix in (".onnx", ".xml", ".engine")
                else _artifact_for(
                    b, weights, run, store, prec if b != "onnx" else "fp32", False, console.print
                )
            )
        bench_elsewhere(
            console,
            profile,
            artifacts,
            run,
            store,
            images,
            runs,
            warmup,
            host,
            remote_python,
            ssh_config,
            setup,
            remote_timeout,
            bundle,
            accuracy,
            cfg,
            compare,
        )
        return
    rows = []
    for backend in chosen:
        precision, kw, device = _backend_setup(profile, backend)
        artifact = (
            weights
            if path.suffix in (".onnx", ".xml", ".engine")
            else _artifact_for(
                backend,
                weights,
                run,
                store,
                precision if backend != "onnx" else "fp32",
                dynamic,
                console.print,
            )
        )
        # --dynamic times the letterbox run and the cut-padding run of the same graph: the drop is the point
        for cut in (False, True) if dynamic else (False,):
            try:
                predictor = Predictor.from_path(
                    artifact, backend=backend, device=device, cut_padding=cut, **kw
                )
            except (ImportError, RuntimeError, ValueError) as e:
                console.print(f"[yellow]skipping {backend}:[/yellow] {e}")
                continue
            with Progress(console=console, transient=True) as prog:
                task = prog.add_task(
                    f"{backend} {precision}{' cut padding' if cut else ''}", total=warmup + runs
                )
                row = bench_predictor(
                    predictor,
                    images,
                    runs,
                    warmup,
                    str(device),
                    precision,
                    str(artifact),
                    progress=lambda d, t, task=task: prog.update(task, completed=d, total=t),
                )
            if accuracy and cfg is not None and not cut:
                from engine.evaluation import ResolvedTarget, evaluate_target

                res = evaluate_target(
                    ResolvedTarget(Path(artifact), backend, cfg, run, Path(run["dir"])),
                    cfg,
                    "val",
                    backend=backend,
                )
                row.notes.append(f"F1 {res.f1:.4f} mAP50 {res.map50:.4f}")
                row_acc = {"f1": res.f1, "map50": res.map50}
            else:
                row_acc = {}
            if cut:
                row.imgsz += " cut"
            rows.append(row)
            if store is not None:
                store.add_benchmark(
                    benchmark_record(
                        row.to_dict(),
                        run_id=run["id"] if run else None,
                        artifact=str(artifact),
                        profile=profile.name,
                        host_cpu=host_cpu(),
                        host_gpu=_gpu_name(),
                        extra={"dynamic": dynamic, "cut_padding": cut, **row_acc},
                    )
                )
    if not rows:
        raise click.ClickException("no backend could run on this machine")
    _print_table(console, rows, profile.name, compare or len(rows) > 1)
    if dynamic:
        for full, cut in itertools.pairwise(rows):
            if full.backend == cut.backend and cut.imgsz.endswith(" cut") and not full.imgsz.endswith(" cut"):
                drop = 100 * (1 - cut.mean_ms / full.mean_ms)
                console.print(
                    f"cut padding on {cut.backend}: {full.mean_ms:.1f} -> {cut.mean_ms:.1f} ms per image "
                    f"({-drop:+.0f}% latency)"
                )


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _print_table(console, rows, profile: str, ratios: bool, where: str | None = None) -> None:
    from rich.table import Table

    from engine.bench.runner import host_cpu

    fastest = min(r.mean_ms for r in rows)
    t = Table(
        title=f"latency per image on {where or host_cpu()} (profile {profile}), ms",
        title_justify="left",
        caption="model only: the same graph on one fixed input; streamed: per image over a folder with the next "
        "file read while the graph runs, as predict/eval do when the graph runs off the CPU",
        caption_justify="left",
    )
    cols = [
        "backend",
        "device",
        "precision",
        "imgsz",
        "read",
        "pre",
        "infer",
        "post",
        "mean",
        "p50",
        "p95",
        "FPS",
        "model only",
        "streamed",
    ]
    if ratios:
        cols.append("x fastest")
    if any(r.notes for r in rows):
        cols.append("accuracy")
    for c in cols:
        t.add_column(
            c, justify="left" if c in ("backend", "device", "precision", "imgsz", "accuracy") else "right"
        )
    for r in rows:
        vals = [
            r.backend,
            r.device,
            r.precision,
            r.imgsz,
            f"{r.read_ms:.1f}",
            f"{r.pre_ms:.1f}",
            f"{r.infer_ms:.1f}",
            f"{r.post_ms:.1f}",
            f"{r.mean_ms:.1f}",
            f"{r.p50_ms:.1f}",
            f"{r.p95_ms:.1f}",
            f"{r.fps:.1f}",
            f"{r.model_only_ms:.1f}",
            f"{r.stream_ms:.1f}" if r.stream_ms is not None else "-",
        ]
        if ratios:
            vals.append(f"{r.mean_ms / fastest:.2f}")
        if "accuracy" in cols:
            vals.append("; ".join(r.notes))
        t.add_row(*vals)
    console.print(t)


COMMANDS = [bench_cmd]
