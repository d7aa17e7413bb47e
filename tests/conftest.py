"""Shared pytest fixtures: where the reference data lives, and an isolated run history per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
