"""Every backend gives the same detections through the one shared pre/post-processing."""

import cv2
import pytest
import torch
from detections_match import assert_detections_match

from engine.export.metadata import read_metadata
from engine.export.run_export import export_checkpoint
from engine.infer import Predictor
from engine.models import build_model, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def weights(parity_dir, tmp_path_factory):
    """dfine-n with the official perturbed weights (non-degenerate scores), as a detcli checkpoint at 320."""
    m = build_model("dfine-n", eval_spatial_size=(320, 320))
    load_checkpoint(m, parity_dir / "dfine_n_perturbed.pth")
    d = tmp_path_factory.mktemp("w")
    return save_checkpoint(
        d / "n.pt",
        m,
        class_names=[f"c{i}" for i in range(80)],
        imgsz=(320, 320),
        extra={"keep_ratio": True, "best_conf": 0.3, "run_name": None},
    )


@pytest.fixture(scope="module")
def images(data_dir):
    paths = sorted((data_dir / "visdrone-det-mini" / "images").glob("*.jpg"))[:3]
    return [cv2.imread(str(p)) for p in paths]


@pytest.mark.slow
def test_onnx_and_openvino_match_torch(weights, images, tmp_path):
    onnx = export_checkpoint(weights, "onnx", tmp_path).path
    ov32 = export_checkpoint(weights, "openvino", tmp_path).path
    ov16 = export_checkpoint(weights, "openvino", tmp_path, half=True).path
    meta = read_metadata(onnx)
    assert meta["class_names"][:2] == ["c0", "c1"] and meta["imgsz"] == [320, 320] and meta["keep_ratio"]
    assert meta["best_conf"] == 0.3 and read_metadata(ov32)["precision"] == "fp32"
    ref = Predictor.from_path(weights, conf=0.2)
    preds = {p: Predictor.from_path(p, conf=0.2) for p in (onnx, ov32, ov16)}
    for img in images:
        want = ref.predict(img)
        assert len(want) > 5
        assert_detections_match(want, preds[onnx].predict(img, conf=0.1))
        assert_detections_match(want, preds[ov32].predict(img, conf=0.1))
        # FP16 weights: boxes within 3 px and scores within 2e-2 of FP32 (stated bound)
        assert_detections_match(want, preds[ov16].predict(img, conf=0.05), px=3.0, score=2e-2, top=10)
    # single images run through OpenVINO's batch-1 copy, batches through the free-batch graph: same detections
    singles = [preds[ov32].predict(img, conf=0.1) for img in images]
    for want, got in zip(singles, preds[ov32].predict_batch(images, conf=0.1), strict=True):
        assert_detections_match(want, got)


@pytest.mark.slow
def test_cut_padding_and_non_square_export(weights, images, tmp_path):
    """The cut-padding trick: PyTorch runs any size; an export at the cut size does the same with a fixed graph."""
    from engine.infer.processing import preprocess

    img = images[0]  # a wide frame: letterboxing pads it top and bottom
    cut = Predictor.from_path(weights, conf=0.2, cut_padding=True)
    blob, _meta = preprocess(img, (320, 320), True, cut_padding=True)
    assert blob.shape[2] < 320 and blob.shape[2] % 32 == 0 and blob.shape[3] == 320
    det = cut.predict(img)
    assert len(det) and det.boxes.min() >= 0 and det.boxes[:, [0, 2]].max() <= img.shape[1]
    # a graph exported at the cut size sees exactly the cut input: same detections as PyTorch on it
    h = blob.shape[2]
    onnx = Predictor.from_path(export_checkpoint(weights, "onnx", tmp_path, imgsz=(h, 320)).path, conf=0.1)
    assert onnx.imgsz == (h, 320)
    assert_detections_match(det, onnx.predict(img))
    with pytest.raises(ValueError, match="detcli export --dynamic"):
        Predictor.from_path(export_checkpoint(weights, "onnx", tmp_path / "static").path, cut_padding=True)
    # an export with free H/W runs the cut size itself, and agrees with PyTorch on it
    for fmt in ("onnx", "openvino"):
        dyn = Predictor.from_path(
            export_checkpoint(weights, fmt, tmp_path / fmt, dynamic=True).path, conf=0.1, cut_padding=True
        )
        assert_detections_match(det, dyn.predict(img))


def test_predictor_rejects_unknown_files(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model type"):
        Predictor.from_path(f)
    with pytest.raises(FileNotFoundError):
        Predictor.from_path(tmp_path / "missing.onnx")


@pytest.mark.slow
def test_every_size_exports_to_onnx(tmp_path):
    import onnx

    for size in "nsmlx":
        m = build_model(f"dfine-{size}", num_classes=5, eval_spatial_size=(256, 256))
        w = save_checkpoint(tmp_path / f"{size}.pt", m, class_names=list("abcde"), imgsz=(256, 256))
        path = export_checkpoint(w, "onnx", tmp_path).path
        model = onnx.load(str(path))
        assert model.opset_import[0].version >= 17
        assert [o.name for o in model.graph.output] == ["labels", "boxes", "scores"]
        (tmp_path / f"{size}.pt").unlink()


@pytest.mark.slow
def test_dfine_s_backends_agree(images, tmp_path):
    torch.manual_seed(1)
    m = build_model("dfine-s", num_classes=10, eval_spatial_size=(320, 320))
    with torch.no_grad():  # random init ties every score: perturb just enough to break the ties
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    w = save_checkpoint(
        tmp_path / "s.pt",
        m,
        class_names=[str(i) for i in range(10)],
        imgsz=(320, 320),
        extra={"keep_ratio": True},
    )
    ref = Predictor.from_path(w, conf=0.0)
    others = [
        Predictor.from_path(export_checkpoint(w, fmt, tmp_path).path, conf=0.0)
        for fmt in ("onnx", "openvino")
    ]
    for img in images[:2]:
        want = ref.predict(img)
        assert len(want) > 3
        for p in others:
            assert_detections_match(want, p.predict(img))


def test_predict_files_in_order_and_skips_unreadable(weights, data_dir, tmp_path):
    """Reading ahead on a second thread or not changes nothing: same detections as one image at a time, in
    input order, an unreadable file reported in its place; a consumer that stops early leaves nothing running."""
    import threading

    import numpy as np

    paths = sorted((data_dir / "visdrone-det-mini" / "images").glob("*.jpg"))[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    files = [paths[0], broken, paths[1], paths[2], paths[0]]
    p = Predictor.from_path(weights, conf=0.2)
    assert p.backend.on_cpu  # so by default it does not read ahead
    for read_ahead in (None, 0, 2):
        got = list(p.predict_files(files, read_ahead=read_ahead))
        assert [g.path for g in got] == files
        assert got[1].image is None and got[1].detections is None and "read" in got[1].timings
        for g in (got[0], got[2], got[3], got[4]):
            want = p.predict(cv2.imread(str(g.path)))
            assert np.array_equal(g.detections.boxes, want.boxes)
            assert np.array_equal(g.detections.labels, want.labels)
            assert g.image.shape == cv2.imread(str(g.path)).shape
            assert set(g.timings) == {"read", "pre", "infer", "post"} and all(
                v >= 0 for v in g.timings.values()
            )
    stream = p.predict_files(files * 4, read_ahead=3)
    next(stream)
    stream.close()  # stop early: the read-ahead thread ends
    assert not [t for t in threading.enumerate() if t.name.startswith("detcli-read")]
