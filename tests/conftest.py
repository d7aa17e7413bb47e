"""Shared pytest fixtures: where the reference data lives, and an isolated run history per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def usable_cpus() -> int:
    """CPUs this process may run on (a taskset or container cpuset counts, unlike os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Two intra-op threads at most, and never more than the CPUs there are, in this process and in the CLI processes
# tests start: the same reduction order on a 2-core laptop and a 64-core server, the suite's timings sized for
# 2 cores anywhere, and never more threads than cores (OpenMP threads then spin against each other: on an
# overloaded 2-core box, 2 threads made toy training steps 2-5x slower than 1). Set before any test module imports
# torch, which reads it once; a caller's value wins.
TORCH_THREADS = int(os.environ.setdefault("OMP_NUM_THREADS", str(min(2, usable_cpus()))))


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    """Re-pin where a test changed it (torch keeps one process-wide setting)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != TORCH_THREADS:
        torch.set_num_threads(TORCH_THREADS)


def _shared_dir() -> Path | None:
    """The `shared/` reference folder beside the checkout (or $DETCLI_SHARED), if present."""
    env = os.environ.get("DETCLI_SHARED")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared", REPO.parent.parent / "shared"]:
        if (cand / "README.md").is_file():
            return cand
    return None


SHARED = _shared_dir()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path to ../shared; tests that need it skip with a clear reason when it is absent."""
    if SHARED is None:
        pytest.skip("../shared reference data not found (set DETCLI_SHARED to its path)")
    return SHARED


@pytest.fixture(scope="session")
def parity_dir(shared_dir: Path) -> Path:
    p = shared_dir / "parity"
    if not (p / "param_counts.json").is_file():
        pytest.skip(f"D-FINE parity reference missing in {p}")
    return p


@pytest.fixture(scope="session")
def data_dir(shared_dir: Path) -> Path:
    p = shared_dir / "data"
    if not p.is_dir():
        pytest.skip(f"reference data missing in {p}")
    return p


@pytest.fixture()
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh run-history folder; DETCLI_RUNS_DIR points at it so CLI calls use it too."""
    d = tmp_path / "runs"
    d.mkdir()
    monkeypatch.setenv("DETCLI_RUNS_DIR", str(d))
    return d
