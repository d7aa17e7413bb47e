"""Loading official layouts: stage-1 backbones, whole checkpoints, refusals, and COCO-named classes' head rows."""

from __future__ import annotations

import pytest
import torch

from engine.models import build_model, load_checkpoint
from engine.models.checkpoint import MIN_FILL
from engine.weights import WeightsMismatch
from engine.weights.registry import class_set

CLASS_DEPENDENT = {
    "decoder.denoising_class_embed.weight",
    "decoder.enc_score_head.weight",
    "decoder.enc_score_head.bias",
    *(f"decoder.dec_score_head.{i}.{p}" for i in range(3) for p in ("weight", "bias")),
}


def test_stage1_backbone_fills_every_backbone_tensor(nano_files):
    m = build_model("dfine-n", num_classes=3)
    r = load_checkpoint(m, nano_files["PPHGNetV2_B0_stage1.pth"], part="backbone", min_fill=MIN_FILL)
    assert r.layout == "hgnetv2-stage1"
    weights = [
        k for k in m.state_dict() if k.startswith("backbone.") and not k.endswith("num_batches_tracked")
    ]
    assert r.filled == r.target == len(weights) > 250
    file = torch.load(nano_files["PPHGNetV2_B0_stage1.pth"], weights_only=True)
    assert torch.equal(m.state_dict()["backbone.stem.stem1.conv.weight"], file["stem.stem1.conv.weight"])


def test_stage1_backbone_as_whole_model_is_refused(nano_files):
    m = build_model("dfine-n", num_classes=3)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(WeightsMismatch, match=r"backbone only: give it as model\.backbone_pretrained"):
        load_checkpoint(m, nano_files["PPHGNetV2_B0_stage1.pth"], min_fill=MIN_FILL)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # refused before loading


def test_unrelated_file_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(10, 8)}, path)
    for part in ("model", "backbone"):
        with pytest.raises(WeightsMismatch, match="fills 0 of the"):
            load_checkpoint(build_model("dfine-n", num_classes=3), path, part=part, min_fill=MIN_FILL)


def test_detector_file_as_backbone_takes_its_backbone(nano_files):
    m = build_model("dfine-n", num_classes=3)
    r = load_checkpoint(m, nano_files["ema_layout.pth"], part="backbone", min_fill=MIN_FILL)
    assert r.layout == "official-ema" and r.filled == r.target and not r.unexpected


def test_coco_checkpoint_to_three_named_classes_keeps_their_rows(nano_files):
    names = ["person", "car", "dog"]
    coco = list(class_set("coco")[0])
    rows = [coco.index(n) for n in names]
    m = build_model("dfine-n", num_classes=3)
    r = load_checkpoint(m, nano_files["dfine_n_coco.pth"], class_names=names, min_fill=MIN_FILL)
    assert r.layout == "official"
    assert set(r.reinitialised) == CLASS_DEPENDENT  # exactly the class-dependent tensors
    assert not r.unexpected and not r.missing and r.fill > 0.98
    assert r.class_rows == dict(zip(names, rows, strict=True))
    file = torch.load(nano_files["dfine_n_coco.pth"], weights_only=True)["model"]
    own = m.state_dict()
    for key in CLASS_DEPENDENT:
        assert torch.equal(own[key][:3], file[key][rows]), key
    assert torch.equal(
        own["decoder.denoising_class_embed.weight"][-1], file["decoder.denoising_class_embed.weight"][-1]
    )


def test_classes_coco_does_not_name_stay_initialised(nano_files):
    torch.manual_seed(1)
    m = build_model("dfine-n", num_classes=2)
    init = m.state_dict()["decoder.enc_score_head.weight"].clone()
    r = load_checkpoint(m, nano_files["dfine_n_coco.pth"], class_names=["Person", "crack"], min_fill=MIN_FILL)
    assert r.class_rows == {"Person": 0}
    w = m.state_dict()["decoder.enc_score_head.weight"]
    assert torch.equal(w[1], init[1]) and not torch.equal(w[0], init[0])


def test_file_without_batchnorm_counters_still_fills_everything(nano_files, tmp_path):
    # converted ImageNet files and frozen-norm (L/X) checkpoints carry no num_batches_tracked
    sd = torch.load(nano_files["PPHGNetV2_B0_stage1.pth"], weights_only=True)
    path = tmp_path / "PPHGNetV2_B0_stage1.pth"
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    r = load_checkpoint(build_model("dfine-n", num_classes=3), path, part="backbone", min_fill=MIN_FILL)
    assert r.fill == 1.0 and not r.missing


def test_objects365_head_rows_sit_one_row_down(tmp_path):
    # the official Objects365 head has 366 rows; category k of the names sits at row k + 1
    torch.manual_seed(2)
    sd = build_model("dfine-n", num_classes=366).state_dict()
    path = tmp_path / "dfine_n_obj365.pth"
    torch.save({"model": sd}, path)
    names = list(class_set("obj365")[0])
    m = build_model("dfine-n", num_classes=2)
    r = load_checkpoint(m, path, class_names=["car", "Dog"], min_fill=MIN_FILL)
    rows = [names.index("Car") + 1, names.index("Dog") + 1]
    assert list(r.class_rows.values()) == rows
    assert torch.equal(
        m.state_dict()["decoder.enc_score_head.weight"], sd["decoder.enc_score_head.weight"][rows]
    )


def test_not_a_checkpoint_is_a_mismatch_not_a_traceback(tmp_path):
    from engine.weights.pretrained import load_pretrained

    bad = tmp_path / "weights.pth"
    bad.write_text("<html>not found</html>")
    with pytest.raises(WeightsMismatch, match="not a PyTorch checkpoint"):
        load_pretrained(build_model("dfine-n", num_classes=2), str(bad), progress=False)
