"""A portable benchmark for targets without SSH: a zip with the artifact, images, runner and a job, and the
reading back of the results.json it produces (`detcli bench import`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from engine.bench.remote import RemoteError, parse_result, stage_job

RUN_SH = """#!/bin/sh
# Benchmark on this machine; needs python3 with numpy, opencv-python-headless, simplejpeg and the runtime
# (e.g. openvino). Writes results.json; bring it back and run `detcli bench import results.json`.
cd "$(dirname "$0")" && PYTHONPATH="$PWD/runner.zip" "${PYTHON:-python3}" -m engine.bench.target job.json > results.json
"""


def write_bundle(
    out: Path,
    entries: list[dict],
    images: list[Path],
    runs: int,
    warmup: int,
    meta: dict,
    accuracy_images: list[Path] | None = None,
) -> Path:
    """Write `out` (a .zip) holding everything `run.sh` needs; `meta` (with `--accuracy`, the val labels) travels
    into results.json for import."""
    with tempfile.TemporaryDirectory(prefix="detcli-bundle-") as tmp:
        stage = stage_job(
            Path(tmp) / "detcli-bench",
            entries,
            images,
            runs,
            warmup,
            meta=meta,
            accuracy_images=accuracy_images,
        )
        (stage / "run.sh").write_text(RUN_SH)
        (stage / "run.sh").chmod(0o755)
        archive = shutil.make_archive(str(out.with_suffix("")), "zip", stage.parent, stage.name)
    return Path(archive)


def read_results(path: Path) -> dict:
    """A results.json from a bundle (or a remote run), checked; raises RemoteError naming the file."""
    try:
        text = path.read_text()
    except OSError as e:
        raise RemoteError(f"{path}: cannot read ({e.strerror})") from None
    data = parse_result(text, str(path))
    if "meta" not in data:
        raise RemoteError(f"{path}: no job meta inside: was it written by a detcli bench bundle?")
    return data
