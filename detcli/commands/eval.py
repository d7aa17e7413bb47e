"""`detcli eval`: score a run, a weights file or an exported model on a split; or score COCO files."""

from __future__ import annotations

import json
from pathlib import Path

import click

from detcli.errors import engine_errors, run_errors


@click.command("eval")
@click.argument("target", required=False, metavar="RUN|WEIGHTS|EXPORT")
@click.option(
    "--gt", "gt_path", type=click.Path(dir_okay=False), help="COCO ground-truth json (with --pred)."
)
@click.option("--pred", "pred_path", type=click.Path(dir_okay=False), help="COCO results json to score.")
@click.option("--split", type=click.Choice(["val", "test", "train"]), default="val", show_default=True)
@click.option(
    "--data",
    "data_root",
    type=click.Path(file_okay=False),
    default=None,
    help="Dataset root (default: the one the run was trained on).",
)
@click.option(
    "--conf", type=float, default=None, help="Production confidence threshold (default: the run's)."
)
@click.option("--iou", type=float, default=None, help="IoU for a match (default 0.5).")
@click.option(
    "--max-det", type=int, default=None, help="Detections kept per image (VisDrone scoring uses 500)."
)
@click.option(
    "--backend",
    type=click.Choice(["torch", "onnx", "openvino"]),
    default=None,
    help="Run an exported model instead of the PyTorch weights (default: from the file type).",
)
@click.option(
    "--save-vis",
    type=int,
    default=12,
    show_default=True,
    help="Images to draw (GT green, predictions blue) plus the error gallery; 0 = none.",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write plots (default: the run folder's eval-<split>/).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    target: str | None,
    gt_path: str | None,
    pred_path: str | None,
    split: str,
    data_root: str | None,
    conf: float | None,
    iou: float | None,
    max_det: int | None,
    backend: str | None,
    save_vis: int,
    plots_dir: str | None,
    as_json: bool,
) -> None:
    """Score a model: COCO mAP, and precision/recall/F1/IoU at the production threshold.

    \b
    detcli eval demo-3                      # best.pt of a run on its val split
    detcli eval runs/demo-3/model.onnx      # an export, same metrics (is the FP16/INT8 export as good?)
    detcli eval --gt gt.json --pred dets.json --json   # numbers from another framework
    """
    from detcli.console import make_console
    from detcli.render import render_eval

    console = make_console(stderr=as_json)
    if gt_path or pred_path:
        if not (gt_path and pred_path) or target:
            raise click.UsageError("score files with both --gt and --pred (and no RUN argument)")
        from engine.metrics.coco_io import CocoFileError, score_coco_files

        try:
            result = score_coco_files(
                gt_path,
                pred_path,
                conf if conf is not None else 0.5,
                iou if iou is not None else 0.5,
                max_det or 100,
            )
        except CocoFileError as e:
            raise click.ClickException(str(e)) from None
        out_dir = Path(plots_dir) if plots_dir else None
    else:
        if not target:
            raise click.UsageError("give RUN, a weights/export file, or --gt and --pred")
        from detcli.cli import runs_dir_from
        from engine.api import evaluate

        with run_errors(), engine_errors():
            result = evaluate(
                target,
                split=split,
                runs_dir=runs_dir_from(ctx),
                data_root=data_root,
                conf=conf,
                iou=iou,
                max_det=max_det,
                backend=backend,
                save_vis=save_vis,
                out_dir=plots_dir,
                echo=(lambda line: None) if as_json else console.print,
            )
        if result.skipped:
            shown = ", ".join(result.skipped[:3]) + (
                f" and {len(result.skipped) - 3} more" if len(result.skipped) > 3 else ""
            )
            console.print(
                f"[yellow]{len(result.skipped)} unreadable image(s) not scored:[/yellow] {shown} "
                f"(run `detcli data check {result.data_root}`)"
            )
        out_dir = Path(result.out_dir)
    if out_dir is not None:
        from engine.metrics.plots import save_eval_plots

        paths = save_eval_plots(result, out_dir)
        if not as_json:
            console.print(f"plots: {out_dir} ({', '.join(p.name for p in paths)})")
    if as_json:
        click.echo(json.dumps(result.to_dict(), default=float))
    else:
        render_eval(result, console)


COMMANDS = [eval_cmd]
