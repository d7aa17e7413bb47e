"""`detcli export`: ONNX / OpenVINO / TensorRT artifacts with metadata inside, recorded in the run history."""

from __future__ import annotations

import click

from detcli.errors import engine_errors, run_errors


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
    from detcli.cli import runs_dir_from
    from engine.api import export

    with run_errors(), engine_errors():
        res = export(
            target,
            format=fmt,
            half=half,
            int8=int8,
            imgsz=tuple(imgsz) if imgsz else None,
            dynamic=dynamic,
            simplify=simplify,
            out_dir=out_dir,
            runs_dir=runs_dir_from(ctx),
        )
    size = f"{res.imgsz[0]}x{res.imgsz[1]}{' dynamic' if dynamic else ''}"
    if res.runs_precision:
        runs = f"runs {res.runs_precision} on {res.runs_on}"
        if res.runs_precision != res.precision:
            runs += f" (file {res.precision})"
    else:
        runs = f"built {res.precision}"
    click.echo(f"{fmt} {size}, {runs}: {res.path}")
    if res.runs_note:
        click.echo(f"  {res.runs_note}")


COMMANDS = [export_cmd]
