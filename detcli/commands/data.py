"""`detcli data`: check, stats, split, convert, prepare (VisDrone) and synth."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import click

VISDRONE_SPLITS = {
    "train": "VisDrone2019-DET-train",
    "val": "VisDrone2019-DET-val",
    "test": "VisDrone2019-DET-test-dev",
}


@click.group("data")
def data_group() -> None:
    """Datasets: check labels, statistics, CSV splits, format conversion, VisDrone preparation, synthetic data."""


@data_group.command("synth")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--images", type=int, default=240, show_default=True)
@click.option("--size", type=int, default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def synth_cmd(root: str, images: int, size: int, seed: int) -> None:
    """Generate a licence-clean synthetic dataset (shapes on textured backgrounds) in YOLO layout."""
    from rich.progress import Progress

    from engine.data.synth import generate

    with Progress(transient=True) as prog:
        task = prog.add_task("generating", total=images)
        generate(
            root, images=images, size=size, seed=seed, progress=lambda d, t: prog.update(task, completed=d)
        )
    click.echo(f"{images} images ({size}x{size}) with labels, classes.txt and train/val/test CSVs in {root}")


@data_group.command("check")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--preset", default=None, help="Take classes and input size from a preset.")
@click.option("--imgsz", type=int, default=None, help="Training input side (for the too-small check).")
@click.option("--min-px", type=float, default=4.0, show_default=True, help="Smallest learnable object side.")
@click.option("--near-dup", type=int, default=4, show_default=True, help="Hash distance for near duplicates.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-cache", is_flag=True, help="Re-check every file (ignore <root>/.detcli-cache/).")
@click.option(
    "--fix",
    "fix_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write quarantine.txt and cleaned split CSVs here (the source is never modified).",
)
def check_cmd(
    root: str,
    preset: str | None,
    imgsz: int | None,
    min_px: float,
    near_dup: int,
    as_json: bool,
    no_cache: bool,
    fix_dir: str | None,
) -> None:
    """Find corrupt images, bad label rows, duplicates and leakage across splits, tiny objects, imbalance.

    Results are kept in <root>/.detcli-cache/: the report of an unchanged dataset is reused (a stat per file,
    nothing opened), and after a change only the changed files are read again. Exit code 1 when errors exist
    (0 with warnings only).
    """
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from detcli.console import make_console
    from detcli.errors import config_errors
    from engine.config import load_config
    from engine.data.checks import check_dataset

    classes, size, mosaic = None, (640, 640), 1.0
    if preset:
        with config_errors():
            cfg = load_config(preset)
        classes, size = cfg.data.classes, cfg.data.imgsz
        mosaic = cfg.augs.mosaic.scale[0] if cfg.augs.mosaic.prob else 1.0
    if imgsz:
        size = (imgsz, imgsz)
    tty = sys.stderr.isatty()
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*cols, transient=True, disable=as_json or not tty) as prog:
        task = prog.add_task("checking images", total=None)

        lines = [0]  # the thousands reported so far when piped

        def progress(done: int, total: int) -> None:
            if tty:
                prog.update(task, completed=done, total=total)
            elif done // 1000 > lines[0] or done == total:  # piped: a line every 1000 files, not a bar
                lines[0] = done // 1000
                click.echo(f"checked {done}/{total} images", err=True)

        report = check_dataset(
            root,
            classes,
            size,
            min_px,
            mosaic,
            near_dup,
            progress=None if as_json else progress,  # --json output is for machines: nothing but the JSON
            use_cache=not no_cache,
        )
    if fix_dir:
        from detcli.errors import dataset_errors

        with dataset_errors():
            _write_fix(Path(root), Path(fix_dir), report)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        con = make_console()
        t = Table(title=f"data check: {root}", title_justify="left")
        for c in ("images", "labelled", "backgrounds", "boxes", "errors", "warnings"):
            t.add_column(c, justify="right")
        t.add_row(
            str(report.images),
            str(report.labelled),
            str(report.backgrounds),
            str(report.boxes),
            f"[red]{len(report.errors)}" if report.errors else "0",
            str(len(report.warnings)),
        )
        con.print(t)
        if report.class_counts:
            con.print("boxes per class: " + ", ".join(f"{k} {v}" for k, v in report.class_counts.items()))
        by_kind: dict = {}
        for f in report.findings:
            by_kind.setdefault((f.severity, f.kind), []).append(f)
        for (sev, kind), items in sorted(by_kind.items(), key=lambda kv: kv[0][0] != "error"):
            colour = "red" if sev == "error" else "yellow"
            con.print(f"[{colour}]{sev}[/{colour}] {kind} ({len(items)})")
            for f in items[:10]:
                con.print(f"  {f.where()}: {f.message}", markup=False, highlight=False)
            if len(items) > 10:
                con.print(f"  ... {len(items) - 10} more (use --json for all)")
        if not report.findings:
            con.print("[green]no problems found")
    if report.errors:
        raise SystemExit(1)


def _write_fix(root: Path, out: Path, report) -> None:
    """quarantine.txt (images with errors) and cleaned split CSVs without them; the source stays untouched."""
    import csv

    from engine.data.formats.yolo import split_images

    out.mkdir(parents=True, exist_ok=True)
    bad = set()
    for f in report.errors:
        p = Path(f.path)
        if p.suffix == ".txt":  # a label error quarantines its image
            p = next((root / "images" / p.relative_to(root / "labels")).parent.glob(p.stem + ".*"), p)
        bad.add(str(p.resolve()))
    (out / "quarantine.txt").write_text("".join(f"{b}\n" for b in sorted(bad)))
    for split in ("train", "val", "test"):
        if (root / f"{split}.csv").is_file():
            keep = [p for p in split_images(root, f"{split}.csv") if str(p.resolve()) not in bad]
            with open(out / f"{split}.csv", "w", newline="") as f:
                csv.writer(f).writerows([[str(p.relative_to(root))] for p in keep])
    click.echo(
        f"{len(bad)} quarantined image(s) listed in {out / 'quarantine.txt'}; cleaned splits in {out}",
        err=True,
    )


@data_group.command("split")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--val", type=float, default=0.2, show_default=True)
@click.option("--test", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--group-by", default=None, help=r"Regex naming the scene, e.g. '(uav\d+_\d+)_' for VisDrone.")
def split_cmd(root: str, val: float, test: float, seed: int, group_by: str | None) -> None:
    """Write train.csv / val.csv / test.csv (relative image paths) instead of moving files."""
    from engine.data.splits import make_splits

    try:
        counts = make_splits(root, val, test, seed, group_by)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    click.echo(", ".join(f"{k} {v}" for k, v in counts.items()) + f" -> {root}/{{train,val,test}}.csv")


@data_group.command("stats")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default=None, help="Only this split (train/val/test).")
@click.option(
    "--imgsz", type=int, default=640, show_default=True, help="Training input side for pixel sizes."
)
@click.option(
    "--png", "png_path", type=click.Path(dir_okay=False), default=None, help="Write a PNG report here."
)
def stats_cmd(root: str, split: str | None, imgsz: int, png_path: str | None) -> None:
    """Images, boxes, per-class counts, boxes per image, box sizes (COCO S/M/L and pixels at imgsz)."""
    import numpy as np
    import plotext as plt

    from detcli.errors import dataset_errors
    from engine.data.formats.yolo import load_records, read_classes

    root_p = Path(root)
    with dataset_errors():  # no class names, an unreadable split list: the message names the file
        names = read_classes(root_p)
        records, problems = load_records(root_p, f"{split}.csv" if split else "images", names)
    boxes = [r.boxes for r in records if len(r.boxes)]
    labels = np.concatenate([r.labels for r in records]) if records else np.zeros(0, int)
    all_boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    scale = (
        np.concatenate([[imgsz / max(r.width, r.height)] * len(r.boxes) for r in records if len(r.boxes)])
        if boxes
        else np.zeros(0)
    )
    side = (
        np.sqrt((all_boxes[:, 2] - all_boxes[:, 0]) * (all_boxes[:, 3] - all_boxes[:, 1]))
        if len(all_boxes)
        else np.zeros(0)
    )
    area = side**2
    click.echo(
        f"{len(records)} images, {len(all_boxes)} boxes, {len(problems)} label problems "
        f"(`detcli data check {root}` for details)"
    )
    click.echo(
        f"COCO sizes (original pixels): small {int((area < 32**2).sum())} / medium {int(((area >= 32**2) & (area < 96**2)).sum())} / large {int((area >= 96**2).sum())}"
    )
    sizes = _top_counts([f"{r.width}x{r.height}" for r in records])
    click.echo(f"image sizes: {sizes}")
    per_img = np.array([len(r.boxes) for r in records])
    click.echo(
        f"boxes per image: mean {per_img.mean():.1f}, max {per_img.max() if len(per_img) else 0}, "
        f"backgrounds {(per_img == 0).sum()}"
    )
    counts = [int((labels == c).sum()) for c in range(len(names))]
    plt.clf()
    plt.plotsize(80, max(8, len(names) + 4))
    plt.simple_bar(names, counts, title="boxes per class", width=70) if names else None
    if names:
        plt.show()
    if len(side):
        plt.clf()
        plt.plotsize(80, 15)
        plt.hist((side * scale).tolist(), bins=30)
        plt.title(f"object side in pixels at input {imgsz}")
        plt.show()
    if png_path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as mpl

        fig, ax = mpl.subplots(1, 3, figsize=(15, 4))
        ax[0].barh(names, counts)
        ax[0].set_title("boxes per class")
        ax[1].hist(side * scale, bins=40)
        ax[1].set_title(f"object side (px) at input {imgsz}")
        ax[2].hist(per_img, bins=20)
        ax[2].set_title("boxes per image")
        fig.tight_layout()
        fig.savefig(png_path, dpi=100)
        click.echo(f"report: {png_path}")


def _top_counts(items: list[str]) -> str:
    from collections import Counter

    return ", ".join(f"{k} ({v})" for k, v in Counter(items).most_common(6))


@data_group.command("convert")
@click.argument("src", type=click.Path(exists=True))
@click.argument("dst", type=click.Path())
@click.option("--from", "src_fmt", type=click.Choice(["coco", "visdrone", "voc", "yolo"]), required=True)
@click.option("--to", "dst_fmt", type=click.Choice(["yolo", "coco"]), required=True)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Image folder (COCO: relative to the json's folder by default; VOC: needed).",
)
def convert_cmd(src: str, dst: str, src_fmt: str, dst_fmt: str, images_dir: str | None) -> None:
    """Convert labels between formats (images are linked, not copied)."""
    from detcli.errors import dataset_errors

    with dataset_errors():  # unreadable source files: the message names the file
        records, names, problems = _read_any(Path(src), src_fmt, images_dir)
    for p in problems[:20]:
        click.echo(f"warning: {p}", err=True)
    if len(problems) > 20:
        click.echo(f"warning: ... {len(problems) - 20} more", err=True)
    n = write_dataset(records, names, Path(dst), dst_fmt)
    click.echo(f"{n} images, {sum(len(r.boxes) for r in records)} boxes -> {dst} ({dst_fmt})")


def _read_any(src: Path, fmt: str, images_dir: str | None):
    from engine.data.formats.coco import read_coco
    from engine.data.formats.visdrone import CLASSES, read_visdrone
    from engine.data.formats.voc import read_voc
    from engine.data.formats.yolo import load_records, read_classes

    if fmt == "coco":
        records, names, _, problems = read_coco(src, images_dir)
        return records, names, problems
    if fmt == "voc":
        ann = src / "Annotations" if (src / "Annotations").is_dir() else src
        imgs = (
            Path(images_dir) if images_dir else (src / "JPEGImages" if (src / "JPEGImages").is_dir() else src)
        )
        return read_voc(ann, imgs)
    if fmt == "visdrone":
        records, stats = read_visdrone(src / "images", src / "annotations")
        return records, list(CLASSES), stats.problems
    names = read_classes(src)
    records, problems = load_records(src, "images", names)
    return records, names, problems


def write_dataset(records, names: list[str], dst: Path, fmt: str) -> int:
    """Write records as a YOLO root (images linked) or a COCO json; returns the number of images."""
    from engine.data.formats.coco import write_coco
    from engine.data.formats.yolo import write_label_file

    dst.mkdir(parents=True, exist_ok=True)
    if fmt == "coco":
        common = Path(*Path(records[0].path).parts[:-1]) if records else dst
        write_coco(records, names, dst / "annotations.json", common)
        return len(records)
    (dst / "images").mkdir(exist_ok=True)
    for r in records:
        img_dst = dst / "images" / Path(r.path).name
        if not img_dst.exists():
            try:
                img_dst.symlink_to(Path(r.path).resolve())
            except OSError:
                shutil.copy2(r.path, img_dst)
        write_label_file(dst / "labels" / f"{Path(r.path).stem}.txt", r)
        if len(r.ignore):
            (dst / "ignore").mkdir(exist_ok=True)
            (dst / "ignore" / f"{Path(r.path).stem}.txt").write_text(
                "".join(f"{x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}\n" for x1, y1, x2, y2 in r.ignore)
            )
    (dst / "classes.txt").write_text("\n".join(names) + "\n")
    return len(records)


@data_group.group("prepare")
def prepare_group() -> None:
    """Prepare public datasets."""


@prepare_group.command("visdrone")
@click.option(
    "--src",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder with VisDrone2019-DET-{train,val,test-dev}/ (images/ + annotations/), or where to download.",
)
@click.option("--dst", type=click.Path(file_okay=False), default="datasets/visdrone", show_default=True)
@click.option("--download", is_flag=True, help="Download the official archives into --src first.")
@click.option("--mirror", default=None, help="Base URL serving VisDrone2019-DET-{train,val,test-dev}.zip.")
def visdrone_cmd(src: str, dst: str, download: bool, mirror: str | None) -> None:
    """Convert the official VisDrone-DET layout to YOLO + split CSVs (drops categories 0 and 11)."""
    import csv

    from rich.progress import Progress

    from engine.data.formats.visdrone import CLASSES, read_visdrone

    src_p, dst_p = Path(src), Path(dst)
    if download:
        if not mirror:
            raise click.UsageError(
                "--download needs --mirror URL: the base URL of the VisDrone2019-DET-*.zip "
                "archives (the official site lists them; no stable URL is hard-coded)"
            )
        from engine.data.download import download as fetch

        src_p.mkdir(parents=True, exist_ok=True)
        for folder in VISDRONE_SPLITS.values():
            url = f"{mirror.rstrip('/')}/{folder}.zip"
            with Progress() as prog:
                task = prog.add_task(f"downloading {folder}.zip", total=None)
                archive = fetch(
                    url,
                    src_p / f"{folder}.zip",
                    progress=lambda d, t, task=task: prog.update(task, completed=d, total=t),
                )
            with zipfile.ZipFile(archive) as z:
                z.extractall(src_p)
    found = {s: src_p / f for s, f in VISDRONE_SPLITS.items() if (src_p / f / "images").is_dir()}
    if not found:
        raise click.UsageError(
            f"{src}: no VisDrone2019-DET-*/images folders (use --download or point --src there)"
        )
    total = {"kept": 0, "ignored": 0, "others": 0}
    for split, folder in found.items():
        records, stats = read_visdrone(folder / "images", folder / "annotations")
        for p in stats.problems[:10]:
            click.echo(f"warning: {p}", err=True)
        write_dataset(records, list(CLASSES), dst_p, "yolo")
        with open(dst_p / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([[f"images/{Path(r.path).name}"] for r in records])
        total["kept"] += stats.kept
        total["ignored"] += stats.ignored_regions
        total["others"] += stats.others_dropped
        click.echo(
            f"{split}: {len(records)} images, {stats.kept} boxes ({stats.ignored_regions} ignored regions "
            f"kept as ignore boxes, {stats.others_dropped} 'others' dropped)"
        )
    click.echo(f"-> {dst_p} (YOLO layout, classes.txt, {', '.join(f'{s}.csv' for s in found)})")


COMMANDS = [data_group]
