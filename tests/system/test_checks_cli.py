"""`detcli checks` through the CLI on this machine (no GPU here: it must say so and still exit 0)."""

import json

import pytest
from click.testing import CliRunner

from detcli.cli import cli


def _run(args, tmp_path, monkeypatch):
    monkeypatch.setenv("DETCLI_WEIGHTS_DIR", str(tmp_path / "weights"))
    return CliRunner().invoke(cli, ["--runs-dir", str(tmp_path / "runs"), "checks", *args])


def test_checks_json_reports_this_machine(tmp_path, monkeypatch):
    import torch

    r = _run(["--json"], tmp_path, monkeypatch)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["usable"] is True
    versions = {lib["name"]: lib["version"] for lib in rep["libraries"]}
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__
    assert any(d["backend"] == "openvino" and d["device"] == "CPU" for d in rep["devices"])
    assert {d["what"]: d["path"] for d in rep["disk"]}["weights cache"] == str(tmp_path / "weights")
    assert all(d["free_gb"] is not None and d["free_gb"] >= 0 for d in rep["disk"])
    if not torch.cuda.is_available():
        assert rep["amp"] == {"fp16": "no CUDA device", "bf16": "no CUDA device"}


def test_checks_without_gpu_says_so_and_exits_0(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    r = _run(["--no-amp"], tmp_path, monkeypatch)
    assert r.exit_code == 0, r.output
    assert "no CUDA GPU visible" in r.output
    assert "usable: yes" in r.output


def test_missing_optional_backend_is_named_with_its_install_command(tmp_path, monkeypatch):
    from engine.system import checks

    real = checks.library_version
    monkeypatch.setattr(checks, "library_version", lambda m: None if m == "tensorrt" else real(m))
    r = _run(["--no-amp"], tmp_path, monkeypatch)
    assert r.exit_code == 0, r.output
    assert "missing: tensorrt: pip install 'detcli[tensorrt]'" in r.output


@pytest.mark.parametrize("required", ["openvino", "onnxruntime"])
def test_missing_required_library_exits_1(tmp_path, monkeypatch, required):
    from engine.system import checks

    real = checks.library_version
    monkeypatch.setattr(checks, "library_version", lambda m: None if m == required else real(m))
    r = _run(["--json", "--no-amp"], tmp_path, monkeypatch)
    assert r.exit_code == 1
    rep = json.loads(r.output)
    assert rep["usable"] is False and required in [m["name"] for m in rep["missing"]]
