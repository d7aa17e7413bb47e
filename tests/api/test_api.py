"""The Python API: train from Python (recorded like a CLI run), load, predict on paths/arrays/videos, docs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import engine
from detcli.cli import cli
from engine.data.synth import generate

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "data.imgsz": 128,
    "model.num_queries": 30,
    "train.batch": 4,
    "train.workers": 0,
    "train.time_hours": "null",
    "train.warmup_steps": 5,
    "train.ema_warmups": 20,
    "data.synth": "null",
}


def test_engine_imports_neither_click_nor_textual():
    """No engine module imports click or textual (sqlite-utils, a dependency, brings click along by itself)."""
    import ast

    for f in (REPO / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] in ("click", "textual", "detcli") for n in names), f
    code = (
        "import sys, engine, engine.api, engine.runs.launch; engine.load; assert 'textual' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_commands_hold_no_run_orchestration():
    for f in (REPO / "detcli" / "commands").glob("*.py"):
        text = f.read_text()
        for word in ("subprocess", "torch.distributed", "create_run(", "resume_run("):
            assert word not in text, f"{f.name} still does {word}"


def test_load_of_unknown_thing_is_a_typed_error(tmp_path):
    with pytest.raises(engine.ModelNotFound, match="neither a model file"):
        engine.load("no-such-model", runs_dir=tmp_path)
    with pytest.raises(engine.ModelNotFound, match="model not found"):
        engine.load(tmp_path / "missing.onnx")
    r = CliRunner().invoke(cli, ["--runs-dir", str(tmp_path), "predict", "nothing-here", str(tmp_path)])
    assert r.exit_code == 1 and "neither a model file" in r.output


def _official_nano(cache: Path) -> None:
    """dfine-n with random weights saved in the official layout under its registry file name, in the cache."""
    import torch

    from engine.models import build_model

    torch.manual_seed(0)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"model": build_model("dfine-n", num_classes=80).state_dict()}, cache / "dfine_n_coco.pth")


def test_load_takes_a_weights_registry_name(tmp_path, monkeypatch):
    from engine.weights.registry import class_set

    monkeypatch.setenv("DETCLI_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DETCLI_WEIGHTS_MIRROR", raising=False)
    _official_nano(tmp_path / "cache")
    model = engine.load("dfine-n-coco", runs_dir=tmp_path / "runs", conf=0.0)
    coco = list(class_set("coco")[0])
    assert model.names[: len(coco)] == coco
    image = np.random.default_rng(0).integers(0, 255, (180, 240, 3), np.uint8)
    dets = model.predict(image)
    assert len(dets) > 0 and dets.boxes.shape[1] == 4
    assert (dets.boxes[:, [0, 2]] <= 240 + 1).all() and (dets.boxes[:, [1, 3]] <= 180 + 1).all()
    assert set(dets.names) <= set(coco)
    with pytest.raises(engine.UsageProblem, match="backbone_pretrained"):
        engine.load("hgnetv2-b0", runs_dir=tmp_path / "runs")


def test_train_without_preset_is_a_usage_problem(tmp_path):
    with pytest.raises(engine.UsageProblem, match="--preset"):
        engine.train(runs_dir=tmp_path)


def test_detections_conversions_and_drawing():
    det = engine.Detections(
        np.array([[10, 20, 30, 60], [0, 0, 100, 50]], np.float32),
        np.array([0.9, 0.4], np.float32),
        np.array([1, 0], np.int64),
        names=["car", "person"],
    )
    assert det.to_yolo(100, 100).splitlines() == [
        "1 0.200000 0.400000 0.200000 0.400000",
        "0 0.500000 0.250000 1.000000 0.500000",
    ]
    coco = det.to_coco(7)
    assert coco[0] == {
        "image_id": 7,
        "category_id": 1,
        "bbox": [10.0, 20.0, 20.0, 40.0],
        "score": coco[0]["score"],
    }
    assert coco[0]["score"] == pytest.approx(0.9)
    img = np.zeros((100, 100, 3), np.uint8)
    drawn = det.draw(img)
    assert drawn.shape == img.shape and drawn.any() and not img.any()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    data = generate(base / "ds", images=16, size=128, seed=3)
    steps, epochs = [], []
    run = engine.train(
        preset="demo",
        overrides={"data.root": str(data), "train.epochs": 1, **TINY},
        runs_dir=base / "runs",
        name="py-1",
        on_step=steps.append,
        on_epoch=epochs.append,
        echo=lambda line: None,
    )
    return {"base": base, "data": data, "runs": base / "runs", "run": run, "steps": steps, "epochs": epochs}


@pytest.mark.slow
def test_python_run_is_recorded_like_a_cli_run(trained):
    run = trained["run"]
    assert run.status == "finished" and run.best_path.is_file()
    assert trained["steps"] and all({"step", "loss"} <= s.keys() for s in trained["steps"])
    assert [e["epoch"] for e in trained["epochs"]] == [0] and "map50" in trained["epochs"][0]
    r = CliRunner().invoke(cli, ["--runs-dir", str(trained["runs"]), "runs", "list", "--json"])
    listed = json.loads(r.output)
    assert listed[0]["name"] == "py-1" and listed[0]["status"] == "finished"

    import asyncio

    from detcli.tui.app import DashboardApp

    async def drive():
        app = DashboardApp(trained["runs"], interval=0.2)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause(0.5)
            return "\n".join(str(w.render()) for w in app.query("*") if hasattr(w, "render"))

    screen = asyncio.run(drive())
    assert "py-1" in screen


def _video(path: Path, frames: list[np.ndarray]) -> Path:
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for f in frames:
        wr.write(f)
    wr.release()
    return path


@pytest.mark.slow
def test_predict_path_array_and_video(trained):
    model = engine.load("py-1", runs_dir=trained["runs"], conf=0.01)
    images = sorted((trained["data"] / "images").rglob("*.jpg"))[:5]
    by_path = model.predict(images[0])
    by_array = model.predict(cv2.imread(str(images[0])))
    np.testing.assert_array_equal(by_path.boxes, by_array.boxes)
    np.testing.assert_array_equal(by_path.scores, by_array.scores)
    np.testing.assert_array_equal(by_path.labels, by_array.labels)
    assert by_path.names == model.names

    frames = [cv2.imread(str(p)) for p in images]
    video = _video(trained["base"] / "clip.mp4", frames)
    results = model.predict(video)
    assert iter(results) is results  # a generator: frames are read as they are consumed
    results = list(results)
    assert [r.frame for r in results] == list(range(len(frames)))
    assert all(r.detections is not None for r in results)
    streamed = list(model.stream(video))
    assert [len(r.detections) for r in streamed] == [len(r.detections) for r in results]

    out = trained["base"] / "pred"
    r = CliRunner().invoke(
        cli,
        [
            "--runs-dir",
            str(trained["runs"]),
            "predict",
            "py-1",
            str(video),
            "--out",
            str(out),
            "--save-images",
        ],
    )
    assert r.exit_code == 0, r.output
    assert len(list((out / "labels").glob("clip_*.txt"))) == len(frames)
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    cap.release()


@pytest.mark.slow
def test_evaluate_is_the_eval_command(trained):
    """engine.evaluate gives `detcli eval`'s numbers (the command calls it) and names what it scored."""
    runs = trained["runs"]
    res = engine.evaluate("py-1", split="val", runs_dir=runs, echo=lambda line: None)
    r = CliRunner().invoke(cli, ["--runs-dir", str(runs), "eval", "py-1", "--json"])
    assert r.exit_code == 0, r.output
    cli_res = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("map50_95", "map50", "precision", "recall", "f1", "conf"):
        assert getattr(res, key) == pytest.approx(cli_res[key]), key
    assert res.run == "py-1" and res.split == "val" and res.backend == "torch"
    with pytest.raises(engine.EvaluationFailed):
        engine.evaluate(
            "py-1", runs_dir=runs, data_root=trained["base"] / "no-such-data", echo=lambda line: None
        )


@pytest.mark.slow
def test_export_says_the_precision_it_runs_in(trained):
    """engine.export and `detcli export` report the precision OpenVINO really compiles to here (the precision
    rule: fp16 only on a CPU with native f16), not the one asked for; the run records both."""
    import openvino as ov

    from engine.infer.precision import choose_precision, device_capabilities

    runs = trained["runs"]
    xml = engine.export("py-1", format="openvino", half=True, runs_dir=runs)
    expected = {"f16": "fp16", "f32": "fp32"}[choose_precision("f16", device_capabilities(ov.Core(), "CPU"))]
    assert xml.path.suffix == ".xml" and xml.precision == "fp16"
    assert (xml.runs_on, xml.runs_precision) == ("CPU", expected)
    assert (xml.runs_note is None) == (expected == "fp16")
    r = CliRunner().invoke(
        cli,
        [
            "--runs-dir",
            str(runs),
            "export",
            "py-1",
            "--format",
            "openvino",
            "--half",
            "--out",
            str(runs / "x"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert f"runs {expected} on CPU" in r.output
    assert ("(file fp16)" in r.output) == (expected != "fp16")
    with pytest.raises(engine.UsageProblem, match="already an export"):
        engine.export(xml.path, format="onnx", runs_dir=runs)

    show = json.loads(
        CliRunner().invoke(cli, ["--runs-dir", str(runs), "runs", "show", "py-1", "--json"]).output
    )
    assert any(
        a["kind"] == "export" and a["meta"].get("runs_precision") == expected for a in show["artifacts"]
    )


@pytest.mark.slow
def test_bench_times_and_records_each_backend(trained):
    runs = trained["runs"]
    table = engine.bench(
        "py-1",
        device="cpu",
        runs_dir=runs,
        backends=["torch", "onnx"],
        runs=3,
        warmup=1,
        echo=lambda line: None,
    )
    assert [row.backend for row in table] == ["torch", "onnx"]
    assert all(row.mean_ms > 0 and row.fps > 0 for row in table)
    show = json.loads(
        CliRunner().invoke(cli, ["--runs-dir", str(runs), "runs", "show", "py-1", "--json"]).output
    )
    assert {b["backend"] for b in show["benchmarks"]} >= {"torch", "onnx"}
    with pytest.raises(engine.UsageProblem, match="needs an NVIDIA GPU"):
        engine.bench("py-1", device="rtx3060", runs_dir=runs, echo=lambda line: None)


@pytest.mark.slow
def test_docs_python_examples_run(trained, tmp_path, monkeypatch):
    """Every ```python block of docs/python-api.md, in order, on the demo data with tiny settings (the registry
    detector is our dfine-n in the official layout, put in a fresh weights cache)."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "python-api.md").read_text(), re.S)
    calls = "".join(blocks)
    for call in (
        "engine.train(",
        "engine.load(",
        ".predict(",
        ".stream(",
        "engine.evaluate(",
        "engine.export(",
    ):
        assert call in calls, call
    assert "engine.bench(" in calls and 'engine.load("dfine-n-coco")' in calls
    monkeypatch.setenv("DETCLI_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DETCLI_WEIGHTS_MIRROR", raising=False)
    _official_nano(tmp_path / "cache")
    images = sorted((trained["data"] / "images").rglob("*.jpg"))[:3]
    runs = trained["base"] / "docs-runs"
    ns = {
        "DATA": str(trained["data"]),
        "RUNS": runs,
        "TINY": TINY,
        "IMAGE": images[0],
        "VIDEO": _video(trained["base"] / "docs.mp4", [cv2.imread(str(p)) for p in images]),
        "OUT": trained["base"],
    }
    for block in blocks:
        exec(compile(block, "docs/python-api.md", "exec"), ns)
    assert (trained["base"] / "annotated.mp4").is_file()
