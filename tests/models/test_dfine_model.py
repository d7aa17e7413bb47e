"""Behaviour of the D-FINE family beyond the official numbers: classes, denoising, AMP, checkpoints."""

import pytest
import torch

from engine.models import (
    MODEL_NAMES,
    build_criterion,
    build_model,
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def _targets(n_per_image=(3, 0)):
    g = torch.Generator().manual_seed(0)
    out = []
    for n in n_per_image:
        cxcy = torch.rand(n, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(n, 2, generator=g) * 0.2 + 0.05
        out.append({"labels": torch.randint(0, 5, (n,), generator=g), "boxes": torch.cat([cxcy, wh], 1)})
    return out


def test_unknown_names_and_overrides_are_clear():
    with pytest.raises(ValueError, match="expected one of"):
        build_model("dfine-q")
    with pytest.raises(ValueError, match="unknown model override"):
        build_model("dfine-n", num_querys=10)
    assert MODEL_NAMES == ("dfine-n", "dfine-s", "dfine-m", "dfine-l", "dfine-x")


def test_class_count_change_reinitialises_head(parity_dir):
    m = build_model("dfine-n", num_classes=10)
    report = load_checkpoint(m, parity_dir / "dfine_n_perturbed.pth")
    assert report.reinitialised and all(
        k.startswith(("decoder.enc_score_head", "decoder.dec_score_head", "decoder.denoising_class_embed"))
        for k in report.reinitialised
    )
    assert len(report.loaded) == 674 - len(report.reinitialised)
    assert "re-initialised" in report.summary()


def test_official_ema_layout_loads(parity_dir, tmp_path):
    sd = torch.load(parity_dir / "dfine_n_perturbed.pth", weights_only=True)["model"]
    torch.save({"ema": {"module": sd, "updates": 5}}, tmp_path / "ema.pth")
    report = load_checkpoint(build_model("dfine-n"), tmp_path / "ema.pth")
    assert report.layout == "official-ema" and report.complete


def test_loader_refuses_non_checkpoints(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pth is not a PyTorch checkpoint"):
        load_checkpoint(build_model("dfine-n"), bad)
    # a real checkpoint that also pickles an object: refused (loading it would run code), with the way out
    import argparse

    with_args = tmp_path / "with_args.pth"
    torch.save({"model": build_model("dfine-n").state_dict(), "args": argparse.Namespace(lr=1e-4)}, with_args)
    with pytest.raises(ValueError, match=r"argparse\.Namespace.*weights_only=False"):
        load_checkpoint(build_model("dfine-n"), with_args)


def test_denoising_losses_finite_and_every_parameter_gets_gradient():
    torch.manual_seed(0)
    m = build_model("dfine-n", num_classes=5, num_queries=30).train()
    targets = _targets((3, 2))
    losses = build_criterion("dfine-n", num_classes=5)(
        m(torch.rand(2, 3, 256, 256), targets=targets), targets
    )
    assert any(k.endswith("_dn_0") for k in losses) and "loss_vfl_dn_pre" in losses
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    no_grad = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []  # DDP without find_unused_parameters works


def test_background_image_in_batch_is_finite():
    m = build_model("dfine-n", num_classes=5, num_queries=30).train()
    for targets in (_targets((3, 0)), _targets((0, 0))):
        losses = build_criterion("dfine-n", num_classes=5)(
            m(torch.rand(2, 3, 128, 128), targets=targets), targets
        )
        assert all(torch.isfinite(v) for v in losses.values())


def test_bf16_autocast_forward_backward():
    m = build_model("dfine-n", num_classes=5, num_queries=30).train()
    targets = _targets((2, 1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(torch.rand(2, 3, 128, 128), targets=targets)
    losses = build_criterion("dfine-n", num_classes=5)(out, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()


def test_eval_at_other_sizes_and_batch():
    m = build_model("dfine-n", num_classes=3, num_queries=20).eval()
    with torch.no_grad():
        out = m(torch.rand(2, 3, 320, 416))
    assert out["pred_logits"].shape == (2, 20, 3) and out["pred_boxes"].shape == (2, 20, 4)


def test_checkpoint_rebuilds_model_alone(tmp_path):
    m = build_model("dfine-n", num_classes=4, num_queries=25, num_layers=2).eval()
    path = save_checkpoint(
        tmp_path / "w.pt", m, class_names=["a", "b", "c", "d"], imgsz=(256, 256), extra={"best_conf": 0.4}
    )
    again, meta = build_model_from_checkpoint(path)
    assert (
        meta["class_names"] == ["a", "b", "c", "d"]
        and meta["imgsz"] == [256, 256]
        and meta["best_conf"] == 0.4
    )
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        a, b = m(x), again(x)
    assert torch.equal(a["pred_logits"], b["pred_logits"]) and torch.equal(a["pred_boxes"], b["pred_boxes"])


def test_deploy_keeps_outputs():
    torch.manual_seed(0)
    m = build_model("dfine-s", num_classes=3).eval()
    with (
        torch.no_grad()
    ):  # random init gives tied scores (every box = its anchor): perturb, as the parity data does
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(1, 3, 320, 320)
    with torch.no_grad():
        feats = m.encoder(m.backbone(x))
        before = m.decoder([f.clone() for f in feats])
        m.deploy()
        feats_deployed = m.encoder(m.backbone(x))
        after = m.decoder([f.clone() for f in feats])
    # BN folding changes only float rounding; the pruned decoder gives the same final layer
    for f, g in zip(feats, feats_deployed, strict=True):
        assert ((f - g).abs().max() / f.abs().max()) < 1e-4
    assert (before["pred_boxes"] - after["pred_boxes"]).abs().max() < 1e-5
    assert (before["pred_logits"] - after["pred_logits"]).abs().max() < 1e-4
    assert len(m.decoder.decoder.layers) == m.decoder.eval_idx + 1
