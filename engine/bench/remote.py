"""Benchmarks on a target device over SSH: copy the artifact, a few val images and the runner (the engine's own
timing, pre- and post-processing modules, zipped), run `engine.bench.target` there, read its JSON back.

Uses the system `ssh` / `scp`, so `~/.ssh/config` aliases, ports, keys and jump hosts work as they do in a
shell; `BatchMode` keeps a password prompt from hanging the benchmark."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import engine
from engine.bench.target import MISSING_RUNTIME, RUNTIMES

# the engine modules the target runs: timing, reading, pre/post-processing, backends, artifact metadata
RUNNER_MODULES = (
    "__init__.py",
    "bench/__init__.py",
    "bench/runner.py",
    "bench/target.py",
    "data/__init__.py",
    "data/decode.py",
    "export/__init__.py",
    "export/metadata.py",
    "geometry/*.py",
    "infer/*.py",
)
ACCURACY_DIR = "val"  # where a job keeps the val split's images for `--accuracy`, beside the timed few
VENV = ".detcli-bench-venv"  # in the target's home: where --setup installs and later runs look first
PIP_PACKAGES = {"openvino": "openvino", "onnxruntime": "onnxruntime", "cv2": "opencv-python-headless"}


class RemoteError(RuntimeError):
    """The remote benchmark could not complete; the message is one line saying why and what to do."""


@dataclass
class RemoteTarget:
    host: str
    python: str | None = None  # None: the --setup venv when the target has one, else python3
    ssh_config: Path | None = None  # passed as `ssh -F`; None means the user's ~/.ssh/config
    timeout_s: float = 900.0
    extra_opts: list[str] = field(default_factory=list)

    def _opts(self) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *self.extra_opts]
        return (["-F", str(self.ssh_config)] if self.ssh_config else []) + opts

    def ssh(self, command: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run `command` (a shell line) on the target; ssh-level failures raise RemoteError."""
        try:
            res = subprocess.run(
                ["ssh", *self._opts(), self.host, command],
                capture_output=True,
                text=True,
                timeout=timeout or self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(
                f"{self.host}: no answer within {timeout or self.timeout_s:.0f} s (the benchmark was stopped; "
                "nothing was recorded)"
            ) from None
        if res.returncode == 255:
            raise RemoteError(_ssh_failure(self.host, res.stderr))
        return res

    def put(self, local: list[Path], remote_dir: str) -> None:
        """Copy files and folders into `remote_dir` on the target, in one connection."""
        try:
            res = subprocess.run(
                ["scp", "-q", "-r", *self._opts(), *map(str, local), f"{self.host}:{remote_dir}/"],
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.host}: copying {', '.join(p.name for p in local)} timed out") from None
        if res.returncode != 0:
            raise RemoteError(_ssh_failure(self.host, res.stderr))


def _ssh_failure(host: str, stderr: str) -> str:
    last = (stderr.strip().splitlines() or ["ssh failed"])[-1]
    if "Permission denied" in stderr or "Too many authentication failures" in stderr:
        return f"{host}: authentication failed ({last}); check `ssh {host}` works without a password prompt"
    if "Host key verification failed" in stderr:
        return f"{host}: host key verification failed; connect once with `ssh {host}` to accept its key"
    return f"{host}: cannot reach the host ({last}); check `ssh {host}` works from this machine"


def pack_runner(dest: Path) -> Path:
    """Zip the engine modules the target needs (imported from the zip via PYTHONPATH; no torch needed)."""
    root = Path(engine.__file__).parent
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for pattern in RUNNER_MODULES:
            for f in sorted(root.glob(pattern)):
                z.write(f, f"engine/{f.relative_to(root).as_posix()}")
    return dest


def artifact_files(artifact: Path) -> list[Path]:
    """The files an artifact is made of: an OpenVINO .xml has its .bin, any export may have a metadata sidecar."""
    files = [artifact]
    if artifact.suffix == ".xml":
        files.append(artifact.with_suffix(".bin"))
    side = artifact.with_suffix(artifact.suffix + ".json")
    if side.is_file():
        files.append(side)
    return [f for f in files if f.is_file()]


def stage_job(
    workdir: Path,
    entries: list[dict],
    images: list[Path],
    runs: int,
    warmup: int,
    n_images: int = 16,
    meta: dict | None = None,
    accuracy_images: list[Path] | None = None,
) -> Path:
    """Lay out what the target needs in `workdir`: runner.zip, artifacts/, images/ and job.json, and with
    `accuracy_images` (the val split, its labels in `meta["accuracy"]`) those too, for per-image detections.
    Each entry holds a local `artifact` path, `backend`, `device`, `precision` and backend `options`."""
    (workdir / "artifacts").mkdir(parents=True, exist_ok=True)
    (workdir / "images").mkdir(exist_ok=True)
    pack_runner(workdir / "runner.zip")
    job_entries = []
    for i, e in enumerate(entries):
        sub = workdir / "artifacts" / str(i)
        sub.mkdir(exist_ok=True)
        for f in artifact_files(Path(e["artifact"])):
            shutil.copy2(f, sub / f.name)
        job_entries.append({**e, "artifact": f"artifacts/{i}/{Path(e['artifact']).name}"})
    for k, img in enumerate(images[:n_images]):
        shutil.copy2(img, workdir / "images" / f"{k:03d}{img.suffix.lower()}")
    job = {"runs": runs, "warmup": warmup, "images": "images", "entries": job_entries, "meta": meta or {}}
    if accuracy_images is not None:
        (workdir / ACCURACY_DIR).mkdir(exist_ok=True)
        names = [f"{k:05d}{img.suffix.lower()}" for k, img in enumerate(accuracy_images)]
        for img, name in zip(accuracy_images, names, strict=True):
            shutil.copy2(img, workdir / ACCURACY_DIR / name)
        # the target cuts the (unthresholded) list at eval's max_det, as scoring would
        max_det = job["meta"]["accuracy"]["eval"]["max_det"]
        job["accuracy"] = {"images": ACCURACY_DIR, "files": names, "max_det": max_det}
    (workdir / "job.json").write_text(json.dumps(job, indent=1))
    return workdir


def install_command(python: str, missing: list[str]) -> str:
    pkgs = " ".join(PIP_PACKAGES.get(m, m) for m in missing)
    return f"{python} -m pip install {pkgs}"


def parse_result(text: str, source: str) -> dict:
    """The runner's JSON, checked for the fields the run history needs."""
    try:
        data = json.loads(text.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise RemoteError(f"{source}: the runner printed no result JSON") from None
    if not isinstance(data, dict) or "rows" not in data or "host_cpu" not in data:
        raise RemoteError(f"{source}: not a detcli bench result (no rows / host_cpu)")
    return data


def setup_venv(target: RemoteTarget, backends: list[str]) -> str:
    """Create ~/.detcli-bench-venv on the target and pip-install what the runner needs from the package index
    the target reaches; returns the venv's python (an absolute path, as later commands quote it)."""
    home = target.ssh('printf %s "$HOME"', timeout=60).stdout.strip()
    if not home:
        raise RemoteError(f"{target.host}: cannot tell the home folder to create the venv in")
    venv = shlex.quote(f"{home}/{VENV}")
    pkgs = [
        "numpy",
        "opencv-python-headless",
        "simplejpeg",
        *(RUNTIMES[b] for b in backends if b in RUNTIMES),
    ]
    cmd = (
        f"{shlex.quote(target.python or 'python3')} -m venv {venv} && {venv}/bin/python -m pip install -q "
        + " ".join(shlex.quote(p) for p in pkgs)
    )
    res = target.ssh(cmd)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["?"])[-1]
        raise RemoteError(f"{target.host}: setting up {venv} failed: {last}")
    return f"{home}/{VENV}/bin/python"


def bench_remote(
    target: RemoteTarget,
    entries: list[dict],
    images: list[Path],
    runs: int,
    warmup: int,
    setup: bool = False,
    meta: dict | None = None,
    accuracy_images: list[Path] | None = None,
) -> dict:
    """Run the benchmark on `target` and return the runner's JSON (rows, host_cpu, host_gpu, openvino_devices).
    The remote working folder is removed afterwards, whatever happened."""
    backends = [e["backend"] for e in entries]
    if setup:
        target.python = setup_venv(target, backends)
    # one connection: the working folder, and the --setup venv's python if an earlier run made one
    res = target.ssh(
        f'mktemp -d -t detcli-bench.XXXXXX && {{ [ -x "$HOME/{VENV}/bin/python" ] && '
        f'printf "%s\\n" "$HOME/{VENV}/bin/python" || true; }}',
        timeout=60,
    )
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        raise RemoteError(f"{target.host}: cannot create a working folder: {res.stderr.strip()}")
    remote_dir = lines[0]
    if target.python is None:
        target.python = lines[1] if len(lines) > 1 else "python3"
    try:
        with tempfile.TemporaryDirectory(prefix="detcli-stage-") as tmp:
            stage = stage_job(
                Path(tmp) / "job", entries, images, runs, warmup, meta=meta, accuracy_images=accuracy_images
            )
            target.put(sorted(stage.iterdir()), remote_dir)
        q = shlex.quote(remote_dir)
        res = target.ssh(
            f"cd {q} && PYTHONPATH={q}/runner.zip {shlex.quote(target.python)} -m engine.bench.target job.json"
        )
    finally:
        # the benchmark's own error (or result) matters more than a left-over temp folder
        with contextlib.suppress(RemoteError):
            target.ssh(f"rm -rf {shlex.quote(remote_dir)}", timeout=60)
    if res.returncode == MISSING_RUNTIME:
        try:
            missing = json.loads(res.stdout.strip().splitlines()[-1]).get("missing", [])
        except (json.JSONDecodeError, IndexError):
            missing = ["the runner's dependencies"]
        raise RemoteError(
            f"{target.host}: {target.python} lacks {', '.join(missing)}; install with "
            f"`ssh {target.host} {install_command(target.python, missing)}` or rerun with --setup"
        )
    if res.returncode == 127:
        raise RemoteError(
            f"{target.host}: no {target.python} there; pass --remote-python PATH or use --setup"
        )
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no error output"])[-1]
        raise RemoteError(f"{target.host}: the benchmark runner failed (exit {res.returncode}): {last}")
    return parse_result(res.stdout, target.host)
