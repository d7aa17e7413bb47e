"""Trainer parts that need no dataset: parameter groups, schedules, EMA, accumulation."""

import copy

import pytest
import torch
from torch import nn

from engine.config import TrainConfig
from engine.models import build_model
from engine.train.ema import ModelEMA
from engine.train.optim import build_optimizer, param_groups
from engine.train.schedulers import lr_factor
from engine.train.stepper import OptimizerStepper


def test_param_groups_backbone_lr_and_no_decay_on_norms():
    m = build_model("dfine-n", num_classes=3)
    groups = {g["name"]: g for g in param_groups(m, lr=8e-4, backbone_lr=4e-4, weight_decay=1e-4)}
    assert groups["backbone"]["lr"] == 4e-4 and groups["head"]["lr"] == 8e-4
    names = {id(p): n for n, p in m.named_parameters()}
    bb_no_wd = {names[id(p)] for p in groups["backbone_no_wd"]["params"]}
    assert (
        "backbone.stem.stem1.bn.weight" in bb_no_wd
    )  # the official regex puts this one in the decayed group
    assert all(groups[k]["weight_decay"] == 0 for k in ("backbone_no_wd", "head_no_wd"))
    assert not any(
        n.endswith(".bias") or ".norm" in n for n in (names[id(p)] for p in groups["head"]["params"])
    )
    assert sum(len(g["params"]) for g in groups.values()) == sum(1 for p in m.parameters() if p.requires_grad)


def test_scheduler_keeps_group_ratio_and_warms_up():
    cfg = TrainConfig(
        lr=1e-3,
        backbone_lr=1e-4,
        warmup_steps=10,
        scheduler="flat-cosine",
        flat_epochs=0.5,
        min_lr_ratio=0.05,
    )
    assert lr_factor(0, 100, 10, cfg) == pytest.approx(0.1)
    assert lr_factor(30, 100, 10, cfg) == 1.0
    assert lr_factor(100, 100, 10, cfg) == pytest.approx(0.05)
    assert lr_factor(75, 100, 10, cfg) == pytest.approx(0.05 + 0.95 * 0.5)
    opt = build_optimizer(build_model("dfine-n", num_classes=3), cfg)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["backbone"] / lrs["head"] == pytest.approx(0.1)
    for kind in ("cosine", "one-cycle", "step", "multistep", "constant"):
        c = cfg.model_copy(update={"scheduler": kind, "milestones": [5]})
        assert 0 < lr_factor(50, 100, 10, c) <= 1


def test_ema_warmup_follows_official_ramp():
    m = nn.Linear(2, 2)
    ema = ModelEMA(m, decay=0.9999, warmups=1000)
    ema.updates = 1000
    assert ema.current_decay() == pytest.approx(0.9999 * (1 - 2.718281828**-1), rel=1e-6)


def _probe():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


@pytest.mark.parametrize("clip", [None, 0.5])
def test_accumulation_matches_big_batch(clip):
    x, y = torch.randn(4, 6), torch.randn(4, 3)
    results = []
    for batch, accum in ((2, 2), (4, 1)):
        m = _probe()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
        stepper = OptimizerStepper(m, opt, torch.amp.GradScaler("cpu", enabled=False), accum, clip)
        for i in range(4 // batch):
            xb, yb = x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]
            stepper.backward(nn.functional.mse_loss(m(xb), yb))
            stepper.maybe_step(i, last=i == 4 // batch - 1)
        results.append(copy.deepcopy(m.state_dict()))
    for k in results[0]:
        assert torch.allclose(results[0][k], results[1][k], atol=1e-5), k


def test_partial_final_group_still_steps():
    m = _probe()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    stepper = OptimizerStepper(m, opt, torch.amp.GradScaler("cpu", enabled=False), accumulate=4)
    before = copy.deepcopy(m.state_dict())
    steps = 0
    for i in range(3):  # 3 batches, accumulate 4: one partial step at the end of the epoch
        stepper.backward(m(torch.randn(2, 6)).pow(2).mean())
        steps += stepper.maybe_step(i, last=i == 2)
    assert steps == 1
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_world_of_one_joins_the_process_group(monkeypatch):
    """Under torchrun even one process joins (gloo on CPU): how a one-GPU box runs the DDP code path. Outside
    torchrun a single process stays out of torch.distributed."""
    from engine.train import distributed as dist_utils

    for k in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(k, raising=False)
    assert not dist_utils.init_from_env("cpu") and dist_utils.backend() is None
    env = {"TORCHELASTIC_RUN_ID": "t", "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        assert dist_utils.init_from_env("cpu")
        assert dist_utils.backend() == "gloo" and dist_utils.world_size() == 1 and dist_utils.rank() == 0
    finally:
        dist_utils.cleanup()
    assert dist_utils.backend() is None
