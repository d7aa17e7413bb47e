"""The official hyper-parameters of each D-FINE size (configs/dfine/dfine_hgnetv2_{n,s,m,l,x}_coco.yml)."""

from __future__ import annotations

import copy

_COMMON_DECODER = {
    "num_queries": 300,
    "reg_max": 32,
    "eval_idx": -1,
    "num_denoising": 100,
    "label_noise_ratio": 0.5,
    "box_noise_scale": 1.0,
}

SIZES: dict[str, dict] = {
    "n": {
        "backbone": {
            "name": "B0",
            "use_lab": True,
            "return_idx": (2, 3),
            "freeze_at": -1,
            "freeze_norm": False,
            "freeze_stem_only": True,
        },
        "encoder": {
            "in_channels": [512, 1024],
            "feat_strides": [16, 32],
            "hidden_dim": 128,
            "use_encoder_idx": [1],
            "dim_feedforward": 512,
            "expansion": 0.34,
            "depth_mult": 0.5,
        },
        "decoder": {
            "feat_channels": [128, 128],
            "feat_strides": [16, 32],
            "hidden_dim": 128,
            "dim_feedforward": 512,
            "num_levels": 2,
            "num_layers": 3,
            "num_points": [6, 6],
            "reg_scale": 4,
        },
        # official training recipe for this size
        "lr": 8e-4,
        "backbone_lr": 4e-4,
        "weight_decay": 1e-4,
    },
    "s": {
        "backbone": {
            "name": "B0",
            "use_lab": True,
            "return_idx": (1, 2, 3),
            "freeze_at": -1,
            "freeze_norm": False,
            "freeze_stem_only": True,
        },
        "encoder": {
            "in_channels": [256, 512, 1024],
            "feat_strides": [8, 16, 32],
            "hidden_dim": 256,
            "use_encoder_idx": [2],
            "dim_feedforward": 1024,
            "expansion": 0.5,
            "depth_mult": 0.34,
        },
        "decoder": {
            "feat_channels": [256, 256, 256],
            "feat_strides": [8, 16, 32],
            "hidden_dim": 256,
            "dim_feedforward": 1024,
            "num_levels": 3,
            "num_layers": 3,
            "num_points": [3, 6, 3],
            "reg_scale": 4,
        },
        "lr": 2e-4,
        "backbone_lr": 1e-4,
        "weight_decay": 1e-4,
    },
    "m": {
        "backbone": {
            "name": "B2",
            "use_lab": True,
            "return_idx": (1, 2, 3),
            "freeze_at": -1,
            "freeze_norm": False,
            "freeze_stem_only": True,
        },
        "encoder": {
            "in_channels": [384, 768, 1536],
            "feat_strides": [8, 16, 32],
            "hidden_dim": 256,
            "use_encoder_idx": [2],
            "dim_feedforward": 1024,
            "expansion": 1.0,
            "depth_mult": 0.67,
        },
        "decoder": {
            "feat_channels": [256, 256, 256],
            "feat_strides": [8, 16, 32],
            "hidden_dim": 256,
            "dim_feedforward": 1024,
            "num_levels": 3,
            "num_layers": 4,
            "num_points": [3, 6, 3],
            "reg_scale": 4,
        },
        "lr": 2e-4,
        "backbone_lr": 2e-5,
        "weight_decay": 1e-4,
    },
    "l": {
        "backbone": {
            "name": "B4",
            "use_lab": False,
            "return_idx": (1, 2, 3),
            "freeze_at": 0,
            "freeze_norm": True,
            "freeze_stem_only": True,
        },
        "encoder": {
            "in_channels": [512, 1024, 2048],
            "feat_strides": [8, 16, 32],
            "hidden_dim": 256,
            "use_encoder_idx": [2],
            "dim_feedforward": 1024,
            "expansion": 1.0,
            "depth_mult": 1.0,
        },
        "decoder": {
            "feat_channels": [256, 256, 256],
            "feat_strides": [8, 16, 32],
            "hidden_dim": 256,
            "dim_feedforward": 1024,
            "num_levels": 3,
            "num_layers": 6,
            "num_points": [3, 6, 3],
            "reg_scale": 4,
        },
        "lr": 2.5e-4,
        "backbone_lr": 1.25e-5,
        "weight_decay": 1.25e-4,
    },
    "x": {
        "backbone": {
            "name": "B5",
            "use_lab": False,
            "return_idx": (1, 2, 3),
            "freeze_at": 0,
            "freeze_norm": True,
            "freeze_stem_only": True,
        },
        "encoder": {
            "in_channels": [512, 1024, 2048],
            "feat_strides": [8, 16, 32],
            "hidden_dim": 384,
            "use_encoder_idx": [2],
            "dim_feedforward": 2048,
            "expansion": 1.0,
            "depth_mult": 1.0,
        },
        "decoder": {
            "feat_channels": [384, 384, 384],
            "feat_strides": [8, 16, 32],
            "hidden_dim": 256,
            "dim_feedforward": 1024,
            "num_levels": 3,
            "num_layers": 6,
            "num_points": [3, 6, 3],
            "reg_scale": 8,
        },
        "lr": 2.5e-4,
        "backbone_lr": 2.5e-6,
        "weight_decay": 1.25e-4,
    },
}


def size_config(size: str) -> dict:
    """A deep copy of one size's settings, so callers can change it without touching the table."""
    if size not in SIZES:
        raise ValueError(f"unknown D-FINE size '{size}'; expected one of {', '.join(SIZES)}")
    cfg = copy.deepcopy(SIZES[size])
    cfg["decoder"] = {**_COMMON_DECODER, **cfg["decoder"]}
    return cfg
