"""`detcli bench --host` against a real sshd on 127.0.0.1 (this machine plays the target), the bundle + import
round trip, and the one-line errors for an unreachable host and a missing runtime."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
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
    (d / "home").mkdir()
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        # the runner's environment comes from the login; keep the test's PATH so `python3` means the same
        "PermitUserEnvironment no\nSubsystem sftp internal-sftp\n"
        # a throw-away home for the target (the --setup venv goes there, never into the real one), and the
        # package index the --setup test points the target's pip at (its client sends PIP_* with SetEnv)
        f"SetEnv HOME={d / 'home'}\nAcceptEnv PIP_*\n"
    )
    # the privilege-separation folder sshd insists on as root; an ordinary user cannot make it and sshd then runs
    # without it (or fails to start, and the fixture skips)
    with contextlib.suppress(PermissionError):
        Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE, text=True
    )
    user = pwd.getpwuid(os.getuid()).pw_name  # who sshd authenticates; $USER may name someone else (sudo, su)
    cfg = d / "ssh_config"
    cfg.write_text(
        f"Host target\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d / 'user_key'}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        f"Host stranger\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d / 'stranger_key'}\n"
        "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        f"Host deadhost\n  HostName 127.0.0.1\n  Port {_free_port()}\n"
    )
    deadline = time.monotonic() + 60  # a loaded box can take a while to start it
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.skip(f"sshd could not start here: {proc.stderr.read()[-300:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within 60 s")
        time.sleep(0.1)
    yield cfg
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """What every test here reuses instead of exporting again: a synthetic dataset, a run in a template history,
    its checkpoint (random D-FINE-n at 128x128, 30 queries) and its FP32 ONNX and OpenVINO exports as the run's
    artifacts (so `--device cpu` benchmarks of the run find them)."""
    import torch

    from engine.config import load_config
    from engine.data.synth import CLASSES, generate
    from engine.export.openvino_export import export_openvino
    from engine.export.run_export import export_checkpoint
    from engine.models import build_model, save_checkpoint

    root = tmp_path_factory.mktemp("project")
    data = generate(root / "ds", images=15, size=128, seed=3)
    cfg = load_config("demo", overrides=[f"data.root={data}", "data.imgsz=128", "model.num_queries=30"])
    with RunStore.open(root / "runs") as store:
        run = store.create_run(
            preset="demo",
            model="dfine-n",
            dataset="synthetic",
            config=cfg.model_dump(mode="json"),
            epochs=1,
            name="n100run",
        )
        torch.manual_seed(0)
        m = build_model("dfine-n", num_classes=5, eval_spatial_size=(128, 128), num_queries=30)
        ckpt = save_checkpoint(
            Path(run["dir"]) / "best.pt",
            m,
            class_names=list(CLASSES),
            imgsz=(128, 128),
            extra={"keep_ratio": False, "best_conf": 0.25, "run_name": "n100run"},
        )
        onnx = export_checkpoint(ckpt, "onnx")
        # the IR from that same ONNX file (export_checkpoint would trace the model a second time)
        xml = export_openvino(
            onnx.path, ckpt.parent / "best-128x128-fp32.xml", {**onnx.metadata, "format": "openvino"}
        )
        exports = {"onnx-fp32": onnx.path, "openvino-fp32": xml}
        for key, path in exports.items():
            fmt, precision = key.split("-")
            store.add_artifact(
                run["id"],
                "export",
                path,
                {"format": fmt, "precision": precision, "imgsz": [128, 128], "dynamic": False},
            )
    return {"runs": root / "runs", "ckpt": ckpt, "data": data, "cfg": cfg, **exports}


@pytest.fixture()
def history(project, runs_dir):
    """This test's run history: a copy of the project's (the run and its exports, no benchmarks yet)."""
    for f in project["runs"].glob("detcli.db*"):
        shutil.copy2(f, runs_dir / f.name)
    return runs_dir


@pytest.fixture(scope="module")
def ov_model(project):
    return project["openvino-fp32"]


@pytest.fixture(scope="module")
def images(data_dir):
    return sorted((data_dir / "visdrone-det-mini").rglob("*.jpg"))[:4]


def _images_dir(tmp_path, images) -> Path:
    d = tmp_path / "imgs"
    d.mkdir(parents=True)
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


def test_accuracy_of_an_export_file_needs_a_run(sshd, ov_model, images, runs_dir, tmp_path):
    res = _bench(ov_model, tmp_path, images, "--accuracy", "--host", "target", *_remote(sshd))
    assert res.exit_code == 2 and "--accuracy needs a run" in res.output


def test_bundle_with_accuracy_then_import_round_trip(project, history, images, tmp_path):
    from engine.bench.accuracy import score_remote

    out = tmp_path / "n100.zip"
    res = _bench(
        project["ckpt"],
        tmp_path,
        images,
        "--device",
        "cpu",
        "--backend",
        "openvino",
        "--accuracy",
        "--bundle",
        str(out),
    )
    assert res.exit_code == 0, res.output
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(out).extractall(unpacked)
    n_val = len(list((unpacked / "detcli-bench" / "val").iterdir()))
    assert n_val == 3  # the whole val split (15 images, 20 %), not only the images the benchmark times
    run_sh = unpacked / "detcli-bench" / "run.sh"
    subprocess.run(["sh", str(run_sh)], check=True, env={**os.environ, "PYTHON": sys.executable})
    results = unpacked / "detcli-bench" / "results.json"
    data = json.loads(results.read_text())
    assert set(data) >= {"schema", "host_cpu", "host_gpu", "openvino_devices", "rows", "meta", "accuracy"}
    assert _bench_rows(history) == []  # writing the bundle records nothing
    # the target's detections, scored from results.json alone, are what local eval gives for that export
    there = score_remote(data["meta"]["accuracy"], data["accuracy"][0])
    here = _evaluated_here(project, "openvino", tmp_path)
    assert there.to_dict() == here.to_dict()
    assert len(there.per_image) == n_val and there.sweep["conf"]  # detections were there to score
    res = CliRunner().invoke(cli, ["bench", "import", str(results)])
    assert res.exit_code == 0, res.output
    rows = _bench_rows(history)
    assert len(rows) == 1 and rows[0]["host"] == "bundle" and rows[0]["device_profile"] == "cpu"
    assert json.loads(rows[0]["breakdown"])["f1"] == there.f1


def test_import_of_a_foreign_json_is_a_clear_error(runs_dir, tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('{"hello": 1}')
    res = CliRunner().invoke(cli, ["bench", "import", str(bad)])
    assert res.exit_code == 1 and "not a detcli bench result" in res.output


def _evaluated_here(project, backend: str, tmp_path):
    """What `detcli eval` / local `bench --accuracy` score for the project's export of `backend`."""
    from engine.evaluation import evaluate_target
    from engine.runs.targets import ResolvedTarget

    cfg, path = project["cfg"], project[f"{backend}-fp32"]
    return evaluate_target(ResolvedTarget(path, backend, cfg, None, tmp_path), cfg, "val", backend=backend)


def test_remote_compare_with_accuracy_records_every_export_and_runs_show_names_the_host(
    sshd, project, history, images, tmp_path
):
    res = _bench(
        project["ckpt"], tmp_path, images, "--device", "cpu", "--compare", "--accuracy", "--host", "target",
        *_remote(sshd),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "x fastest" in res.output and "exporting" not in res.output  # the run's exports were reused
    assert "3 val images and their labels go to the target" in res.output and "F1 " in res.output
    store = RunStore.open(history)
    rows = store.benchmarks(store.resolve_run("n100run")["id"])
    assert sorted(r["backend"] for r in rows) == ["onnx", "openvino"]
    assert all(r["host"] == "target" for r in rows)
    # detected there, scored here: the numbers local eval gives for the same export on the same CPU profile
    for r in rows:
        here = _evaluated_here(project, r["backend"], tmp_path)
        assert (r["breakdown"]["f1"], r["breakdown"]["map50"]) == (here.f1, here.map50), r["backend"]
    shown = CliRunner().invoke(cli, ["runs", "show", "n100run"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "target:" in shown.output and "CPU" in shown.output


RUNTIME_DISTS = [
    "numpy",
    "opencv-python-headless",
    "simplejpeg",
    "openvino",
    "openvino-telemetry",
    "packaging",
]


@pytest.mark.slow
def test_setup_creates_a_venv_and_installs_the_runtime_from_the_targets_index(
    sshd, ov_model, images, runs_dir, tmp_path
):
    """--setup for real, with no network: the target's pip reaches a PEP 503 index on 127.0.0.1 holding wheels
    re-packed from this environment's numpy, OpenCV, simplejpeg and OpenVINO, and a bare Python (the one this
    venv was made from) becomes a runner in a fresh venv in the target's (throw-away) home; a second run finds
    that venv by itself. Heavy on purpose (~400 MB of wheels installed): about 45 s on a loaded 2-core machine."""
    from package_index import build_index, serve

    bare = Path(getattr(sys, "_base_executable", sys.executable))
    if subprocess.run([str(bare), "-c", "import ensurepip, venv"], capture_output=True).returncode:
        pytest.skip(f"{bare} cannot make venvs with pip (on Debian: apt-get install python3-venv)")
    home = sshd.parent / "home"  # the target's, as the sshd fixture sets it
    index = build_index(RUNTIME_DISTS, tmp_path / "index")
    with serve(index) as url:
        cfg = tmp_path / "ssh_config"
        # the first value ssh reads wins: this block's environment, then the module's `target` as it is
        env = f"PIP_INDEX_URL={url} PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1"
        cfg.write_text(f"Host target\n  SetEnv {env}\n" + sshd.read_text())
        res = _bench(
            ov_model, tmp_path / "first", images, "--device", "n100", "--host", "target", "--ssh-config", str(cfg),
            "--remote-python", str(bare), "--setup",
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        # later runs find the venv by themselves: no --setup, no --remote-python
        again = _bench(ov_model, tmp_path / "again", images, "--host", "target", "--ssh-config", str(cfg))
        assert again.exit_code == 0, again.output
    venv_python = home / ".detcli-bench-venv" / "bin" / "python"
    assert venv_python.is_file()
    listed = subprocess.run(
        [str(venv_python), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert {"numpy", "opencv-python-headless", "simplejpeg", "openvino"} <= installed
    rows = _bench_rows(runs_dir)
    assert len(rows) == 2 and all(r["host"] == "target" and r["latency_mean"] > 0 for r in rows)
    assert [json.loads(r["breakdown"])["python"] for r in rows] == [str(venv_python)] * 2
