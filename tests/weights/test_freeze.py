"""HGNetv2 freezing as the official per-size configs set it (freeze_at / freeze_norm / freeze_stem_only)."""

from __future__ import annotations

import pytest

from engine.config import load_config
from engine.models import build_model
from engine.models.dfine.hgnetv2 import FrozenBatchNorm2d
from engine.models.dfine.sizes import size_config

# configs/dfine/dfine_hgnetv2_{n,s,m,l,x}_coco.yml of the official repository
OFFICIAL = {
    "n": (-1, False, True),
    "s": (-1, False, True),
    "m": (-1, False, True),
    "l": (0, True, True),
    "x": (0, True, True),
}


@pytest.mark.parametrize("size", list(OFFICIAL))
def test_size_table_matches_the_official_configs(size):
    bb = size_config(size)["backbone"]
    assert (bb["freeze_at"], bb["freeze_norm"], bb["freeze_stem_only"]) == OFFICIAL[size]


def test_freeze_overrides_reach_the_backbone():
    m = build_model("dfine-n", num_classes=3, freeze_at=1, freeze_stem_only=False, freeze_norm=True)
    bb = m.backbone
    assert not any(p.requires_grad for p in bb.stem.parameters())
    assert not any(p.requires_grad for s in bb.stages[:2] for p in s.parameters())
    assert all(p.requires_grad for s in bb.stages[2:] for p in s.parameters())
    assert any(isinstance(x, FrozenBatchNorm2d) for x in bb.modules())
    assert m.config["freeze_at"] == 1  # a saved checkpoint rebuilds with the same freezing


def test_stem_only_freezes_the_stem_alone():
    bb = build_model("dfine-n", num_classes=3, freeze_at=2).backbone
    assert not any(p.requires_grad for p in bb.stem.parameters())
    assert all(p.requires_grad for s in bb.stages for p in s.parameters())


def test_defaults_leave_n_trainable_and_config_exposes_the_keys():
    bb = build_model("dfine-n", num_classes=3).backbone
    assert all(p.requires_grad for p in bb.parameters())
    cfg = load_config(None, None, ["model.freeze_at=0", "model.freeze_norm=true"])
    assert cfg.model.freeze_at == 0 and cfg.model.freeze_norm is True and cfg.model.freeze_stem_only is None
