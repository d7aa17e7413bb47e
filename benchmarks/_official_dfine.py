"""The official D-FINE's own export of a size (model + post-processor, as its deploy does), run in the interpreter
that has the official repo's dependencies: `python -c OFFICIAL_EXPORT REPO SIZE OUT.onnx IMGSZ`. Shared by the
benchmarks that check a graph against the official one; one size per process (its config system keeps global
state)."""

OFFICIAL_EXPORT = r"""
import sys, torch
where, size, out, imgsz = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, where)
from src.core import YAMLConfig

cfg = YAMLConfig(f"{where}/configs/dfine/dfine_hgnetv2_{size}_coco.yml", HGNetv2={"pretrained": False})


class Deployed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.model, self.post = cfg.model.deploy(), cfg.postprocessor.deploy()

    def forward(self, images, orig_target_sizes):
        return self.post(self.model(images), orig_target_sizes)


torch.onnx.export(
    Deployed().eval(), (torch.rand(1, 3, imgsz, imgsz), torch.tensor([[imgsz, imgsz]])), out,
    input_names=["images", "orig_target_sizes"], output_names=["labels", "boxes", "scores"],
    opset_version=17, dynamo=False, do_constant_folding=True,
)
"""
