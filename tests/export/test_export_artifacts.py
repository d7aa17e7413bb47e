"""Export artifacts: metadata inside, batch > 1 through a graph traced with batch 1, predict labels, clear errors."""

import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from detections_match import assert_detections_match

from detcli.cli import cli
from engine.export.metadata import KEY
from engine.export.run_export import export_checkpoint
from engine.export.tensorrt import TensorRTUnavailable
from engine.infer import Predictor
from engine.models import build_model, save_checkpoint


def _checkpoint(tmp_path, name="dfine-n", classes=3, imgsz=(320, 320), seed=0):
    """A small random model whose class scores are spread out (random biases), saved as a detcli checkpoint."""
    torch.manual_seed(seed)
    m = build_model(name, num_classes=classes, eval_spatial_size=imgsz)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "score_head" in n and n.endswith("bias"):
                p.add_(torch.randn_like(p) * 2.0)
    return save_checkpoint(
        tmp_path / f"{name}.pt",
        m,
        class_names=[f"k{i}" for i in range(classes)],
        imgsz=imgsz,
        extra={"keep_ratio": True, "best_conf": 0.25, "run_name": None},
    )


@pytest.fixture(scope="module")
def frames(data_dir):
    paths = sorted((data_dir / "raccoon-voc").rglob("*.jpg"))[:2]
    assert len(paths) == 2
    return [cv2.imread(str(p)) for p in paths]


@pytest.mark.slow
def test_onnx_batch_of_two_metadata_and_predict_labels(tmp_path, frames):
    """Traced with a batch of 1, the ONNX graph must still run a batch of 2 and give the per-image answers."""
    import onnx

    w = _checkpoint(tmp_path)
    path = export_checkpoint(w, "onnx", tmp_path).path
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    meta = json.loads(props[KEY])
    assert meta["class_names"] == ["k0", "k1", "k2"] and meta["imgsz"] == [320, 320]
    assert meta["keep_ratio"] and meta["best_conf"] == 0.25 and meta["source"] == str(w)
    assert not (path.parent / (path.name + ".json")).exists()  # inside the file, not beside it
    pred = Predictor.from_path(path, conf=0.05)
    batch = pred.predict_batch(frames)
    assert len(batch) == 2
    for img, det in zip(frames, batch, strict=True):
        assert_detections_match(pred.predict(img), det, px=0.5, score=1e-4)
    # different frames, different answers: the batch is not one image repeated
    assert not np.allclose(batch[0].boxes[:5], batch[1].boxes[:5])

    # the same export pre-annotates a folder: YOLO lines (class cx cy w h, normalised) of exactly these detections
    src = tmp_path / "new"
    src.mkdir()
    for i, img in enumerate(frames):
        cv2.imwrite(str(src / f"f{i}.png"), img)
    (src / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff cut off mid-download")
    out = tmp_path / "pred"
    r = CliRunner().invoke(
        cli, ["predict", str(path), str(src), "--out", str(out), "--conf", "0.05", "--save-images"]
    )
    assert r.exit_code == 0, r.output
    assert "skipping unreadable image" in r.output and "zz-broken.jpg" in r.output
    assert "2 images" in r.output and "1 unreadable skipped" in r.output
    assert not (out / "labels" / "zz-broken.txt").exists()
    assert (out / "classes.txt").read_text().split() == ["k0", "k1", "k2"]
    for i, (img, det) in enumerate(zip(frames, batch, strict=True)):
        rows = np.loadtxt(out / "labels" / f"f{i}.txt", ndmin=2)
        h, w = img.shape[:2]
        assert len(rows) == len(det) and (rows[:, 1:] >= 0).all() and (rows[:, 1:] <= 1).all()
        b = det.boxes
        want = np.stack(
            [
                det.labels,
                (b[:, 0] + b[:, 2]) / 2 / w,
                (b[:, 1] + b[:, 3]) / 2 / h,
                (b[:, 2] - b[:, 0]) / w,
                (b[:, 3] - b[:, 1]) / h,
            ],
            1,
        )
        # near-tied scores may order differently between runs: every row has its twin in the file
        assert len(rows) == len(want)
        assert np.abs(want[:, None] - rows[None]).max(2).min(1).max() < 1e-3
        assert cv2.imread(str(out / "images" / f"f{i}.png")).shape == img.shape


def test_int8_without_nncf_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_nncf(name, *a, **k):
        if name == "nncf":
            raise ImportError("No module named 'nncf'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_nncf)
    w = _checkpoint(tmp_path)
    with pytest.raises(RuntimeError, match=r"pip install 'detcli\[int8\]'"):
        export_checkpoint(w, "openvino", tmp_path, int8=True, calibration=[tmp_path / "x.jpg"])
    assert not list(tmp_path.glob("*.xml"))


def test_tensorrt_without_gpu_says_what_is_missing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    w = _checkpoint(tmp_path)
    with pytest.raises(TensorRTUnavailable, match="CUDA"):
        export_checkpoint(w, "tensorrt", tmp_path)
    with pytest.raises(ValueError, match="ONNX export is FP32"):
        export_checkpoint(w, "onnx", tmp_path, half=True)
