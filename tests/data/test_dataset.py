"""Synthetic data, the YOLO reader and the training Dataset (boxes stay on their objects through every transform)."""

import cv2
import numpy as np
import pytest
import torch

from engine.config import AugsConfig, load_config
from engine.data.dataset import DetectionDataset, build_dataset
from engine.data.formats.yolo import load_records, parse_label_file, read_classes
from engine.data.mosaic import mosaic4
from engine.data.records import ImageRecord
from engine.data.synth import CLASSES, generate


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "ds", images=40, size=128, seed=3)


def test_synth_layout_and_determinism(synth_root, tmp_path):
    assert read_classes(synth_root) == list(CLASSES)
    for split in ("train", "val", "test"):
        assert (synth_root / f"{split}.csv").is_file()
    again = generate(tmp_path / "again", images=40, size=128, seed=3)
    a = sorted(p.read_text() for p in (synth_root / "labels").glob("*.txt"))
    b = sorted(p.read_text() for p in (again / "labels").glob("*.txt"))
    assert a == b
    records, problems = load_records(synth_root, "train.csv", list(CLASSES))
    assert problems == [] and len(records) == 28


def test_label_problems_name_file_and_line(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("0 0.5 0.5 0.2 0.2\n99 0.5 0.5 0.1 0.1\n0 1.5 0.5 0.1 0.1\n0 0.5 0.5 0 0.1\nbad\n")
    boxes, labels, problems = parse_label_file(f, 100, 100, num_classes=5)
    assert len(boxes) == 1 and labels.tolist() == [0]
    assert [p.line for p in problems] == [2, 3, 4, 5]
    assert "class id 99" in str(problems[0]) and f"{f}:2" in str(problems[0])


def test_targets_are_normalised_cxcywh_in_range(synth_root):
    cfg = load_config("demo", overrides=[f"data.root={synth_root}", "data.imgsz=128", "augs.mosaic.prob=1.0"])
    ds = build_dataset(cfg, "train", "train")
    for i in range(len(ds)):
        img, t = ds[i]
        assert img.shape == (3, 128, 128) and img.dtype == torch.uint8
        b = t["boxes"]
        assert t["labels"].dtype.is_floating_point is False and len(b) == len(t["labels"])
        if len(b):
            assert (b >= 0).all() and (b <= 1).all() and (b[:, 2:] > 0).all()


def test_dataset_is_deterministic_per_seed(synth_root):
    cfg = load_config("demo", overrides=[f"data.root={synth_root}", "data.imgsz=128", "augs.mosaic.prob=1.0"])
    a, b = build_dataset(cfg, "train", "train"), build_dataset(cfg, "train", "train")
    for i in (0, 5):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert (ia == ib).all() and (ta["boxes"] == tb["boxes"]).all()


def _rect_image(size=200, box=(50, 60, 120, 110)):
    img = np.full((size, size, 3), 40, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return img, np.array([box], np.float32)


def _mask_box(img):
    ys, xs = np.nonzero(img[..., 0] > 180)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32) if len(xs) else None


def _iou(a, b):
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.clip(rb - lt, 0, None).prod()
    return inter / ((a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter)


def test_photo_stored_on_its_side_is_labelled_upright(tmp_path):
    """A phone photo stored landscape with EXIF orientation 6 is shown (and read) portrait; YOLO labels refer to
    the upright picture, so the record has the upright size and the box stays on the object."""
    from PIL import Image

    upright, box = _rect_image(200, (30, 40, 90, 170))
    upright = upright[:, :150]  # 150 wide, 200 tall
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # what the camera wrote: 200 wide, 150 tall
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored[:, :, ::-1]).save(root / "images" / "p.jpg", quality=95, exif=exif.tobytes())
    x1, y1, x2, y2 = box[0]
    (root / "labels" / "p.txt").write_text(
        f"0 {(x1 + x2) / 2 / 150} {(y1 + y2) / 2 / 200} {(x2 - x1) / 150} {(y2 - y1) / 200}\n"
    )
    (root / "classes.txt").write_text("thing\n")
    (root / "val.csv").write_text("images/p.jpg\n")
    rec = load_records(root, "val.csv", ["thing"])[0][0]
    assert (rec.width, rec.height) == (150, 200)
    np.testing.assert_allclose(rec.boxes[0], box[0], atol=0.5)
    ds = DetectionDataset([rec], ["thing"], (200, 150), False, "val")
    img, t = ds[0]
    cx, cy, w, h = t["boxes"][0].numpy() * [150, 200, 150, 200]
    found = _mask_box(img.permute(1, 2, 0).numpy())
    assert _iou(found, np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])) > 0.9


@pytest.mark.parametrize("seed", range(12))
def test_box_follows_object_through_mosaic_and_affine(seed):
    rng = np.random.default_rng(seed)
    img, box = _rect_image()
    blank = np.full((200, 200, 3), 40, np.uint8)
    empty = np.zeros((0, 4), np.float32)
    out, boxes, _labels = mosaic4(
        [img, blank, blank, blank],
        [box, empty, empty, empty],
        [np.array([0]), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)],
        200,
        rng,
        (0.6, 1.4),
        10.0,
        0.2,
        2.0,
        2.0,
    )
    truth = _mask_box(out)
    if truth is None or not len(boxes):
        return  # moved off the canvas entirely
    b = boxes[0]
    inside = b[0] > 1 and b[1] > 1 and b[2] < 199 and b[3] < 199
    if inside:  # a box that is not clipped is the bounding rectangle of the moved object
        assert _iou(truth, b) >= 0.9


@pytest.mark.parametrize("flag", ["hflip", "vflip", "rot90"])
def test_box_follows_object_through_flips(flag):
    img, box = _rect_image()
    augs = AugsConfig(
        **{flag: 1.0, "hflip": 1.0 if flag == "hflip" else 0.0},
        brightness_contrast=0,
        gamma=0,
        blur=0,
        noise=0,
        to_gray=0,
        mosaic={"prob": 0},
    )
    rec = ImageRecord("x.png", 200, 200, box, [0])
    ds = DetectionDataset([rec], ["a"], (200, 200), False, "train", augs)
    out, boxes, _ = ds._augment(img, box.copy(), np.array([0]), np.random.default_rng(0))
    assert _iou(_mask_box(out), boxes[0]) >= 0.9


@pytest.mark.parametrize("keep_ratio", [True, False])
def test_box_follows_object_through_resize(tmp_path, keep_ratio):
    img, box = _rect_image(size=300)
    img = cv2.resize(img, (300, 180), interpolation=cv2.INTER_NEAREST)
    box = box * np.array([1, 0.6, 1, 0.6], np.float32)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    ds = DetectionDataset(
        [ImageRecord(tmp_path / "a.png", 300, 180, box, [0])], ["a"], (128, 128), keep_ratio
    )
    tensor, t = ds[0]
    out = np.ascontiguousarray(tensor.permute(1, 2, 0).numpy()[:, :, ::-1])
    cx, cy, w, h = t["boxes"][0].numpy() * 128
    assert _iou(_mask_box(out), np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])) >= 0.9


def test_corrupt_image_is_skipped_not_fatal(tmp_path, synth_root):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    good = load_records(synth_root, "train.csv", list(CLASSES))[0][0]
    ds = DetectionDataset(
        [ImageRecord(bad, 10, 10), good],
        list(CLASSES),
        (128, 128),
        False,
        "train",
        AugsConfig(mosaic={"prob": 0}),
    )
    img, _ = ds[0]
    assert img.shape == (3, 128, 128) and ds.skipped == [str(bad)]


def test_unreadable_image_is_left_out_of_evaluation_not_replaced(tmp_path, synth_root):
    """Training stands another image in for a corrupt one; evaluation must not (that image would be scored
    twice): it scores the others and names the one it could not read."""
    from engine.config import EvalConfig
    from engine.data.dataset import collate
    from engine.models import build_model
    from engine.train.evaluate import evaluate_model

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    good = load_records(synth_root, "val.csv", list(CLASSES))[0][:2]
    ds = DetectionDataset(
        [good[0], ImageRecord(bad, 10, 10), good[1]], list(CLASSES), (128, 128), False, "val"
    )
    assert ds[1] is None and ds.skipped == [str(bad)]
    images, targets = collate([ds[0], ds[1], ds[2]])
    assert images.shape == (2, 3, 128, 128) and [t["image_id"] for t in targets] == [0, 2]
    images, targets = collate([ds[1]])
    assert len(images) == 0 and targets == []
    torch.manual_seed(0)
    model = build_model("dfine-n", num_classes=len(CLASSES), num_queries=30, eval_spatial_size=(128, 128))
    done = []
    for batch in (1, 2):
        result = evaluate_model(
            model, ds, EvalConfig(), batch=batch, progress=lambda d, t: done.append((d, t))
        )
        assert result.skipped == [str(bad)]
        assert sorted(p["image_id"] for p in result.per_image) == sorted(str(r.path) for r in good)
    assert done[-1] == (3, 3)


def test_ignore_background_filters_index_not_batches(synth_root):
    cfg = load_config("demo", overrides=[f"data.root={synth_root}", "augs.ignore_background_epochs=1"])
    ds = build_dataset(cfg, "train", "train")
    n_bg = sum(r.is_background for r in ds.records)
    ds.set_epoch(0)
    assert len(ds) == len(ds.records) - n_bg
    ds.set_epoch(1)
    assert len(ds) == len(ds.records)
