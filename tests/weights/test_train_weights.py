"""`detcli train` with pretrained weights: loaded and recorded, or refused before training (exit 2, one line)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from detcli.cli import cli
from engine.data.synth import generate
from engine.runs import RunStore

TINY = [
    "data.imgsz=128",
    "model.num_queries=30",
    "train.batch=4",
    "train.workers=0",
    "train.time_hours=null",
    "train.epochs=1",
    "train.warmup_steps=2",
    "data.synth=null",
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("tiny") / "ds", images=12, size=128, seed=1)


def _train(tmp_path, data, *over):
    args = [
        "--runs-dir",
        str(tmp_path / "runs"),
        "train",
        "--preset",
        "demo",
        f"data.root={data}",
        *TINY,
        *over,
    ]
    return CliRunner().invoke(cli, args)


@pytest.mark.slow
def test_backbone_file_loads_every_tensor_and_is_recorded(tmp_path, tiny_data, nano_files, weights_cache):
    stage1 = nano_files["PPHGNetV2_B0_stage1.pth"]
    r = _train(tmp_path, tiny_data, f"model.backbone_pretrained={stage1}")
    assert r.exit_code == 0, r.output
    n = sum(not k.endswith("num_batches_tracked") for k in torch.load(stage1, weights_only=True))
    assert f"(filled {n} of the {n} of the backbone)" in r.output
    with RunStore.open(tmp_path / "runs") as store:
        run = store.list_runs()[0]
        assert any(f"filled {n} of {n} backbone tensors" in e["message"] for e in store.events(run["id"]))
        (art,) = store.artifacts(run["id"], "pretrained")
        assert art["meta"]["layout"] == "hgnetv2-stage1" and art["meta"]["loaded"] == n
    show = CliRunner().invoke(cli, ["--runs-dir", str(tmp_path / "runs"), "runs", "show", run["name"]])
    assert f"filled {n} of {n} backbone tensors" in show.output
    shown = json.loads(
        CliRunner()
        .invoke(cli, ["--runs-dir", str(tmp_path / "runs"), "runs", "show", run["name"], "--json"])
        .output
    )
    assert shown["artifacts"][0]["meta"]["sha256"] == art["meta"]["sha256"]


@pytest.mark.slow
def test_backbone_file_as_pretrained_is_refused_exit_2(tmp_path, tiny_data, nano_files, weights_cache):
    r = _train(tmp_path, tiny_data, f"model.pretrained={nano_files['PPHGNetV2_B0_stage1.pth']}")
    assert r.exit_code == 2
    assert "backbone only: give it as model.backbone_pretrained" in r.output
    assert ("Traceback" not in r.output and r.exception is None) or isinstance(r.exception, SystemExit)


@pytest.mark.slow
def test_unrelated_file_is_refused_exit_2(tmp_path, tiny_data, weights_cache):
    bad = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, bad)
    r = _train(tmp_path, tiny_data, f"model.pretrained={bad}")
    assert r.exit_code == 2 and "fills 0 of the" in r.output
    assert "Traceback" not in r.output
    with RunStore.open(tmp_path / "runs") as store:
        run = store.list_runs()[0]
        assert run["status"] == "failed" and not store.epochs(run["id"])  # refused before any epoch


def test_misspelt_pretrained_name_exit_2(tmp_path, tiny_data, weights_cache):
    r = _train(tmp_path, tiny_data, "model.pretrained=dfine-n-cocoo")
    assert r.exit_code == 2 and "did you mean dfine-n-coco" in r.output


def test_runs_compare_says_what_each_run_started_from(tmp_path):
    runs = tmp_path / "runs"
    with RunStore.open(runs) as store:
        a = store.create_run(preset="demo", model="dfine-n", dataset=None, config={}, epochs=1, device="cpu")
        b = store.create_run(preset="demo", model="dfine-n", dataset=None, config={}, epochs=1, device="cpu")
        store.add_artifact(a["id"], "pretrained", "/c/PPHGNetV2_B0_stage1.pth", {"name": "hgnetv2-b0"})
    r = CliRunner().invoke(cli, ["--runs-dir", str(runs), "runs", "compare", a["name"], b["name"], "--json"])
    metrics = json.loads(r.output)["metrics"]
    assert metrics[a["name"]]["weights"] == "hgnetv2-b0" and metrics[b["name"]]["weights"] == "random"
    r = CliRunner().invoke(cli, ["--runs-dir", str(runs), "runs", "compare", a["name"], b["name"]])
    assert "started from" in r.output and "hgnetv2-b0" in r.output
