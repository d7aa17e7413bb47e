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
    results = model.stream(video)
    assert iter(results) is results  # a generator: frames are read as they are consumed
    results = list(results)
    assert [r.frame for r in results] == list(range(len(frames)))
    assert all(r.detections is not None for r in results)
    with pytest.raises(TypeError, match="stream"):
        model.predict(video)

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
def test_docs_python_examples_run(trained):
    """Every ```python block of docs/python-api.md, in order, on the demo data with tiny settings."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "python-api.md").read_text(), re.S)
    assert len(blocks) >= 3
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
