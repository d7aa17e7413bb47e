"""gpu-check's distributed part: `train.devices=0` under torchrun (NCCL on CUDA, gloo in the CPU dry mode), killed
with SIGKILL mid-run, then `detcli train --resume` under torchrun again: the steps must continue and the run
history hold no duplicate rows. Only what the run history records counts as proof, so the same checks work for a
user's own runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import ROOT

LAUNCHER = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]


@dataclass
class KillReport:
    killed: bool
    epochs_stored: int  # epochs whose rows and last.pt were durable when the run was killed
    rows_past_checkpoint: int  # step rows on disk newer than last.pt: the rows resume must drop
    worker_gone: bool  # the killed trainer process had exited before the history was read again
    output: str


def _store(runs_dir: Path):
    from engine.runs import RunStore

    return RunStore.open(runs_dir, recover=False)


def launch_torchrun(train_args: list[str], runs_dir: Path, env: dict, log: Path) -> subprocess.Popen:
    """One torchrun worker running `detcli train`: a world of one joins the process group (see
    engine.train.distributed), so DDP and the collective backend run on a one-GPU box. Its own session, so one
    killpg takes the torchrun agent and its worker down together, as a lost machine would."""
    cmd = [sys.executable, *LAUNCHER, "-m", "detcli.cli", "--runs-dir", str(runs_dir), "train", *train_args]
    out = open(log, "wb")  # noqa: SIM115 - the child writes to it until it ends
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _durable_epochs(epoch_rows: list[dict], last_pt: Path) -> int:
    """Epochs a resume would start after: an epoch's row is written just before its last.pt, so a kill between
    the two leaves a row that last.pt does not cover (resume drops it and replays the epoch)."""
    try:
        saved = last_pt.stat().st_mtime
    except OSError:
        return 0
    return sum(1 for e in epoch_rows if e["t"] <= saved)


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, ...); None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _wait_gone(pid: int | None, timeout_s: float) -> bool:
    """Wait for `pid` to exit (a zombie counts as gone: it runs nothing and holds no lock). The torchrun worker
    outlives its agent by the time the kernel takes to tear it down; until then the run history still sees a
    live trainer and rightly refuses a resume."""
    if not pid:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def _parent(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return int(stat[1]) if stat else None


def _groups(agent: subprocess.Popen, worker_pid: int | None) -> list[int]:
    """The process groups of one torchrun launch: the agent's, then its worker's (torchrun starts each worker in
    a session of its own, so a signal to the agent's group never reaches the trainer). The worker counts only
    when it is this agent's child: a pid from the run history is never trusted on its own."""
    groups = [os.getpgid(agent.pid)]
    if worker_pid and _parent(worker_pid) == agent.pid:
        groups.append(os.getpgid(worker_pid))
    return groups


def _signal(groups: list[int], sig: int) -> None:
    for g in groups:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(g, sig)


def stop_launch(agent: subprocess.Popen, worker_pid: int | None) -> None:
    """SIGKILL a torchrun launch, agent and worker, and wait for the agent."""
    if agent.poll() is None:
        _signal(_groups(agent, worker_pid), signal.SIGKILL)
    agent.wait()


def kill_mid_run(
    proc: subprocess.Popen, runs_dir: Path, name: str, epochs: int, log: Path, timeout_s: float
) -> KillReport:
    """SIGKILL the agent and the trainer once an epoch is durable and either step rows past that checkpoint are
    on disk (what resume must drop) or the run is in its last epoch. Both are stopped (SIGSTOP) while the store
    is read, so the run cannot finish between the check and the kill."""
    deadline = time.monotonic() + timeout_s
    report = KillReport(False, 0, 0, False, "")
    pid = None
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if not (runs_dir / "detcli.db").exists():
            continue
        # opened before the pause: opening may wait for the trainer to create the schema, a paused one never would
        with _store(runs_dir) as s:
            run = s.get_run(name)
            groups = _groups(proc, run["pid"]) if run else []
            if len(groups) < 2:  # the trainer has not recorded itself yet
                continue
            pid = run["pid"]
            _signal(groups, signal.SIGSTOP)
            run = s.get_run(name)
            stored = _durable_epochs(s.epochs(run["id"]), Path(run["dir"]) / "last.pt")
            past = sum(1 for r in s.last_steps(run["id"], 100000) if r["epoch"] >= stored) if stored else 0
            ready = run["status"] == "running" and stored and (past or stored >= epochs - 1)
        if ready:
            _signal(groups, signal.SIGKILL)
            report = KillReport(True, stored, past, False, "")
            break
        _signal(groups, signal.SIGCONT)
    stop_launch(proc, pid)  # killed, or out of time: never left training
    report.worker_gone = _wait_gone(pid, timeout_s=60)
    report.output = log.read_text(errors="replace")[-3000:]
    return report


def _events(runs_dir: Path, name: str) -> list[str]:
    with _store(runs_dir) as s:
        run = s.get_run(name)
        return [e["message"] for e in s.events(run["id"], 10000)] if run else []


def ddp_and_resume(
    train_args: list[str],
    name: str,
    epochs: int,
    steps_per_epoch: int,
    runs_dir: Path,
    env: dict,
    device: str,
    timeout_s: float = 1800,
) -> tuple[dict, dict]:
    """Run the torchrun training, kill it, resume it under torchrun; the `ddp` and `resume` entries of
    gpu_check.json."""
    from engine.runs import RunStore

    log = runs_dir.parent / f"{name}.log"
    t0 = time.monotonic()
    proc = launch_torchrun([*train_args, "--name", name, f"train.epochs={epochs}"], runs_dir, env, log)
    kill = kill_mid_run(proc, runs_dir, name, epochs, log, timeout_s=timeout_s)
    want = f"over {'nccl' if device == 'cuda' else 'gloo'} on {device}"
    events = _events(runs_dir, name)
    joined = next((m for m in events if m.startswith("distributed:")), None)
    replicas = [m for m in events if m.startswith("DDP epoch")]
    ddp = {
        "ok": bool(
            kill.killed and joined and want in joined and replicas and all("identical" in m for m in replicas)
        ),
        "launcher": "torchrun --standalone --nproc_per_node=1",
        "devices": "0" if device == "cuda" else "cpu",
        "backend_expected": want.split()[1],
        "process_group": joined,
        "replica_checks": replicas,
        "epochs_before_kill": kill.epochs_stored,
        "wall_s": round(time.monotonic() - t0, 1),
    }
    if not kill.killed:
        ddp["why"] = "the torchrun run ended (or ran out of time) before it could be killed mid-run"
        ddp["output_tail"] = kill.output
        return ddp, {"ok": False, "why": "nothing to resume: the run was not killed mid-run"}

    t1 = time.monotonic()
    with RunStore.open(
        runs_dir
    ) as s:  # recover=True: the dead pid turns the run 'interrupted', as any reader's
        status_after_kill = s.get_run(name)["status"]
    rlog = runs_dir.parent / f"{name}-resume.log"
    rproc = launch_torchrun(["--resume", name], runs_dir, env, rlog)
    try:
        code = rproc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with _store(runs_dir) as s:
            stop_launch(rproc, s.get_run(name)["pid"])
        code = rproc.returncode
    with _store(runs_dir) as s:
        run = s.get_run(name)
        steps = [row["step"] for row in s.last_steps(run["id"], 100000)]
        epoch_rows = [e["epoch"] for e in s.epochs(run["id"])]
    events = _events(runs_dir, name)
    expected_steps = list(range(1, epochs * steps_per_epoch + 1))  # log_every=1, accumulate=1: one row a step
    resumed_msg = next((m for m in events if m.startswith("resumed from")), None)
    # after the resume the trainer joined the process group again and checked the replicas of each later epoch
    joined_again = sum(1 for m in events if m.startswith("distributed:") and want in m) == 2
    resume = {
        "ok": bool(
            code == 0
            and status_after_kill == "interrupted"
            and run["status"] == "finished"
            and run["resumes"] == 1
            and resumed_msg
            and joined_again
            and steps == expected_steps
            and epoch_rows == list(range(epochs))
        ),
        "launcher": "torchrun --standalone --nproc_per_node=1 ... train --resume",
        "status_after_kill": status_after_kill,
        "worker_gone_after_kill": kill.worker_gone,
        "status": run["status"],
        "resumes": run["resumes"],
        "event": resumed_msg,
        "process_group_rejoined": joined_again,
        "rows_past_checkpoint_at_kill": kill.rows_past_checkpoint,
        "step_rows": len(steps),
        "expected_step_rows": len(expected_steps),
        "duplicate_step_rows": len(steps) - len(set(steps)),
        "steps_contiguous": steps == expected_steps,
        "epoch_rows": epoch_rows,
        "wall_s": round(time.monotonic() - t1, 1),
    }
    if code != 0:
        resume["output_tail"] = rlog.read_text(errors="replace")[-3000:]
    return ddp, resume
