"""The D-FINE-seg side of benchmarks/peer_dfine_seg.py: runs in the peer's venv (DFINE_SEG_PY), speaks the line
protocol of benchmarks/_peer_protocol.py, and drives dfine-seg's own model, loss, optimizer, train loader,
OpenVINO export, OpenVINO inference wrapper (OVModel) and Validator, each the way dfine-seg's own train / export /
bench entry points set them up.

Never imported by detcli: only dfine_seg (and what it depends on) is needed here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import dfine_seg
import torch
from dfine_seg.dl.validator import Validator
from dfine_seg.model.dfine import build_loss, build_model, build_optimizer

_steps: dict = {}
CONF = 0.5  # the benchmark scores both sides at conf 0.5, IoU 0.5


def train_step(size: str, batch: int, imgsz: int):
    """Their train step, as dfine_seg.dl.train does it in fp32 on CPU: forward, loss, backward, optimizer step."""
    key = (size, batch, imgsz)
    if key not in _steps:
        torch.manual_seed(0)
        model = build_model(size, 80, False, "cpu", img_size=[imgsz, imgsz])
        loss_fn = build_loss(size, 80, 0.0, False)
        model.train()
        opt = build_optimizer(
            model, lr=2.5e-4, backbone_lr=6e-5, betas=(0.9, 0.999), weight_decay=1.25e-4, base_lr=2.5e-4
        )
        x = torch.rand(batch, 3, imgsz, imgsz)
        targets = [
            {
                "labels": torch.tensor([1, 2]),
                "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1]]),
            }
            for _ in range(batch)
        ]

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            losses = loss_fn(model(x, targets=targets), targets)
            total = sum(losses.values()) if isinstance(losses, dict) else losses
            total.backward()
            opt.step()

        _steps[key] = step
    t = time.perf_counter()
    _steps[key]()
    return {"ms": (time.perf_counter() - t) * 1000}


def evaluate(path: str) -> dict:
    """Their Validator (conf 0.5, IoU 0.5, with its mAP) on the benchmark's predictions and ground truth."""
    with open(path) as f:
        data = json.load(f)
    label_to_name = dict(enumerate(data["class_names"]))
    t = time.perf_counter()
    gt, preds = [], []
    for im in data["images"]:
        gt.append(
            {
                "boxes": torch.tensor(im["gt_boxes"], dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(im["gt_labels"], dtype=torch.int64),
            }
        )
        boxes = torch.tensor(im["boxes"], dtype=torch.float32).reshape(-1, 4)
        scores = torch.tensor(im["scores"], dtype=torch.float32)
        labels = torch.tensor(im["labels"], dtype=torch.int64)
        keep = scores >= CONF
        # as their trainer hands predictions over: kept at the threshold for P/R/F1, all_* for the mAP
        preds.append(
            {
                "boxes": boxes[keep],
                "scores": scores[keep],
                "labels": labels[keep],
                "all_boxes": boxes,
                "all_scores": scores,
                "all_labels": labels,
            }
        )
    m = Validator(gt, preds, label_to_name, conf_thresh=CONF, iou_thresh=0.5).compute_metrics()
    ms = (time.perf_counter() - t) * 1000
    return {"ms": ms, "map50": m.get("mAP_50"), "f1": m.get("f1")}


_loaders: dict = {}


def loader_epoch(root: str, batch: int, workers: int, imgsz: int) -> dict:
    """One epoch of their train loader (dfine_seg.dl.dataset.Loader, as dl/train.py builds it) with mosaic on
    every sample; images delivered and the time. Their train loader keeps its workers (persistent_workers), so the
    first epoch (worker start) is the benchmark's warm-up and later epochs reuse them, as in their training."""
    from dfine_seg.dl.dataset import Loader
    from omegaconf import OmegaConf

    key = (root, batch, workers, imgsz)
    if key not in _loaders:
        cfg = OmegaConf.load(Path(dfine_seg.__file__).parent / "config" / "default.yaml")
        names = json.loads((Path(root) / "names.json").read_text())
        cfg.train.root = root
        cfg.train.label_to_name = dict(enumerate(names))
        cfg.train.img_size = [imgsz, imgsz]
        cfg.train.mosaic_augs.mosaic_prob = 1.0
        cfg.train.debug_img_processing = False  # a debugging aid that writes JPEGs, not part of loading
        loader = Loader(Path(root), (imgsz, imgsz), batch, workers, cfg, debug_img_processing=False)
        _loaders[key] = loader.build_dataloaders()[0]
    t = time.perf_counter()
    n = sum(len(images) for images, _, _ in _loaders[key] if images is not None)
    return {"images": n, "ms": (time.perf_counter() - t) * 1000}


_ov: dict = {}


def _ov_model(size: str, imgsz: int, out_dir: str):
    """Their OpenVINO export of D-FINE-<size> (random weights, as dl/export.py does it: the raw head to ONNX with
    torch.onnx dynamo + onnxsim, then ov.convert_model) and their OVModel on it, set up as dl/bench.py does."""
    key = (size, imgsz)
    if key not in _ov:
        from dfine_seg.dl.export import export_to_onnx, export_to_openvino
        from dfine_seg.infer.ov_model import OVModel

        torch.manual_seed(0)
        model = build_model(size, 80, False, "cpu", img_size=[imgsz, imgsz]).eval()
        x_test = torch.randn(1, 3, imgsz, imgsz)
        d = Path(out_dir) / f"dfine-seg-{size}"
        d.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        onnx_path = export_to_onnx(
            model, d / "model.pt", x_test, 1, False, False, "input", ["logits", "boxes"]
        )
        export_to_openvino(onnx_path, x_test, False, 1)
        export_s = time.perf_counter() - t
        # dl/bench.py: half = export.half (True by default), keep_ratio false, NMS on, conf 0.5
        ov = OVModel(
            str(d / "model.xml"), conf_thresh=CONF, rect=False, half=True, keep_ratio=False, max_batch_size=1
        )
        _ov[key] = (ov, {"export_s": export_s, "xml": str(d / "model.xml")})
    return _ov[key]


def ov_prepare(size: str, imgsz: int, out_dir: str) -> dict:
    """Export and load (once); answers where the IR is and what the compiled model runs in."""
    import openvino

    ov, info = _ov_model(size, imgsz, out_dir)
    precision = str(ov.model.get_property("INFERENCE_PRECISION_HINT"))
    return {**info, "openvino": openvino.__version__, "precision": precision}


def ov_e2e(size: str, imgsz: int, out_dir: str, files: list[str]) -> dict:
    """Per image: read (their read_image_hwc, cv2.imread) + their wrapper's pre + infer + post."""
    from dfine_seg.dl.dataset import read_image_hwc

    ov, _ = _ov_model(size, imgsz, out_dir)
    times, dets = [], 0
    for f in files:
        t = time.perf_counter()
        res = ov(read_image_hwc(f))
        times.append((time.perf_counter() - t) * 1000)
        dets += len(res[0]["boxes"])
    return {"ms": times, "detections": dets}


def ov_model_only(size: str, imgsz: int, out_dir: str, file: str, runs: int) -> dict:
    """Their compiled model alone, on their own preprocessing of one real image."""
    from dfine_seg.dl.dataset import read_image_hwc

    ov, _ = _ov_model(size, imgsz, out_dir)
    x = ov._prepare_inputs(read_image_hwc(file))[0]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        ov._predict(x)
        times.append((time.perf_counter() - t) * 1000)
    return {"ms": times}


def _protocol_out():
    """The answers' own channel: a copy of stdout, with stdout itself (fd 1, so C code too) sent to stderr,
    because dfine-seg's export and its libraries print progress that would break the one-line answers."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return out


def main() -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 2))
    answers = _protocol_out()
    for line in sys.stdin:
        task = json.loads(line)
        name = task["task"]
        try:
            if name == "quit":
                break
            if name == "hello":
                ans = {"peer": "dfine-seg", "version": dfine_seg.__version__, "torch": torch.__version__}
            elif name == "train_step":
                ans = train_step(task["size"], task["batch"], task["imgsz"])
            elif name == "eval":
                ans = evaluate(task["data"])
            elif name == "loader":
                ans = loader_epoch(task["root"], task["batch"], task["workers"], task["imgsz"])
            elif name == "ov_prepare":
                ans = ov_prepare(task["size"], task["imgsz"], task["dir"])
            elif name == "ov_e2e":
                ans = ov_e2e(task["size"], task["imgsz"], task["dir"], task["files"])
            elif name == "ov_model":
                ans = ov_model_only(task["size"], task["imgsz"], task["dir"], task["file"], task["runs"])
            else:
                ans = {"error": f"unknown task {name!r}"}
        except Exception as e:  # one failing task is reported, the worker keeps serving
            ans = {"error": f"{name}: {type(e).__name__}: {e}"}
        print(json.dumps(ans), file=answers, flush=True)


if __name__ == "__main__":
    main()
