"""The torch Dataset for training and evaluation: read, augment, resize (plain or letterbox), to tensors.

Images come out as uint8 RGB CHW tensors (a quarter of the bytes of float through worker queues and host-to-device
copies); `to_model_input` turns a batch into the model's float input on the target device. Targets come out in the
layout the D-FINE criterion expects: `labels` int64 (N,), `boxes` normalised cxcywh.
"""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from engine.config import AugsConfig, RunConfig
from engine.data.decode import read_image
from engine.data.formats.yolo import UNREADABLE, load_records, read_classes
from engine.data.mosaic import cutout, mixup, mosaic4
from engine.data.records import ImageRecord
from engine.data.tile_pool import Tile, TilePool
from engine.geometry import ResizeMeta, boxes_to_input, plan_resize, resize_image

log = logging.getLogger(__name__)


def photometric(augs: AugsConfig) -> A.Compose | None:
    """Colour, blur, noise and grey: pixels only, so no box bookkeeping (None when every probability is 0)."""
    ops = [
        A.RandomBrightnessContrast(p=augs.brightness_contrast),
        A.RandomGamma(p=augs.gamma),
        A.Blur(blur_limit=(3, 5), p=augs.blur),
        A.GaussNoise(std_range=(0.02, 0.08), p=augs.noise),
        A.ToGray(p=augs.to_gray),
    ]
    return A.Compose([o for o in ops if o.p > 0]) if any(o.p > 0 for o in ops) else None


def flips(augs: AugsConfig) -> A.Compose | None:
    """Flips and rot90 with their boxes (None when every probability is 0). Kept apart from the photometric ops
    because albumentations checks and filters boxes after every transform of a Compose, fired or not."""
    ops = [A.HorizontalFlip(p=augs.hflip), A.VerticalFlip(p=augs.vflip), A.RandomRotate90(p=augs.rot90)]
    if not any(o.p > 0 for o in ops):
        return None
    return A.Compose(
        [o for o in ops if o.p > 0],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_area=1.0, clip=True),
    )


class DetectionDataset(Dataset):
    """Records of one split -> (image uint8 RGB CHW, target dict). Train mode augments."""

    def __init__(
        self,
        records: list[ImageRecord],
        class_names: list[str],
        imgsz: tuple[int, int],
        keep_ratio: bool,
        mode: str = "val",
        augs: AugsConfig | None = None,
        seed: int = 0,
        epochs: int = 1,
    ):
        if mode not in ("train", "val"):
            raise ValueError("mode must be 'train' or 'val'")
        self.records, self.class_names = records, class_names
        self.imgsz, self.keep_ratio, self.mode = tuple(imgsz), keep_ratio, mode
        self.augs = augs or AugsConfig()
        self.seed, self.epochs, self.epoch = seed, epochs, 0
        self.photometric = photometric(self.augs) if mode == "train" else None
        self.flips = flips(self.augs) if mode == "train" else None
        self.skipped: list[str] = []  # corrupt images met so far (per worker process)
        self.unlisted: list[str] = []  # images of the split left out when it was listed (header unreadable)
        self.index = list(range(len(records)))
        self.pool = TilePool(self.augs.mosaic.pool if mode == "train" else 0)
        self.set_epoch(0)

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------------ epoch-dependent policy

    @property
    def mosaic_on(self) -> bool:
        return (
            self.mode == "train"
            and self.augs.mosaic.prob > 0
            and self.epoch < self.epochs - self.augs.close_mosaic
        )

    def set_epoch(self, epoch: int) -> None:
        """Apply the epoch's policy: close_mosaic, ignore_background_epochs (filtering the index, not batches)."""
        self.epoch = epoch
        self.pool.clear()
        skip_bg = self.mode == "train" and epoch < self.augs.ignore_background_epochs
        self.index = [i for i, r in enumerate(self.records) if not (skip_bg and r.is_background)] or list(
            range(len(self.records))
        )

    # ------------------------------------------------------------------ reading

    def _rng(self, item: int) -> np.random.Generator:
        # deterministic per (seed, epoch, item) whatever worker serves it
        return np.random.default_rng([self.seed, self.epoch, item])

    def _read(self, i: int, fit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        rec = self.records[i]
        img = read_image(rec.path, self._reduction(rec, fit))
        if img is None:
            if str(rec.path) not in self.skipped:
                log.warning("skipping unreadable image %s", rec.path)
                self.skipped.append(str(rec.path))
            return None
        boxes = rec.boxes
        if img.shape[0] != rec.height or img.shape[1] != rec.width:  # reduced decode, EXIF or a changed file
            boxes = boxes * np.array([img.shape[1] / rec.width, img.shape[0] / rec.height] * 2, np.float32)
        return img, boxes.copy(), rec.labels.copy()

    def _reduction(self, rec: ImageRecord, fit: int | None = None) -> int:
        """Training decodes big JPEGs at 1/2, 1/4 or 1/8 scale (in the DCT domain, several times faster) when
        the result still covers what the image is resized to: the input size, or with `fit` a mosaic tile whose
        long side is `fit`. Evaluation always decodes at full size, like inference."""
        if self.mode != "train" or Path(rec.path).suffix.lower() not in (".jpg", ".jpeg"):
            return 1
        ratio = max(rec.width, rec.height) / fit if fit else min(rec.width, rec.height) / max(self.imgsz)
        return next((factor for factor in (8, 4, 2) if ratio >= factor), 1)

    def _read_any(self, i: int, rng: np.random.Generator, fit: int | None = None):
        """Read record i, or another one if it is corrupt (reported once), so one bad file never stops training."""
        for _ in range(len(self.records)):
            got = self._read(i, fit)
            if got is not None:
                return i, got
            i = int(rng.integers(len(self.records)))
        raise RuntimeError("no readable image in the dataset")

    def _tile(self, i: int, rng: np.random.Generator) -> tuple[int, Tile]:
        """Record i fitted into a mosaic tile (long side = the input's long side), from the pool when it is there."""
        tile = self.pool.get(i)
        if tile is not None:
            return i, tile
        s = max(self.imgsz)
        i, (img, boxes, labels) = self._read_any(i, rng, fit=s)
        h, w = img.shape[:2]
        r = s / max(h, w)
        if r != 1:
            img = cv2.resize(
                img, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_LINEAR
            )
            boxes = boxes * np.float32(r)
        self.pool.add(i, (img, boxes, labels))
        return i, (img, boxes, labels)

    # ------------------------------------------------------------------ item

    def __getitem__(self, item: int):
        rng = self._rng(item)
        if self.mode == "train" and self.mosaic_on and rng.random() < self.augs.mosaic.prob:
            i, tile = self._tile(self.index[item], rng)
            img, boxes, labels = self._mosaic(tile, i, rng)
            if self.augs.mixup.prob and rng.random() < self.augs.mixup.prob:
                j = (self.pool.choose(rng, 1, exclude=i) or [int(rng.integers(len(self.records)))])[0]
                j, tile2 = self._tile(j, rng)
                img2, b2, l2 = self._mosaic(tile2, j, rng)
                img, boxes, labels = mixup(img, boxes, labels, img2, b2, l2, rng, self.augs.mixup.alpha)
            img, boxes, labels = self._augment(img, boxes, labels, rng)
        elif self.mode == "train":
            i, (img, boxes, labels) = self._read_any(self.index[item], rng)
            img, boxes, labels = self._augment(img, boxes, labels, rng)
        else:
            # evaluation scores the images it can read, each once: no stand-in for an unreadable one (`collate`
            # drops the None, the evaluator reports the image as not scored)
            i = self.index[item]
            got = self._read(i)
            if got is None:
                return None
            img, boxes, labels = got
        meta = plan_resize(img.shape[:2], self.imgsz, self.keep_ratio)
        img = resize_image(img, meta)
        boxes = boxes_to_input(boxes, meta)
        return self._to_tensors(img, boxes, labels, i, meta)

    def _mosaic(self, first: Tile, first_index: int, rng: np.random.Generator):
        """Mosaic of `first` and three partners: from the pool of recently decoded tiles, topped up with random
        records (decoded now) while the pool is still small, or always when the pool is disabled."""
        picks = self.pool.choose(rng, 3, exclude=first_index)
        picks += [int(rng.integers(len(self.records))) for _ in range(3 - len(picks))]
        parts = [first] + [self._tile(j, rng)[1] for j in picks]
        m = self.augs.mosaic
        return mosaic4(
            [p[0] for p in parts],
            [p[1] for p in parts],
            [p[2] for p in parts],
            max(self.imgsz),
            rng,
            m.scale,
            m.degrees,
            m.translate,
            m.shear,
            self.augs.min_box_px,
        )

    def _augment(self, img, boxes, labels, rng: np.random.Generator):
        """Cutout, then the albumentations pipeline (colour, blur, noise, flips, rot90)."""
        if self.augs.cutout.prob and rng.random() < self.augs.cutout.prob:
            img, boxes, labels = cutout(
                img, boxes, labels, rng, self.augs.cutout.holes, self.augs.cutout.size
            )
        # albumentations draws from numpy's and python's global RNGs: seed them from our per-item stream
        seeds = rng.integers(2**31 - 1, size=2)
        if self.photometric is not None:
            self.photometric.set_random_seed(int(seeds[0]))
            img = self.photometric(image=img)["image"]
        if self.flips is None:
            return img, boxes, labels
        self.flips.set_random_seed(int(seeds[1]))
        h, w = img.shape[:2]
        clipped = boxes.copy()
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, w)
        clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, h)
        ok = (clipped[:, 2] - clipped[:, 0] > 0.5) & (clipped[:, 3] - clipped[:, 1] > 0.5)
        out = self.flips(image=img, bboxes=clipped[ok], labels=labels[ok])
        b = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        lab = np.asarray(out["labels"], np.int64).reshape(-1)
        return out["image"], b, lab

    def _to_tensors(self, img: np.ndarray, boxes: np.ndarray, labels: np.ndarray, i: int, meta: ResizeMeta):
        h, w = img.shape[:2]
        if len(boxes):
            boxes = boxes.copy()
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
            keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
            boxes, labels = boxes[keep], labels[keep]
        cxcywh = (
            np.stack(
                [
                    (boxes[:, 0] + boxes[:, 2]) / 2 / w,
                    (boxes[:, 1] + boxes[:, 3]) / 2 / h,
                    (boxes[:, 2] - boxes[:, 0]) / w,
                    (boxes[:, 3] - boxes[:, 1]) / h,
                ],
                1,
            )
            if len(boxes)
            else np.zeros((0, 4), np.float32)
        )
        image = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)))
        target = {
            "labels": torch.from_numpy(labels.astype(np.int64)),
            "boxes": torch.from_numpy(cxcywh.astype(np.float32)),
            "image_id": i,
            "orig_size": (self.records[i].height, self.records[i].width),
            "meta": meta,
        }
        return image, target


def collate(batch: list) -> tuple[torch.Tensor, list[dict]]:
    """Stack images (all the same input size) and keep targets as a list of dicts.

    In a loader worker every tensor is handed to the main process through its own shared-memory segment, so the
    images are stacked straight into shared memory (as torch's default collate does) and the targets' labels and
    boxes are views into one tensor each: three segments per batch instead of two per image plus one.
    An evaluation sample that could not be read (None) is left out.
    """
    batch = [b for b in batch if b is not None]  # unreadable evaluation images
    if not batch:
        return torch.empty(0, dtype=torch.uint8), []
    images = [b[0] for b in batch]
    targets = [dict(b[1]) for b in batch]
    out = None
    if get_worker_info() is not None:
        storage = images[0].untyped_storage()._new_shared(sum(x.nbytes for x in images))
        out = images[0].new(storage).resize_(len(images), *images[0].shape)
    stacked = torch.stack(images, out=out)
    counts = [len(t["labels"]) for t in targets]
    for key in ("labels", "boxes"):
        for t, view in zip(targets, torch.cat([t[key] for t in targets]).split(counts), strict=True):
            t[key] = view
    return stacked, targets


def to_model_input(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A uint8 batch from the loader -> float in [0, 1] on `device` (converted after the copy: 4x fewer bytes)."""
    return images.to(device, non_blocking=True).float().div_(255.0)


def build_dataset(cfg: RunConfig, split: str, mode: str) -> DetectionDataset:
    """The Dataset of a split ('train', 'val', 'test') of the configured YOLO root."""
    if cfg.data.root is None:
        raise ValueError("data.root is not set: point it at a YOLO dataset (data.root=PATH)")
    root = Path(cfg.data.root)
    names = read_classes(root, cfg.data.classes)
    split_name = {"train": cfg.data.train_split, "val": cfg.data.val_split, "test": cfg.data.test_split}[
        split
    ]
    records, problems = load_records(root, split_name, names)
    for p in problems[:20]:
        log.warning("%s", p)
    if len(problems) > 20:
        log.warning("... and %d more label problems: run `detcli data check %s`", len(problems) - 20, root)
    if not records:
        raise ValueError(f"{root}: split '{split_name}' has no readable images")
    ds = DetectionDataset(
        records,
        names,
        cfg.data.imgsz,
        cfg.data.keep_ratio,
        mode,
        cfg.augs,
        seed=cfg.train.seed,
        epochs=cfg.train.epochs,
    )
    ds.unlisted = [str(p.path) for p in problems if p.line is None and p.message.startswith(UNREADABLE)]
    return ds
