"""Mosaic partners from the pool of recently decoded tiles: one decode per sample, boxes still on their objects
after reduced JPEG decoding, the pool emptied per epoch (resume-exact), batches collated into few segments."""

import cv2
import numpy as np
import pytest
import torch

import engine.data.dataset as dataset_module
from engine.config import AugsConfig
from engine.data.dataset import DetectionDataset
from engine.data.formats.yolo import load_records
from engine.data.loader import train_loader
from engine.data.records import ImageRecord
from engine.data.synth import CLASSES, generate

PLAIN = dict(brightness_contrast=0, gamma=0, blur=0, noise=0, to_gray=0, hflip=0, close_mosaic=0)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("pool") / "ds", images=40, size=128, seed=4)
    return load_records(root, "train.csv", list(CLASSES))[0]


def _count_decodes(monkeypatch) -> list:
    calls = []
    real = dataset_module.read_image

    def counting(path, *args):
        calls.append(path)
        return real(path, *args)

    monkeypatch.setattr(dataset_module, "read_image", counting)
    return calls


@pytest.mark.parametrize(("pool", "per_sample"), [(64, 1), (0, 4)])
def test_decodes_per_mosaic(records, monkeypatch, pool, per_sample):
    ds = DetectionDataset(
        records,
        list(CLASSES),
        (128, 128),
        False,
        "train",
        AugsConfig(mosaic={"prob": 1.0, "pool": pool}, **PLAIN),
    )
    calls = _count_decodes(monkeypatch)
    n = len(ds)
    for i in range(n):
        ds[i]
    if pool:  # three extra decodes at most while the pool is still empty
        assert n <= len(calls) <= n + 3
    else:
        assert len(calls) == 4 * n


def test_pool_is_emptied_per_epoch_so_resume_matches(records):
    augs = AugsConfig(mosaic={"prob": 1.0}, close_mosaic=0)
    a = DetectionDataset(records, list(CLASSES), (128, 128), False, "train", augs, epochs=3)
    for i in range(len(a)):  # epoch 0 fills the pool
        a[i]
    a.set_epoch(1)
    b = DetectionDataset(records, list(CLASSES), (128, 128), False, "train", augs, epochs=3)
    b.set_epoch(1)  # a run resumed at epoch 1 starts with an empty pool
    for i in range(6):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"])


def test_boxes_stay_on_objects_after_reduced_decode(tmp_path):
    """A 2000x1500 JPEG is decoded at 1/2 scale for a 256 tile: every box of the mosaic still frames white."""
    img = np.full((1500, 2000, 3), 30, np.uint8)
    boxes = np.array([[200, 300, 700, 800], [1200, 200, 1800, 1000], [900, 1100, 1500, 1400]], np.float32)
    for x1, y1, x2, y2 in boxes.astype(int):
        img[y1:y2, x1:x2] = 255
    cv2.imwrite(str(tmp_path / "big.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    rec = ImageRecord(tmp_path / "big.jpg", 2000, 1500, boxes, [0, 0, 0])
    augs = AugsConfig(mosaic={"prob": 1.0, "degrees": 0, "shear": 0}, **PLAIN)
    ds = DetectionDataset([rec], ["a"], (256, 256), False, "train", augs)
    assert ds._reduction(rec, fit=256) == 4
    seen = 0
    for epoch in range(8):
        ds.set_epoch(epoch)
        tensor, t = ds[0]
        out = tensor.permute(1, 2, 0).numpy()
        for cx, cy, w, h in t["boxes"].numpy() * 256:
            if w < 12 or h < 12:
                continue
            # the box's inner part is the white object; a box off by a few pixels would take in the background
            x1, y1, x2, y2 = (
                int(v) for v in (cx - w / 2 + 2, cy - h / 2 + 2, cx + w / 2 - 2, cy + h / 2 - 2)
            )
            assert out[y1:y2, x1:x2].min() > 200
            seen += 1
    assert seen >= 8


def test_loader_workers_collate_uint8_and_views(records):
    ds = DetectionDataset(
        records, list(CLASSES), (128, 128), False, "train", AugsConfig(mosaic={"prob": 1.0})
    )
    for workers in (0, 2):
        n = 0
        for images, targets in train_loader(ds, 4, workers, seed=0, epoch=0):
            assert images.dtype == torch.uint8 and images.shape[1:] == (3, 128, 128)
            for t in targets:
                assert len(t["labels"]) == len(t["boxes"]) and t["boxes"].shape[-1] == 4
                assert ((t["boxes"] >= 0) & (t["boxes"] <= 1)).all()
            n += len(images)
        assert n == len(ds) // 4 * 4
