"""Train-mode data loading at 640 with mosaic p=1.0, 0 and 2 workers, on real images (VisDrone sample + raccoon),
repeated to a few hundred samples. If `ultralytics` is importable, its YOLODataset with mosaic on the same images
is measured in the same run and the ratio printed (target: ours >= 1.0x theirs).

Run: `python benchmarks/dataloader.py [--samples 300]`. The peer runs in its own interpreter, never a dependency
of ours: point ULTRALYTICS_PY at a python that can `import ultralytics` (a throwaway venv with ultralytics and a
CPU torch).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from _common import save, shared_dir

from engine.config import AugsConfig
from engine.data.dataset import DetectionDataset
from engine.data.formats.visdrone import read_visdrone
from engine.data.formats.voc import read_voc
from engine.data.loader import train_loader


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()
    sd = shared_dir()
    if sd is None:
        raise SystemExit("needs ../shared/data")
    vis, _ = read_visdrone(
        sd / "data/visdrone-det-sample/images", sd / "data/visdrone-det-sample/annotations"
    )
    rac, _, _ = read_voc(sd / "data/raccoon-voc/annotations", sd / "data/raccoon-voc/images")
    base = vis + rac
    records = (base * (args.samples // len(base) + 1))[: args.samples]
    augs = AugsConfig(mosaic={"prob": 1.0}, close_mosaic=0)
    out = {"samples": len(records), "imgsz": 640}
    for workers in (0, 2):
        ds = DetectionDataset(records, ["c"] * 11, (640, 640), False, "train", augs, epochs=10)
        loader = train_loader(ds, 8, workers, seed=0, epoch=0)
        t = time.perf_counter()
        n = sum(len(images) for images, _ in loader)
        rate = n / (time.perf_counter() - t)
        out[f"detcli_workers_{workers}_img_s"] = rate
        print(f"detcli mosaic p=1.0, 640, {workers} workers: {rate:.1f} images/s")
    peer = os.environ.get("ULTRALYTICS_PY", "")
    if (
        not peer
        or not Path(peer).exists()
        or subprocess.run([peer, "-c", "import ultralytics"], capture_output=True).returncode
    ):
        out["ultralytics"] = (
            f"not measured: ULTRALYTICS_PY={peer!r} cannot import ultralytics (`just peer-venv` makes one)"
        )
        print(out["ultralytics"])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            root = _yolo_copy(records, Path(tmp))
            for workers in (0, 2):
                r = subprocess.run(
                    [peer, "-c", PEER, str(root), str(workers)], capture_output=True, text=True
                )
                if r.returncode:
                    out[f"ultralytics_workers_{workers}"] = "failed: " + r.stderr.strip()[-300:]
                    continue
                rate = float(r.stdout.strip().splitlines()[-1])
                out[f"ultralytics_workers_{workers}_img_s"] = rate
                out[f"ratio_workers_{workers}"] = out[f"detcli_workers_{workers}_img_s"] / rate
                print(
                    f"ultralytics YOLODataset mosaic=1.0, 640, {workers} workers: {rate:.1f} images/s -> detcli is "
                    f"{out[f'ratio_workers_{workers}']:.2f}x"
                )
    save("dataloader", out)
    return out


# runs inside the Ultralytics venv: its YOLODataset with mosaic on the same images, same batch and workers
PEER = """
import sys, time, torch
from pathlib import Path
from ultralytics.cfg import get_cfg
from ultralytics.data import YOLODataset
root, workers = Path(sys.argv[1]), int(sys.argv[2])
hyp = get_cfg(overrides={"mosaic": 1.0, "mixup": 0.0, "imgsz": 640})
ds = YOLODataset(img_path=str(root / "images"), imgsz=640, batch_size=8, augment=True, hyp=hyp, rect=False,
                 cache=False, prefix="", data={"names": {i: str(i) for i in range(11)}, "channels": 3}, task="detect")
loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers,
                                     collate_fn=YOLODataset.collate_fn, generator=torch.Generator().manual_seed(0))
t = time.perf_counter()
n = sum(b["img"].shape[0] for b in loader)
print(n / (time.perf_counter() - t))
"""


def _yolo_copy(records, root: Path) -> Path:
    """The same samples as a YOLO root (images linked, one label file each) for the peer."""
    from engine.data.formats.yolo import write_label_file

    (root / "images").mkdir(parents=True)
    for i, rec in enumerate(records):
        dst = root / "images" / f"{i:05d}{Path(rec.path).suffix}"
        dst.symlink_to(Path(rec.path).resolve())
        write_label_file(root / "labels" / f"{i:05d}.txt", rec)
    return root


if __name__ == "__main__":
    main()
