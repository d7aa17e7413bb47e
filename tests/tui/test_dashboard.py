"""The dashboard driven by Textual's pilot against a real run history."""

import asyncio

import pytest

from detcli.tui.app import DashboardApp
from engine.runs import RunStore, StepLogger


def _seed(runs_dir, name="demo-1", steps=20, epochs=2, status=None):
    s = RunStore.open(runs_dir)
    run = s.create_run(
        preset="demo", model="dfine-n", dataset="d", config={}, epochs=10, device="cpu", name=name
    )
    s.log_steps(
        run["id"],
        [
            {
                "step": i,
                "epoch": i // 10,
                "loss": 30 - i * 0.1,
                "losses": {"loss_vfl": 1.0},
                "lr": {"backbone": 4e-4, "head": 8e-4},
                "mem_mb": 900.0,
                "img_s": 7.5,
                "eta_s": 300.0 - i,
                "t": 1000.0 + i,
            }
            for i in range(1, steps + 1)
        ],
    )
    for e in range(epochs):
        s.log_epoch(
            run["id"],
            e,
            train_loss=30.0 - e,
            map50=0.1 * (e + 1),
            map50_95=0.05 * (e + 1),
            precision=0.5,
            recall=0.4,
            f1=0.44,
            iou=0.7,
            duration_s=20.0,
        )
    if epochs:
        s.mark_best(run["id"], epochs - 1, 0.3)
    if status:
        s.finish_run(run["id"], status)
    return s, run


def _text(app, selector):
    return str(app.query_one(selector).render())


def test_empty_store_explains_how_to_start(tmp_path):
    asyncio.run(_test_empty_store_explains_how_to_start(tmp_path))


async def _test_empty_store_explains_how_to_start(tmp_path):
    app = DashboardApp(tmp_path, interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "detcli train --preset demo" in _text(app, "#empty")


def test_shows_run_and_follows_a_writer(tmp_path):
    asyncio.run(_test_shows_run_and_follows_a_writer(tmp_path))


async def _test_shows_run_and_follows_a_writer(tmp_path):
    store, run = _seed(tmp_path)
    app = DashboardApp(tmp_path, interval=0.2)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        header = _text(app, "#header")
        assert "demo-1" in header and "running" in header and "step 20" in header and "ETA" in header
        # a separate writer adds steps and an epoch while the dashboard is open
        log = StepLogger(store, run["id"], batch=1)
        log.log(
            step=57,
            epoch=5,
            loss=10.0,
            losses={"loss_vfl": 0.5},
            lr={"head": 1e-4},
            mem_mb=1.0,
            img_s=9.0,
            eta_s=42.0,
        )
        store.log_epoch(
            run["id"],
            5,
            train_loss=9.0,
            map50=0.77,
            map50_95=0.5,
            precision=0.6,
            recall=0.6,
            f1=0.6,
            iou=0.7,
            duration_s=1.0,
        )
        # the dashboard polls every 0.2 s; wait for it by what it shows, not by a fixed sleep (a loaded box is slow)
        for _ in range(100):
            await asyncio.sleep(0.1)
            await pilot.pause()
            header = _text(app, "#header")
            if "step 57" in header and "epoch 6/10" in header:
                break
        assert "step 57" in header and "epoch 6/10" in header and "0m42s" in header
        table = app.query_one("#metrics")
        assert any("0.770" in str(c) for c in table.get_row_at(table.row_count - 1))


def test_switching_runs_and_interrupted_status(tmp_path):
    asyncio.run(_test_switching_runs_and_interrupted_status(tmp_path))


async def _test_switching_runs_and_interrupted_status(tmp_path):
    _seed(tmp_path, "a-1", status="interrupted")
    _seed(tmp_path, "b-1")
    app = DashboardApp(tmp_path, interval=0.2)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert "b-1" in _text(app, "#header")  # newest first
        await pilot.press("n")
        await pilot.pause()
        header = _text(app, "#header")
        assert "a-1" in header and "interrupted" in header
        await pilot.press("m", "l", "c")
        await pilot.pause()
        await pilot.press("escape", "q")


def test_small_terminal_80x24(tmp_path):
    asyncio.run(_test_small_terminal_80x24(tmp_path))


async def _test_small_terminal_80x24(tmp_path):
    _seed(tmp_path)
    app = DashboardApp(tmp_path, interval=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.has_class("narrow") and "demo-1" in _text(app, "#header")


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_snapshot_main_screen(tmp_path, snap_compare, size):
    store, run = _seed(tmp_path, status="finished")
    # fixed times so the picture never changes: start, end and "now" are pinned
    store.update_run(run["id"], started_at=1000.0, ended_at=1600.0, heartbeat_at=1600.0, host="box")
    store.conn.execute("UPDATE events SET t = 1500.0")
    app = DashboardApp(tmp_path, interval=60, clock=lambda: 2000.0)
    assert snap_compare(app, terminal_size=size)


@pytest.mark.slow
def test_real_terminal_over_tmux(tmp_path):
    """tmux runs `detcli dashboard` while another process writes: loss, LR, ETA and epoch move on screen."""
    import os
    import shutil
    import subprocess
    import sys
    import time
    from pathlib import Path

    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed (`just setup` installs it where it can)")
    _store, run = _seed(tmp_path, steps=5, epochs=1)
    repo = Path(__file__).resolve().parents[2]
    session = f"detcli-test-{os.getpid()}"
    cmd = f"PYTHONPATH={repo} {sys.executable} -m detcli.cli --runs-dir {tmp_path} dashboard --interval 0.3"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "48", cmd], check=True)
    try:

        def screen() -> str:
            return subprocess.run(
                ["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True
            ).stdout

        deadline = time.time() + 30
        while "step 5" not in screen() and time.time() < deadline:
            time.sleep(0.3)
        first = screen()
        assert "step 5" in first and "epoch 1/10" in first and "ETA" in first
        writer = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "from engine.runs import RunStore\n"
                    f"s = RunStore.open({str(tmp_path)!r}, recover=False)\n"
                    f"s.log_steps({run['id']}, [dict(step=88, epoch=3, loss=5.0, losses={{'loss_vfl': 1.0}}, "
                    "lr={'head': 0.000123}, mem_mb=1.0, img_s=2.0, eta_s=61.0)])\n"
                    f"s.log_epoch({run['id']}, 3, map50=0.9, map50_95=0.5, precision=0.9, recall=0.9, f1=0.9, iou=0.8)\n"
                ),
            ],
            env={**os.environ, "PYTHONPATH": str(repo)},
            check=True,
        )
        del writer
        deadline = time.time() + 30
        while "step 88" not in screen() and time.time() < deadline:
            time.sleep(0.3)
        later = screen()
        assert "step 88" in later and "epoch 4/10" in later and "1m01s" in later
        assert "0.900" in later  # the new epoch row
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def test_unknown_run_is_an_error_not_another_run(tmp_path):
    from click.testing import CliRunner

    from detcli.cli import cli

    with RunStore.open(tmp_path) as store:
        store.create_run(preset="demo", model="dfine-n", dataset="x", config={}, epochs=1, name="demo-1")
    r = CliRunner().invoke(cli, ["--runs-dir", str(tmp_path), "dashboard", "demo-9"])
    assert r.exit_code == 2 and "no run 'demo-9'" in r.output and "demo-1" in r.output
