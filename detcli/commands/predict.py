"""`detcli predict`: run a model on new images and write YOLO txt pre-annotations (and drawn images)."""

from __future__ import annotations

from pathlib import Path

import click


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
@click.option("--save-images", is_flag=True, help="Also write the images with boxes drawn.")
def predict_cmd(
    model: str, source: str, out_dir: str, conf: float | None, save_labels: bool, save_images: bool
) -> None:
    """Pre-annotate new images with a trained model (review them in your labelling tool)."""
    import cv2
    from rich.progress import track

    from detcli.console import make_console
    from engine.data.formats.yolo import IMAGE_SUFFIXES, write_label_file
    from engine.data.records import ImageRecord
    from engine.infer import Predictor
    from engine.metrics.gallery import draw_detections

    try:
        predictor = Predictor.from_path(model, conf=conf)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    src = Path(source)
    images = (
        [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    )
    if not images:
        raise click.UsageError(f"no images in {src}")
    out = Path(out_dir)
    total = skipped = 0
    files = predictor.predict_files(images)
    for item in track(files, total=len(images), description="predicting", console=make_console(stderr=True)):
        path, img, det = item.path, item.image, item.detections
        if det is None:
            click.echo(f"skipping unreadable image {path}", err=True)
            skipped += 1
            continue
        total += len(det)
        rel = path.relative_to(src) if src.is_dir() else Path(path.name)
        if save_labels:
            write_label_file(
                (out / "labels" / rel).with_suffix(".txt"),
                ImageRecord(path, img.shape[1], img.shape[0], det.boxes, det.labels),
            )
        if save_images:
            drawn = draw_detections(
                img, pred=(det.boxes, det.scores, det.labels), class_names=predictor.class_names
            )
            (out / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / "images" / rel), drawn)
    if save_labels:
        (out / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
        (out / "classes.txt").write_text("\n".join(predictor.class_names) + "\n")
    click.echo(
        f"{len(images) - skipped} images, {total} detections at conf {predictor.conf:.3f} -> {out}"
        + (f" ({skipped} unreadable skipped)" if skipped else "")
    )


COMMANDS = [predict_cmd]
