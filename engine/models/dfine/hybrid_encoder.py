"""The hybrid encoder: attention on the coarsest map (AIFI), then a top-down/bottom-up fusion (CCFF).

Parameter names follow the official implementation.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def activation(name: str | None) -> nn.Module:
    """Activation module by name (the official configs use silu, gelu and relu)."""
    table = {"silu": nn.SiLU, "swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, None: nn.Identity}
    module = table[name]()
    # in place, as the official get_activation does: every caller hands it a fresh tensor (a norm's, a sum's or
    # a linear's output) that nothing else reads and whose producer's backward does not need it, so the result is
    # the same while a feature-map-sized allocation and write per activation is saved (CPU training is bound by
    # memory traffic)
    if hasattr(module, "inplace"):
        module.inplace = True
    return module


class ConvNormLayer_fuse(nn.Module):
    """Conv + BN (+ act); `convert_to_deploy` folds the BN into the conv."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int = 1, act: str | None = None):
        super().__init__()
        self.cfg = (cin, cout, k, stride, groups, (k - 1) // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "conv_bn_fused"):
            return self.act(self.conv_bn_fused(x))
        return self.act(self.norm(self.conv(x)))

    def convert_to_deploy(self) -> None:
        cin, cout, k, stride, groups, pad = self.cfg
        fused = nn.Conv2d(cin, cout, k, stride, padding=pad, groups=groups, bias=True)
        weight, bias = fold_bn(self.conv.weight, self.norm)
        fused.weight.data, fused.bias.data = weight, bias
        self.conv_bn_fused = fused
        del self.conv, self.norm


def fold_bn(weight: Tensor, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Conv weight and bias equivalent to conv (no bias) followed by eval-mode BN."""
    std = (bn.running_var + bn.eps).sqrt()
    t = (bn.weight / std).reshape(-1, 1, 1, 1)
    return weight * t, bn.bias - bn.running_mean * bn.weight / std


class ConvNormLayer(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=padding, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


class VGGBlock(nn.Module):
    """RepVGG block: 3x3 + 1x1 branches in training, one 3x3 conv after `convert_to_deploy`."""

    def __init__(self, cin: int, cout: int, act: str = "silu"):
        super().__init__()
        self.cin, self.cout = cin, cout
        self.conv1 = ConvNormLayer(cin, cout, 3, 1, padding=1)
        self.conv2 = ConvNormLayer(cin, cout, 1, 1, padding=0)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x) if hasattr(self, "conv") else self.conv1(x) + self.conv2(x)
        return self.act(y)

    def convert_to_deploy(self) -> None:
        w3, b3 = fold_bn(self.conv1.conv.weight, self.conv1.norm)
        w1, b1 = fold_bn(self.conv2.conv.weight, self.conv2.norm)
        conv = nn.Conv2d(self.cin, self.cout, 3, 1, padding=1)
        conv.weight.data = w3 + F.pad(w1, [1, 1, 1, 1])
        conv.bias.data = b3 + b1
        self.conv = conv
        del self.conv1, self.conv2


class CSPLayer(nn.Module):
    def __init__(self, cin: int, cout: int, num_blocks: int, act: str = "silu"):
        super().__init__()
        # expansion is 1.0 wherever D-FINE uses this layer, so hidden == cout and conv3 is an identity
        self.conv1 = ConvNormLayer_fuse(cin, cout, 1, 1, act=act)
        self.conv2 = ConvNormLayer_fuse(cin, cout, 1, 1, act=act)
        self.bottlenecks = nn.Sequential(*(VGGBlock(cout, cout, act=act) for _ in range(num_blocks)))
        self.conv3 = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))


class RepNCSPELAN4(nn.Module):
    """GELAN block: split, two CSP+conv branches in sequence, concatenate all, project."""

    def __init__(self, c1: int, c2: int, c3: int, c4: int, n: int = 3, act: str = "silu"):
        super().__init__()
        self.c = c3 // 2
        self.cv1 = ConvNormLayer_fuse(c1, c3, 1, 1, act=act)
        self.cv2 = nn.Sequential(CSPLayer(c3 // 2, c4, n, act=act), ConvNormLayer_fuse(c4, c4, 3, 1, act=act))
        self.cv3 = nn.Sequential(CSPLayer(c4, c4, n, act=act), ConvNormLayer_fuse(c4, c4, 3, 1, act=act))
        self.cv4 = ConvNormLayer_fuse(c3 + 2 * c4, c2, 1, 1, act=act)

    def forward(self, x: Tensor) -> Tensor:
        parts = list(self.cv1(x).split((self.c, self.c), 1))
        parts.append(self.cv2(parts[-1]))
        parts.append(self.cv3(parts[-1]))
        return self.cv4(torch.cat(parts, 1))


class SCDown(nn.Module):
    """Spatial-channel decoupled downsampling: 1x1 then a strided depthwise conv."""

    def __init__(self, c1: int, c2: int, k: int, s: int):
        super().__init__()
        self.cv1 = ConvNormLayer_fuse(c1, c2, 1, 1)
        self.cv2 = ConvNormLayer_fuse(c2, c2, k, s, groups=c2)

    def forward(self, x: Tensor) -> Tensor:
        return self.cv2(self.cv1(x))


class TransformerEncoderLayer(nn.Module):
    """Post-norm transformer layer (AIFI)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, act: str):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = activation(act)

    def forward(self, src: Tensor, pos_embed: Tensor | None = None) -> Tensor:
        q = k = src if pos_embed is None else src + pos_embed
        attn, _ = self.self_attn(q, k, value=src)
        src = self.norm1(src + self.dropout1(attn))
        ffn = self.linear2(self.dropout(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout2(ffn))


class TransformerEncoder(nn.Module):
    def __init__(self, layer: TransformerEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, src: Tensor, pos_embed: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos_embed=pos_embed)
        return src


def sincos_position_embedding(w: int, h: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """2-D sine-cosine position embedding (1, w*h, dim), row-major over (x, y) as the official encoder builds it."""
    if dim % 4:
        raise ValueError("embedding dimension must be divisible by 4")
    # no int() casts: during ONNX export w and h are traced sizes, so the graph stays valid for any H, W
    gx, gy = torch.meshgrid(
        torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij"
    )
    pos_dim = dim // 4
    omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim)
    out_w = gx.flatten()[:, None] @ omega[None]
    out_h = gy.flatten()[:, None] @ omega[None]
    return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)[None]


class HybridEncoder(nn.Module):
    def __init__(
        self,
        in_channels: list[int],
        feat_strides: list[int],
        hidden_dim: int = 256,
        nhead: int = 8,
        dim_feedforward: int = 1024,
        dropout: float = 0.0,
        enc_act: str = "gelu",
        use_encoder_idx: tuple[int, ...] = (2,),
        num_encoder_layers: int = 1,
        expansion: float = 1.0,
        depth_mult: float = 1.0,
        act: str = "silu",
        eval_spatial_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.in_channels, self.feat_strides, self.hidden_dim = (
            list(in_channels),
            list(feat_strides),
            hidden_dim,
        )
        self.use_encoder_idx, self.num_encoder_layers = list(use_encoder_idx), num_encoder_layers
        self.eval_spatial_size = eval_spatial_size
        self.out_channels = [hidden_dim] * len(in_channels)
        self.input_proj = nn.ModuleList(
            nn.Sequential(
                OrderedDict(
                    [("conv", nn.Conv2d(c, hidden_dim, 1, bias=False)), ("norm", nn.BatchNorm2d(hidden_dim))]
                )
            )
            for c in in_channels
        )
        layer = TransformerEncoderLayer(hidden_dim, nhead, dim_feedforward, dropout, enc_act)
        self.encoder = nn.ModuleList(
            TransformerEncoder(layer, num_encoder_layers) for _ in self.use_encoder_idx
        )
        c4 = round(expansion * hidden_dim // 2)
        depth = round(3 * depth_mult)
        n = len(in_channels)
        self.lateral_convs = nn.ModuleList(
            ConvNormLayer_fuse(hidden_dim, hidden_dim, 1, 1) for _ in range(n - 1)
        )
        self.fpn_blocks = nn.ModuleList(
            RepNCSPELAN4(hidden_dim * 2, hidden_dim, hidden_dim * 2, c4, depth) for _ in range(n - 1)
        )
        self.downsample_convs = nn.ModuleList(
            nn.Sequential(SCDown(hidden_dim, hidden_dim, 3, 2)) for _ in range(n - 1)
        )
        self.pan_blocks = nn.ModuleList(
            RepNCSPELAN4(hidden_dim * 2, hidden_dim, hidden_dim * 2, c4, depth) for _ in range(n - 1)
        )
        self._pos_cache: dict[tuple[int, int], Tensor] = {}

    def _pos_embed(self, w: int, h: int, device: torch.device) -> Tensor:
        # a pure function of the map size: cached per size in eager mode (not a buffer, so checkpoints stay
        # official); built in the graph when exporting, so an exported model accepts other sizes
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return sincos_position_embedding(w, h, self.hidden_dim).to(device)
        key = (int(w), int(h))
        if key not in self._pos_cache:
            self._pos_cache[key] = sincos_position_embedding(w, h, self.hidden_dim)
        return self._pos_cache[key].to(device)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        proj = [p(f) for p, f in zip(self.input_proj, feats, strict=True)]
        for i, idx in enumerate(self.use_encoder_idx):
            h, w = proj[idx].shape[2:]
            tokens = proj[idx].flatten(2).permute(0, 2, 1)
            memory = self.encoder[i](tokens, pos_embed=self._pos_embed(w, h, tokens.device))
            proj[idx] = memory.permute(0, 2, 1).reshape(-1, self.hidden_dim, h, w).contiguous()

        n = len(self.in_channels)
        inner = [proj[-1]]  # top-down: coarse to fine
        for k, idx in enumerate(range(n - 1, 0, -1)):
            high = self.lateral_convs[k](inner[0])
            inner[0] = high
            up = F.interpolate(high, scale_factor=2.0, mode="nearest")
            inner.insert(0, self.fpn_blocks[k](torch.cat([up, proj[idx - 1]], dim=1)))
        outs = [inner[0]]  # bottom-up: fine to coarse
        for k in range(n - 1):
            down = self.downsample_convs[k](outs[-1])
            outs.append(self.pan_blocks[k](torch.cat([down, inner[k + 1]], dim=1)))
        return outs
