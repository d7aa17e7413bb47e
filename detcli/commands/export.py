"""`detcli export`: ONNX / OpenVINO / TensorRT artifacts with metadata inside, recorded in the run history."""

from __future__ import annotations

from pathlib import Path

import click

from detcli.errors import run_errors


def resolve_weights(ctx: click.Context, target: str):
    """(weights path, run row or None) for a run name or a .pt file."""
    from detcli.cli import runs_dir_from
    from engine.runs import RunStore

    store = RunStore.open(runs_dir_from(ctx))
    path = Path(target)
    if path.is_file():
        from engine.models.checkpoint import read_checkpoint

        run_name = read_checkpoint(path).get("run_name")
        return path, (store.get_run(run_name) if run_name else None), store
    with run_errors():
        run = store.resolve_run(target)
    best = Path(run["dir"]) / "best.pt"
    if not best.is_file():
        raise click.ClickException(f"run '{run['name']}' has no best.pt yet (no finished epoch)")
    return best, run, store


@click.command("export")
@click.argument("target", metavar="RUN|WEIGHTS")
@click.option(
    "--format", "fmt", type=click.Choice(["onnx", "openvino", "tensorrt"]), default="onnx", show_default=True
)
@click.option("--half", is_flag=True, help="FP16 (OpenVINO compressed weights / TensorRT FP16).")
@click.option("--int8", is_flag=True, help="INT8 (OpenVINO via NNCF, calibrated on train images).")
@click.option(
    "--imgsz",
    nargs=2,
    type=int,
    default=None,
    metavar="H W",
    help="Input size (default: the training size). For the article's cut-padding trick, export a "
    "letterbox model at the padded-away size, e.g. --imgsz 384 640 for 16:9 frames at 640.",
)
@click.option("--dynamic", is_flag=True, help="Free height and width too (for cut-padding inference).")
@click.option("--simplify", is_flag=True, help="Run onnxsim on the ONNX graph (needs onnxsim).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Output folder.")
@click.pass_context
def export_cmd(
    ctx: click.Context,
    target: str,
    fmt: str,
    half: bool,
    int8: bool,
    imgsz: tuple[int, int] | None,
    dynamic: bool,
    simplify: bool,
    out_dir: str | None,
) -> None:
    """Export a run's best weights (or a .pt) for deployment; metadata travels inside the artifact.

    The batch axis is always free; --dynamic frees height and width too, so a letterbox model can run on the
    padding-free size of each image (`detcli bench --dynamic`).
    """
    from engine.export.run_export import export_checkpoint
    from engine.export.tensorrt import TensorRTUnavailable

    weights, run, store = resolve_weights(ctx, target)
    calibration = None
    if int8:
        from engine.config import RunConfig
        from engine.data.formats.yolo import split_images

        if run is None:
            raise click.UsageError("--int8 calibrates on the run's train images: give a run name")
        cfg = RunConfig.model_validate(run["config"])
        calibration = split_images(Path(cfg.data.root), cfg.data.train_split)[:64]
    try:
        res = export_checkpoint(
            weights,
            fmt,
            out_dir,
            tuple(imgsz) if imgsz else None,
            half,
            int8,
            simplify=simplify,
            calibration=calibration,
            dynamic=dynamic,
        )
    except TensorRTUnavailable as e:
        raise click.UsageError(str(e)) from None
    except (RuntimeError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if run is not None:
        store.add_artifact(
            run["id"],
            "export",
            res.path,
            {"format": fmt, "precision": res.precision, "imgsz": list(res.imgsz), "dynamic": dynamic},
        )
        store.log_event(run["id"], f"exported {fmt} {res.precision}: {res.path.name}")
    click.echo(
        f"{fmt} {res.precision} {res.imgsz[0]}x{res.imgsz[1]}{' dynamic' if dynamic else ''}: {res.path}"
    )


COMMANDS = [export_cmd]
