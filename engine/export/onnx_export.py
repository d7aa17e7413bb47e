"""ONNX export with post-processing in the graph: inputs images + orig_target_sizes, outputs labels/boxes/scores."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from engine.export.metadata import KEY
from engine.models import DFINEPostProcessor


class DeployedDetector(nn.Module):
    """The deploy-mode model followed by the post-processor, as one graph."""

    def __init__(self, model: nn.Module, num_top_queries: int = 300):
        super().__init__()
        self.model = model.deploy()
        nq = model.decoder.num_queries * model.num_classes
        self.post = DFINEPostProcessor(model.num_classes, num_top_queries=min(num_top_queries, nq))

    def forward(self, images: torch.Tensor, orig_target_sizes: torch.Tensor):
        return self.post(self.model(images), orig_target_sizes)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    imgsz: tuple[int, int],
    metadata: dict,
    opset: int = 17,
    batch: int = 1,
    simplify: bool = False,
    dynamic: bool = False,
) -> Path:
    """Write `path` with a dynamic batch axis; `dynamic` also frees height and width (for cut-padding inference:
    anchors and position embeddings are computed in the graph from the input size)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = DeployedDetector(model).eval()
    h, w = imgsz
    # a dummy batch of 2 keeps batch-size-dependent reshapes symbolic (the official batch-1 export breaks for N>1)
    images = torch.rand(max(batch, 2), 3, h, w)
    sizes = torch.tensor([[w, h]] * images.shape[0])
    axes = {
        "images": {0: "N"},
        "orig_target_sizes": {0: "N"},
        "labels": {0: "N"},
        "boxes": {0: "N"},
        "scores": {0: "N"},
    }
    if dynamic:
        axes["images"] = {0: "N", 2: "H", 3: "W"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (images, sizes),
            str(path),
            input_names=["images", "orig_target_sizes"],
            output_names=["labels", "boxes", "scores"],
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=False,
            do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    if simplify:
        try:
            import onnxsim

            proto, _ok = onnxsim.simplify(proto)
        except ImportError:
            warnings.warn(
                "--simplify needs `pip install onnxsim`; exported without simplification", stacklevel=2
            )
    entry = proto.metadata_props.add()
    entry.key, entry.value = KEY, json.dumps(metadata)
    onnx.save(proto, str(path))
    return path
