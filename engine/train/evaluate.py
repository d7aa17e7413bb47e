"""Run a model over a Dataset and score it (used after every epoch and by `detcli eval` with torch weights)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader

from engine.config import EvalConfig
from engine.data.dataset import DetectionDataset, collate, to_model_input
from engine.geometry import boxes_to_original
from engine.metrics import DetectionEvaluator, EvalResult
from engine.models import DFINEPostProcessor


@torch.no_grad()
def predict_dataset(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    batch: int = 8,
    workers: int = 0,
    device: torch.device | str = "cpu",
    max_det: int = 300,
    progress: Callable[[int, int], None] | None = None,
):
    """Yield (record index, boxes xyxy original pixels, scores, labels) for every image of the dataset."""
    model.eval()
    post = DFINEPostProcessor(
        model.num_classes if hasattr(model, "num_classes") else model.decoder.num_classes,
        num_top_queries=max_det,
    )
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers, collate_fn=collate)
    done = 0
    for images, targets in loader:
        done = min(done + batch, len(dataset))  # unreadable images (left out of `targets`) count as done
        if not targets:
            if progress:
                progress(done, len(dataset))
            continue
        images = to_model_input(images, device)
        h, w = images.shape[-2:]
        outputs = model(images)
        sizes = torch.tensor([[w, h]] * len(images), device=device)
        labels, boxes, scores = post(outputs, sizes)
        for t, lab, box, sco in zip(targets, labels, boxes, scores, strict=True):
            yield (
                t["image_id"],
                boxes_to_original(box.float().cpu().numpy(), t["meta"]),
                sco.float().cpu().numpy(),
                lab.cpu().numpy(),
            )
        if progress:
            progress(done, len(dataset))


def evaluate_model(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    eval_cfg: EvalConfig,
    batch: int = 8,
    workers: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """COCO mAP + threshold metrics of `model` on `dataset` (ground truth in original-image pixels)."""
    ev = DetectionEvaluator(
        dataset.class_names, conf=eval_cfg.conf, iou=eval_cfg.iou, max_det=eval_cfg.max_det
    )
    seen = set()
    for i, boxes, scores, labels in predict_dataset(
        model, dataset, batch, workers, device, eval_cfg.max_det, progress
    ):
        seen.add(i)
        rec = dataset.records[i]
        ev.add(
            str(rec.path),
            boxes,
            scores,
            labels,
            rec.boxes,
            rec.labels,
            ignore_boxes=rec.ignore,
            image_size=(rec.height, rec.width),
        )
    result = ev.compute()
    result.skipped = dataset.unlisted + [str(dataset.records[i].path) for i in dataset.index if i not in seen]
    return result
