"""The D-FINE detector: HGNetv2 backbone -> hybrid encoder -> FDR decoder."""

from __future__ import annotations

from torch import Tensor, nn

from engine.models.dfine.decoder import DFINETransformer
from engine.models.dfine.hgnetv2 import HGNetv2
from engine.models.dfine.hybrid_encoder import HybridEncoder
from engine.models.dfine.sizes import size_config

# build_model overrides that go to the decoder, with the decoder argument they set
DECODER_OVERRIDES = {
    "num_queries": "num_queries",
    "num_layers": "num_layers",
    "num_decoder_layers": "num_layers",
    "eval_idx": "eval_idx",
    "num_denoising": "num_denoising",
    "label_noise_ratio": "label_noise_ratio",
    "box_noise_scale": "box_noise_scale",
}

# build_model overrides of the HGNetv2 freezing (None keeps the size's official setting)
BACKBONE_OVERRIDES = ("freeze_at", "freeze_norm", "freeze_stem_only")


class DFINE(nn.Module):
    """A D-FINE model. `model.decoder.num_denoising = 0` switches training-time denoising off."""

    def __init__(
        self,
        size: str,
        num_classes: int = 80,
        eval_spatial_size: tuple[int, int] | None = (640, 640),
        **overrides: int | float,
    ):
        super().__init__()
        unknown = set(overrides) - set(DECODER_OVERRIDES) - set(BACKBONE_OVERRIDES)
        if unknown:
            valid = sorted({*DECODER_OVERRIDES, *BACKBONE_OVERRIDES})
            raise ValueError(f"unknown model override(s) {sorted(unknown)}; valid: {valid}")
        cfg = size_config(size)
        dec = cfg["decoder"]
        for key, value in overrides.items():
            if value is None:
                continue
            if key in BACKBONE_OVERRIDES:
                cfg["backbone"][key] = value
            else:
                dec[DECODER_OVERRIDES[key]] = value
        self.size, self.num_classes = size, num_classes
        self.config = {
            "size": size,
            "num_classes": num_classes,
            "eval_spatial_size": list(eval_spatial_size) if eval_spatial_size else None,
            **{k: v for k, v in overrides.items() if v is not None},
        }
        self.backbone = HGNetv2(**cfg["backbone"])
        self.decoder = DFINETransformer(num_classes=num_classes, eval_spatial_size=eval_spatial_size, **dec)
        self.encoder = HybridEncoder(eval_spatial_size=eval_spatial_size, **cfg["encoder"])

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None) -> dict:
        return self.decoder(self.encoder(self.backbone(images)), targets)

    def deploy(self) -> DFINE:
        """Switch to the inference graph: eval mode, BN folded, layers after eval_idx dropped."""
        self.eval()
        for m in self.modules():
            if m is not self and hasattr(m, "convert_to_deploy"):
                m.convert_to_deploy()
        dec = self.decoder
        keep = dec.eval_idx
        dec.dec_score_head = nn.ModuleList([nn.Identity()] * keep + [dec.dec_score_head[keep]])
        dec.dec_bbox_head = nn.ModuleList(
            h if i <= keep else nn.Identity() for i, h in enumerate(dec.dec_bbox_head)
        )
        return self
