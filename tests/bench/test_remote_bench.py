"""`detcli bench --host` against a real sshd on 127.0.0.1 (this machine plays the target), the bundle + import
round trip, and the one-line errors for an unreachable host and a missing runtime."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from detcli.cli import cli
from engine.runs import RunStore

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
pytestmark = pytest.mark.skipif(
    SSHD is None or shutil.which("ssh") is None,
    reason="openssh-server / openssh-client not installed (apt-get install openssh-server; see `just setup`)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd on a free port with throw-away host and user keys; yields an ssh config naming it `target`."""
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key", "stranger_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        # the runner's environment comes from the login; keep the test's PATH so `python3` means the same
        "PermitUserEnvironment no\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation folder sshd insists on
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE, text=True
    )
    user = (
        os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    )
    cfg = d / "ssh_config"
    cfg.write_text(
        f"Host target\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d / 'user_key'}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        f"Host stranger\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d / 'stranger_key'}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        f"Host deadhost\n  HostName 127.0.0.1\n  Port {_free_port()}\n"
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.skip(f"sshd could not start here: {proc.stderr.read()[-300:]}")
        time.sleep(0.1)
    yield cfg
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ov_model(tmp_path_factory):
    """A small random D-FINE-n exported to OpenVINO IR (320x320)."""
    import torch

    from engine.export.run_export import export_checkpoint
    from engine.models import build_model, save_checkpoint

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("model")
    m = build_model("dfine-n", num_classes=3, eval_spatial_size=(320, 320))
    ckpt = save_checkpoint(
        d / "m.pt",
        m,
        class_names=["a", "b", "c"],
        imgsz=(320, 320),
        extra={"keep_ratio": True, "best_conf": 0.25},
    )
    return export_checkpoint(ckpt, "openvino").path


@pytest.fixture(scope="module")
def images(data_dir):
    return sorted((data_dir / "visdrone-det-mini").rglob("*.jpg"))[:4]


def _images_dir(tmp_path, images) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    for p in images:
        shutil.copy2(p, d / p.name)
    return d


def _bench_rows(runs_dir: Path) -> list[dict]:
    store = RunStore.open(runs_dir)
    return [dict(r) for r in store.conn.execute("SELECT * FROM benchmarks").fetchall()]


def _bench(model, tmp_path, images, *args: str):
    """`detcli bench MODEL ARGS --images DIR` on a copy of `images`, with few runs (the numbers are not checked)."""
    argv = [
        "bench",
        str(model),
        *args,
        "--runs",
        "4",
        "--warmup",
        "1",
        "--images",
        str(_images_dir(tmp_path, images)),
    ]
    return CliRunner().invoke(cli, argv)


def _remote(sshd, python: str = sys.executable) -> list[str]:
    return ["--ssh-config", str(sshd), "--remote-python", python]


def test_remote_bench_of_openvino_export_is_recorded_with_host(sshd, ov_model, images, runs_dir, tmp_path):
    res = _bench(ov_model, tmp_path, images, "--device", "n100", "--host", "target", *_remote(sshd))
    assert res.exit_code == 0, res.output
    assert "target" in res.output and "OpenVINO devices on the target: CPU" in res.output
    rows = _bench_rows(runs_dir)
    assert len(rows) == 1
    row = rows[0]
    assert row["host"] == "target" and row["backend"] == "openvino" and row["device_profile"] == "n100"
    assert row["latency_mean"] > 0 and row["host_cpu"]
    breakdown = json.loads(row["breakdown"])
    assert breakdown["device"] == "CPU" and "CPU" in breakdown["openvino_devices"]  # no iGPU here: fell back
    assert "no Intel GPU visible" in res.output


def test_unreachable_host_is_one_line_and_records_nothing(sshd, ov_model, images, runs_dir, tmp_path):
    res = _bench(ov_model, tmp_path, images, "--host", "deadhost", "--ssh-config", str(sshd))
    assert res.exit_code == 1
    assert "deadhost: cannot reach the host" in res.output and "Traceback" not in res.output
    assert _bench_rows(runs_dir) == []


def test_auth_failure_is_one_line(sshd, ov_model, images, runs_dir, tmp_path):
    res = _bench(ov_model, tmp_path, images, "--host", "stranger", "--ssh-config", str(sshd))
    assert res.exit_code == 1
    assert "stranger: authentication failed" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    "script, timeout, expected",
    [
        ("echo boom >&2; exit 2", "60", "the benchmark runner failed (exit 2): boom"),
        ("sleep 30", "3", "no answer within 3 s"),
    ],
    ids=["crash", "timeout"],
)
def test_runner_crash_and_timeout_are_one_line(
    sshd, ov_model, images, runs_dir, tmp_path, script, timeout, expected
):
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    res = _bench(
        ov_model, tmp_path, images, "--host", "target", *_remote(sshd, str(fake)), "--remote-timeout", timeout
    )
    assert res.exit_code == 1, res.output
    assert expected in res.output and "Traceback" not in res.output
    assert _bench_rows(runs_dir) == []


def test_missing_runtime_names_the_install_command(sshd, ov_model, images, runs_dir, tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    res = _bench(ov_model, tmp_path, images, "--host", "target", *_remote(sshd, str(venv / "bin" / "python")))
    assert res.exit_code == 1, res.output
    assert "lacks numpy" in res.output and "openvino" in res.output and "pip install" in res.output
    assert "--setup" in res.output
    assert _bench_rows(runs_dir) == []


def test_bundle_then_import_round_trip(ov_model, images, runs_dir, tmp_path):
    out = tmp_path / "n100.zip"
    res = _bench(ov_model, tmp_path, images, "--device", "n100", "--bundle", str(out))
    assert res.exit_code == 0, res.output
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(out).extractall(unpacked)
    run_sh = unpacked / "detcli-bench" / "run.sh"
    subprocess.run(["sh", str(run_sh)], check=True, env={**os.environ, "PYTHON": sys.executable})
    results = unpacked / "detcli-bench" / "results.json"
    data = json.loads(results.read_text())
    assert set(data) >= {"schema", "host_cpu", "host_gpu", "openvino_devices", "rows", "meta"}
    assert _bench_rows(runs_dir) == []  # writing the bundle records nothing
    res = CliRunner().invoke(cli, ["bench", "import", str(results)])
    assert res.exit_code == 0, res.output
    rows = _bench_rows(runs_dir)
    assert len(rows) == 1 and rows[0]["host"] == "bundle" and rows[0]["device_profile"] == "n100"


def test_import_of_a_foreign_json_is_a_clear_error(runs_dir, tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('{"hello": 1}')
    res = CliRunner().invoke(cli, ["bench", "import", str(bad)])
    assert res.exit_code == 1 and "not a detcli bench result" in res.output


@pytest.mark.slow
def test_remote_compare_records_every_export_and_runs_show_names_the_host(sshd, images, runs_dir, tmp_path):
    import torch

    from engine.config import load_config
    from engine.models import build_model, save_checkpoint

    cfg = load_config("demo")
    with RunStore.open(runs_dir) as store:
        run = store.create_run(
            preset="demo",
            model="dfine-n",
            dataset="synthetic",
            config=cfg.model_dump(mode="json"),
            epochs=1,
            name="n100run",
        )
    torch.manual_seed(0)
    m = build_model("dfine-n", num_classes=3, eval_spatial_size=(320, 320))
    ckpt = save_checkpoint(
        tmp_path / "best.pt",
        m,
        class_names=["a", "b", "c"],
        imgsz=(320, 320),
        extra={"keep_ratio": True, "best_conf": 0.25, "run_name": "n100run"},
    )
    res = _bench(ckpt, tmp_path, images, "--device", "n100", "--compare", "--host", "target", *_remote(sshd))
    assert res.exit_code == 0, res.output
    assert "x fastest" in res.output
    rows = RunStore.open(runs_dir).benchmarks(run["id"])
    assert sorted(r["backend"] for r in rows) == ["onnx", "openvino"]
    assert all(r["host"] == "target" for r in rows)
    shown = CliRunner().invoke(cli, ["runs", "show", "n100run"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "target:" in shown.output and "CPU" in shown.output
