"""The article's cut-padding trick: a letterbox model run at the padding-free size finds the same boxes."""

import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from detcli.cli import cli
from engine.infer import Predictor
from engine.infer.backends import Backend


class RedBoxProbe(Backend):
    """Test-only, translation-tolerant 'graph': one detection around the pure-red pixels, in input pixels.

    A real detector is only roughly translation-invariant; this probe is exact, so any mismatch between the padded
    and the cut run comes from the shared pre/post-processing (the thing under test).
    """

    name = "probe"
    dynamic = True

    def __init__(self):
        self.shapes = []

    def run(self, images, sizes):
        self.shapes.append(images.shape[2:])
        boxes = []
        for img in images:
            ys, xs = np.nonzero((img[0] > 0.8) & (img[1] < 0.2) & (img[2] < 0.2))
            boxes.append([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])
        n = len(images)
        return np.zeros((n, 1), np.int64), np.asarray(boxes, np.float32), np.full((n, 1), 0.9, np.float32)


@pytest.fixture
def frame(data_dir):
    """A wide real VisDrone frame with a red rectangle painted on it (the object to find)."""
    img = cv2.imread(str(sorted((data_dir / "visdrone-det-mini" / "images").glob("*.jpg"))[0]))
    h, w = img.shape[:2]
    assert w > h  # letterboxing pads it top and bottom
    img[h // 3 : h // 3 + 90, w // 2 : w // 2 + 140] = (0, 0, 255)
    return img, (w // 2, h // 3, w // 2 + 140, h // 3 + 90)


def test_cut_run_matches_padded_run_in_original_pixels(frame):
    img, truth = frame
    meta = {"imgsz": [640, 640], "keep_ratio": True, "class_names": ["red"]}
    padded_probe, cut_probe = RedBoxProbe(), RedBoxProbe()
    padded = Predictor(padded_probe, meta, conf=0.5).predict(img)
    cut = Predictor(cut_probe, meta, conf=0.5, cut_padding=True).predict(img)
    assert padded_probe.shapes[0] == (640, 640)
    h, w = cut_probe.shapes[0]
    assert w == 640 and h < 640 and h % 32 == 0  # the grey bands are gone: fewer pixels to run
    assert np.abs(cut.boxes - padded.boxes).max() <= 2.0
    assert np.abs(cut.boxes[0] - np.asarray(truth, np.float32)).max() <= 2 * img.shape[1] / 640 + 1
    # a batch goes through the same processing
    batch = Predictor(RedBoxProbe(), meta, conf=0.5).predict_batch([img, img[:, ::-1].copy()])
    assert np.abs(batch[0].boxes - padded.boxes).max() <= 1e-3
    flipped = img.shape[1] - batch[1].boxes[0, [2, 0]]
    assert np.abs(flipped - padded.boxes[0, [0, 2]]).max() <= 2.0


def test_cut_padding_refuses_a_plain_resize_model(frame):
    with pytest.raises(ValueError, match="letterbox"):
        Predictor(RedBoxProbe(), {"imgsz": [640, 640], "keep_ratio": False}, cut_padding=True)


@pytest.mark.slow
def test_bench_dynamic_reports_the_latency_drop(data_dir, runs_dir, tmp_path):
    """`detcli bench --dynamic` times the letterbox and the cut run of one model and stores both rows."""
    from engine.models import build_model, save_checkpoint
    from engine.runs import RunStore

    m = build_model("dfine-n", num_classes=2, eval_spatial_size=(320, 320))
    w = save_checkpoint(
        tmp_path / "n.pt", m, class_names=["a", "b"], imgsz=(320, 320), extra={"keep_ratio": True}
    )
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for p in sorted((data_dir / "visdrone-det-mini" / "images").glob("*.jpg"))[:2]:
        shutil.copy(p, imgs)
    args = ["--runs-dir", str(runs_dir), "bench", str(w), "--device", "cpu", "--backend", "torch"]
    r = CliRunner().invoke(cli, [*args, "--images", str(imgs), "--runs", "4", "--warmup", "1", "--dynamic"])
    assert r.exit_code == 0, r.output
    assert "cut padding on torch" in r.output and "latency)" in r.output
    rows = RunStore.open(runs_dir).benchmarks()
    assert [row["breakdown"]["cut_padding"] for row in rows] == [False, True]
    assert rows[1]["imgsz"] == "320x320 cut" and rows[1]["latency_mean"] > 0
