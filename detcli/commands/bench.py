"""`detcli bench`: latency per backend on a device profile, like the article's tables, stored in the run history."""

from __future__ import annotations

from pathlib import Path

import click

from detcli.errors import engine_errors, run_errors


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

    from detcli.cli import runs_dir_from
    from detcli.console import make_console
    from engine.bench.local import plan_bench

    console = make_console()
    if host or bundle:
        from detcli.commands.bench_remote import bench_elsewhere

        with run_errors(), engine_errors():
            plan = plan_bench(
                model,
                device=device_profile,
                backends=backends,
                compare=compare,
                images=images_dir,
                runs_dir=runs_dir_from(ctx),
                here=False,
            )
        for note in plan.notes:
            console.print(f"[yellow]warning:[/yellow] {note}")
        bench_elsewhere(
            console,
            plan,
            runs,
            warmup,
            host,
            remote_python,
            ssh_config,
            setup,
            remote_timeout,
            bundle,
            accuracy,
            compare,
        )
        return
    from engine.api import bench

    def say(line: str) -> None:
        if line.startswith(("warning: ", "skipping ")):  # the engine's notices: coloured as before
            head, rest = line.split(": ", 1)
            line = f"[yellow]{head}:[/yellow] {rest}"
        console.print(line)

    with Progress(console=console, transient=True) as prog:
        tasks: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = prog.add_task(label, total=total)
            prog.update(tasks[label], completed=done, total=total)

        with run_errors(), engine_errors():
            table = bench(
                model,
                device=device_profile,
                runs_dir=runs_dir_from(ctx),
                backends=backends,
                compare=compare,
                images=images_dir,
                runs=runs,
                warmup=warmup,
                dynamic=dynamic,
                accuracy=accuracy,
                echo=say,
                progress=progress,
            )
    _print_table(console, table.rows, table.profile, compare or len(table.rows) > 1)
    if dynamic:
        from engine.bench.local import cut_padding_drops

        for backend, full_ms, cut_ms in cut_padding_drops(table.rows):
            drop = 100 * (1 - cut_ms / full_ms)
            console.print(
                f"cut padding on {backend}: {full_ms:.1f} -> {cut_ms:.1f} ms per image ({-drop:+.0f}% latency)"
            )


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
