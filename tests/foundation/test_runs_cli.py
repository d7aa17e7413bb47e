"""`detcli runs list / show / compare / rm` through the CLI, on a run history written through the public store API."""

import json

import pytest
from click.testing import CliRunner

from detcli.cli import cli
from engine.config import load_config
from engine.runs import RunStore

CURVES = {
    "a": [(0.10, 0.05, 0.20), (0.40, 0.25, 0.45), (0.55, 0.31, 0.60)],
    "b": [(0.20, 0.08, 0.30), (0.62, 0.35, 0.66)],
}


@pytest.fixture()
def history(tmp_path):
    """Two finished demo runs that differ in exactly two config keys, with epochs and a benchmark row."""
    runs = tmp_path / "runs"
    configs = {
        "a": load_config("demo", overrides=["train.epochs=3"]),
        "b": load_config("demo", overrides=["train.epochs=2", "augs.mosaic.prob=0.25"]),
    }
    with RunStore.open(runs) as store:
        for name, cfg in configs.items():
            run = store.create_run(
                preset="demo",
                model=cfg.model.name,
                dataset="synthetic",
                config=cfg.model_dump(mode="json"),
                epochs=cfg.train.epochs,
                name=name,
            )
            for epoch, (m50, m5095, f1) in enumerate(CURVES[name]):
                store.log_epoch(run["id"], epoch, train_loss=2.0 - epoch, map50=m50, map50_95=m5095, f1=f1)
            best = max(range(len(CURVES[name])), key=lambda e: CURVES[name][e][0])
            store.mark_best(run["id"], best, CURVES[name][best][0])
            store.finish_run(run["id"])
        store.add_benchmark(
            {
                "run_id": store.get_run("b")["id"],
                "backend": "openvino",
                "device_profile": "cpu",
                "precision": "fp32",
                "imgsz": "256x256",
                "latency_mean": 15.0,
                "latency_p50": 14.5,
                "latency_p95": 17.0,
                "fps": 66.7,
            }
        )
    return runs


def _cli(runs, *args, input=None):
    return CliRunner().invoke(cli, ["--runs-dir", str(runs), "runs", *args], input=input)


def test_compare_prints_exactly_the_differing_keys_and_both_runs_metrics(history):
    r = _cli(history, "compare", "a", "b", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["config_diff"] == {"augs.mosaic.prob": [0.0, 0.25], "train.epochs": [3, 2]}
    assert out["metrics"]["a"]["best_map50"] == 0.55 and out["metrics"]["a"]["final_f1"] == 0.60
    assert out["metrics"]["b"]["best_map50"] == 0.62 and out["metrics"]["b"]["epochs"] == 2
    assert [row["backend"] for row in out["benchmarks"]["b"]] == ["openvino"] and out["benchmarks"]["a"] == []

    # the table a person reads: the two keys, no other config key, both runs' metrics with the winner marked
    r = _cli(history, "compare", "a", "b")
    assert r.exit_code == 0, r.output
    diff_table = r.output.split("metrics (winner")[0]
    keys = {line.split("│")[1].strip() for line in diff_table.splitlines() if line.count("│") >= 3}
    assert keys - {"key"} == {"augs.mosaic.prob", "train.epochs"}
    assert "0.6200 *" in r.output and "0.5500" in r.output  # best mAP50: b wins

    r = _cli(history, "compare", "a", "b", "--csv")
    assert r.exit_code == 0
    rows = [line.split(",") for line in r.output.splitlines()]
    assert rows[0] == ["key", "a", "b"] and [row[0] for row in rows[1:3]] == [
        "augs.mosaic.prob",
        "train.epochs",
    ]


def test_compare_needs_two_known_runs(history):
    r = _cli(history, "compare", "a")
    assert r.exit_code == 2 and "at least two runs" in r.output
    r = _cli(history, "compare", "a", "nope")
    assert r.exit_code != 0 and "nope" in r.output and "Traceback" not in r.output


def test_list_show_and_rm(history):
    r = _cli(history, "list", "--json")
    assert r.exit_code == 0
    assert [(x["name"], x["status"]) for x in json.loads(r.output)] == [("b", "finished"), ("a", "finished")]
    r = _cli(history, "show", "b", "--json")
    assert r.exit_code == 0
    shown = json.loads(r.output)
    assert shown["config_vs_preset"] == {"augs.mosaic.prob": [0.0, 0.25], "train.epochs": [20, 2]}
    run_dir = history / "b"
    assert run_dir.is_dir()
    r = _cli(history, "rm", "b", input="n\n")
    assert r.exit_code != 0 and run_dir.is_dir()  # declined: nothing deleted
    r = _cli(history, "rm", "b", "--yes")
    assert r.exit_code == 0 and not run_dir.is_dir()
    assert [x["name"] for x in json.loads(_cli(history, "list", "--json").output)] == ["a"]
