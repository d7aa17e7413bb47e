"""`detcli predict`: run a model on new images or a video and write YOLO txt pre-annotations (and drawn images)."""

from __future__ import annotations

from pathlib import Path

import click

from detcli.errors import engine_errors, weights_errors


@click.command("predict")
@click.argument("model", metavar="WEIGHTS|EXPORT")
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="predictions", show_default=True)
@click.option("--conf", type=float, default=None, help="Confidence threshold (default: the model's F1-best).")
@click.option(
    "--save-labels/--no-save-labels",
    default=True,
    show_default=True,
    help="Write labels/<image>.txt in YOLO format (class cx cy w h, normalised).",
)
@click.option(
    "--save-images", is_flag=True, help="Also write the images (or, for a video, the video) with boxes drawn."
)
@click.pass_context
def predict_cmd(
    ctx: click.Context,
    model: str,
    source: str,
    out_dir: str,
    conf: float | None,
    save_labels: bool,
    save_images: bool,
) -> None:
    """Pre-annotate new images or a video with a trained model (review them in your labelling tool)."""
    import cv2
    from rich.progress import track

    from detcli.cli import runs_dir_from
    from detcli.console import make_console
    from engine.api import is_video, load

    with engine_errors(), weights_errors():
        mdl = load(model, runs_dir=runs_dir_from(ctx), conf=conf)
    src = Path(source)
    out = Path(out_dir)
    video = src.is_file() and is_video(src)
    if video:
        cap = cv2.VideoCapture(str(src))
        n_items, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS) or 25.0
        cap.release()
    else:
        from engine.data.formats.yolo import IMAGE_SUFFIXES

        n_items = 1 if src.is_file() else sum(1 for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not n_items:
            raise click.UsageError(f"no images in {src}")
    total = skipped = seen = 0
    writer = None
    with engine_errors():
        results = mdl.stream(src)
        for r in track(results, total=n_items, description="predicting", console=make_console(stderr=True)):
            seen += 1
            if r.detections is None:
                click.echo(f"skipping unreadable image {r.source}", err=True)
                skipped += 1
                continue
            det, img = r.detections, r.image
            total += len(det)
            if video:
                rel = Path(f"{src.stem}_{r.frame:06d}.txt")
            else:
                path = Path(r.source)
                rel = path.relative_to(src) if src.is_dir() else Path(path.name)
            if save_labels:
                label = (out / "labels" / rel).with_suffix(".txt")
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(det.to_yolo(img.shape[1], img.shape[0]))
            if save_images:
                drawn = det.draw(img)
                if video:
                    if writer is None:
                        out.mkdir(parents=True, exist_ok=True)
                        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                        writer = cv2.VideoWriter(
                            str(out / f"{src.stem}.mp4"), fourcc, fps, (img.shape[1], img.shape[0])
                        )
                    writer.write(drawn)
                else:
                    (out / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(out / "images" / rel), drawn)
    if writer is not None:
        writer.release()
    if save_labels:
        out.mkdir(parents=True, exist_ok=True)
        (out / "classes.txt").write_text("\n".join(mdl.names) + "\n")
    what = "frames" if video else "images"
    click.echo(
        f"{seen - skipped} {what}, {total} detections at conf {mdl.conf:.3f} -> {out}"
        + (f" ({skipped} unreadable skipped)" if skipped else "")
    )


COMMANDS = [predict_cmd]
