"""HGNetv2, the backbone of every D-FINE size (B0 for N/S, B2 for M, B4 for L, B5 for X).

Module and parameter names follow the official implementation so its checkpoints load without a key map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# name -> (stem in, stem mid, stem out), then per stage:
# (in, mid, out, blocks, downsample, light_block, kernel, layers per block)
ARCHS: dict[str, dict] = {
    "B0": {
        "stem": (3, 16, 16),
        "stages": [
            (16, 16, 64, 1, False, False, 3, 3),
            (64, 32, 256, 1, True, False, 3, 3),
            (256, 64, 512, 2, True, True, 5, 3),
            (512, 128, 1024, 1, True, True, 5, 3),
        ],
    },
    "B2": {
        "stem": (3, 24, 32),
        "stages": [
            (32, 32, 96, 1, False, False, 3, 4),
            (96, 64, 384, 1, True, False, 3, 4),
            (384, 128, 768, 3, True, True, 5, 4),
            (768, 256, 1536, 1, True, True, 5, 4),
        ],
    },
    "B4": {
        "stem": (3, 32, 48),
        "stages": [
            (48, 48, 128, 1, False, False, 3, 6),
            (128, 96, 512, 1, True, False, 3, 6),
            (512, 192, 1024, 3, True, True, 5, 6),
            (1024, 384, 2048, 1, True, True, 5, 6),
        ],
    },
    "B5": {
        "stem": (3, 32, 64),
        "stages": [
            (64, 64, 128, 1, False, False, 3, 6),
            (128, 128, 512, 2, True, False, 3, 6),
            (512, 256, 1024, 5, True, True, 5, 6),
            (1024, 512, 2048, 2, True, True, 5, 6),
        ],
    },
}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms, all stored as buffers (L and X freeze their norms)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


class LearnableAffineBlock(nn.Module):
    """y = scale * x + bias with two learnt scalars ("lab", used by the B0/B2 variants)."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([scale]))
        self.bias = nn.Parameter(torch.tensor([bias]))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x + self.bias


class ConvBNAct(nn.Module):
    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
        lab: bool = False,
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        # in place: BN's backward needs its input, never its output, so overwriting the output is safe and saves
        # the backbone's largest allocations (the official code allocates here; the result is the same)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.lab = LearnableAffineBlock() if act and lab else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.lab(self.act(self.bn(self.conv(x))))


class LightConvBNAct(nn.Module):
    """1x1 projection followed by a depthwise k x k conv (the "light" blocks of the deeper stages)."""

    def __init__(self, cin: int, cout: int, k: int, lab: bool = False):
        super().__init__()
        self.conv1 = ConvBNAct(cin, cout, 1, act=False, lab=lab)
        self.conv2 = ConvBNAct(cout, cout, k, groups=cout, act=True, lab=lab)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


class StemBlock(nn.Module):
    """Stride-4 stem: a strided conv, then a max-pool branch and a 2x2-conv branch concatenated."""

    def __init__(self, cin: int, mid: int, cout: int, lab: bool = False):
        super().__init__()
        self.stem1 = ConvBNAct(cin, mid, 3, stride=2, lab=lab)
        self.stem2a = ConvBNAct(mid, mid // 2, 2, lab=lab)
        self.stem2b = ConvBNAct(mid // 2, mid, 2, lab=lab)
        self.stem3 = ConvBNAct(mid * 2, mid, 3, stride=2, lab=lab)
        self.stem4 = ConvBNAct(mid, cout, 1, lab=lab)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=1, ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        # 2x2 kernels need one extra row/column so the spatial size is kept
        x = F.pad(self.stem1(x), (0, 1, 0, 1))
        branch = self.stem2b(F.pad(self.stem2a(x), (0, 1, 0, 1)))
        x = torch.cat([self.pool(x), branch], dim=1)
        return self.stem4(self.stem3(x))


class HG_Block(nn.Module):
    """Layers in sequence whose outputs are all concatenated, then squeezed and expanded by two 1x1 convs."""

    def __init__(
        self, cin: int, mid: int, cout: int, layers: int, k: int, residual: bool, light: bool, lab: bool
    ):
        super().__init__()
        self.residual = residual
        self.layers = nn.ModuleList(
            (
                LightConvBNAct(cin if i == 0 else mid, mid, k, lab=lab)
                if light
                else ConvBNAct(cin if i == 0 else mid, mid, k, lab=lab)
            )
            for i in range(layers)
        )
        # squeeze-excitation style aggregation ("se" in the official code, the variant every D-FINE size uses)
        self.aggregation = nn.Sequential(
            ConvBNAct(cin + layers * mid, cout // 2, 1, lab=lab), ConvBNAct(cout // 2, cout, 1, lab=lab)
        )
        self.drop_path = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        outs = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            outs.append(y)
        y = self.aggregation(torch.cat(outs, dim=1))
        return self.drop_path(y) + x if self.residual else y


class HG_Stage(nn.Module):
    def __init__(
        self,
        cin: int,
        mid: int,
        cout: int,
        blocks: int,
        downsample: bool,
        light: bool,
        k: int,
        layers: int,
        lab: bool,
    ):
        super().__init__()
        self.downsample = (
            ConvBNAct(cin, cin, 3, stride=2, groups=cin, act=False, lab=lab) if downsample else nn.Identity()
        )
        self.blocks = nn.Sequential(
            *(
                HG_Block(cin if i == 0 else cout, mid, cout, layers, k, residual=i > 0, light=light, lab=lab)
                for i in range(blocks)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


def _freeze_norms(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d below `module` by a FrozenBatchNorm2d (statistics become buffers)."""
    if isinstance(module, nn.BatchNorm2d):
        return FrozenBatchNorm2d(module.num_features)
    for name, child in module.named_children():
        new = _freeze_norms(child)
        if new is not child:
            setattr(module, name, new)
    return module


class HGNetv2(nn.Module):
    """HGNetv2 returning the feature maps of the stages in `return_idx` (strides 4, 8, 16, 32)."""

    def __init__(
        self,
        name: str = "B0",
        use_lab: bool = False,
        return_idx: tuple[int, ...] = (1, 2, 3),
        freeze_at: int = -1,
        freeze_norm: bool = False,
        freeze_stem_only: bool = True,
    ):
        super().__init__()
        arch = ARCHS[name]
        self.return_idx = tuple(return_idx)
        self.stem = StemBlock(*arch["stem"], lab=use_lab)
        self.stages = nn.ModuleList(
            HG_Stage(cin, mid, cout, blocks, down, light, k, layers, use_lab)
            for cin, mid, cout, blocks, down, light, k, layers in arch["stages"]
        )
        self.out_channels = [arch["stages"][i][2] for i in self.return_idx]
        if freeze_at >= 0:
            # as the official HGNetv2: the stem, and unless freeze_stem_only also stages 0..freeze_at
            frozen = [self.stem] + ([] if freeze_stem_only else list(self.stages[: freeze_at + 1]))
            for module in frozen:
                for p in module.parameters():
                    p.requires_grad_(False)
        if freeze_norm:
            _freeze_norms(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.return_idx:
                outs.append(x)
        return outs
