"""`detcli aug-preview`: a PNG grid of exactly what the model sees, boxes and class names drawn."""

from __future__ import annotations

import click


@click.command("aug-preview")
@click.option("--preset", default=None, help="Preset name or YAML path.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None)
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("-n", "count", type=int, default=16, show_default=True, help="Images in the grid.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--epoch", type=int, default=0, show_default=True, help="Epoch to preview (close_mosaic applies)."
)
@click.option(
    "--mode",
    type=click.Choice(["train", "val"]),
    default="train",
    show_default=True,
    help="train = augmented; val = the evaluation preprocessing only.",
)
@click.option("--compare", is_flag=True, help="Original next to augmented.")
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False), default="aug_preview.png", show_default=True
)
@click.argument("overrides", nargs=-1)
def aug_preview_cmd(
    preset: str | None,
    config_file: str | None,
    split: str,
    count: int,
    seed: int,
    epoch: int,
    mode: str,
    compare: bool,
    out_path: str,
    overrides: tuple[str, ...],
) -> None:
    """Render what the model sees (after every transform): boxes under augs.min_box_px... are drawn red."""
    import cv2
    import numpy as np

    from detcli.errors import config_errors
    from engine.config import load_config
    from engine.data.dataset import build_dataset
    from engine.data.decode import read_image
    from engine.metrics.gallery import grid

    with config_errors():
        cfg = load_config(preset, config_file, (*overrides, f"train.seed={seed}"))
    try:
        ds = build_dataset(cfg, split, mode)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    ds.set_epoch(epoch)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ds), size=min(count, len(ds)), replace=False)
    tiles, tiny_total = [], 0
    min_px = max(4.0, cfg.augs.min_box_px)
    for i in picks:
        tensor, t = ds[int(i)]
        img = np.ascontiguousarray(tensor.permute(1, 2, 0).numpy()[:, :, ::-1])
        h, w = img.shape[:2]
        tiny = 0
        for (cx, cy, bw, bh), c in zip(t["boxes"].numpy(), t["labels"].numpy(), strict=True):
            x1, y1, x2, y2 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
            small = min(x2 - x1, y2 - y1) < min_px
            tiny += small
            colour = (40, 40, 230) if small else (60, 200, 60)
            cv2.rectangle(img, (int(x1), int(y1)), (int(x2), int(y2)), colour, 1)
            cv2.putText(
                img,
                ds.class_names[int(c)],
                (int(x1), max(8, int(y1) - 2)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.3,
                colour,
                1,
            )
        tiny_total += tiny
        cv2.putText(
            img,
            f"{len(t['labels'])} boxes, {tiny} < {min_px:g}px",
            (3, 12),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (255, 255, 255),
            1,
        )
        if compare:
            orig = read_image(ds.records[t["image_id"]].path)
            tiles.append(orig)
        tiles.append(img)
    cv2.imwrite(out_path, grid(tiles, cols=4 if not compare else 2, cell=max(cfg.data.imgsz)))
    click.echo(
        f"{len(picks)} {mode} samples of {split} -> {out_path} ({tiny_total} boxes under {min_px:g}px)"
    )


COMMANDS = [aug_preview_cmd]
