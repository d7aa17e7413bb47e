import itertools
import json
import multiprocessing as mp
import socket
import sqlite3
import subprocess
import sys
import time

from engine.runs import RunStore, StepLogger
from engine.runs.schema import LATEST, migrate


def _new_run(store, **kw):
    args = dict(preset="demo", model="dfine-n", dataset="d", config={"train": {"epochs": 3}}, epochs=3)
    args.update(kw)
    return store.create_run(**args)


def test_human_names_increment(runs_dir):
    with RunStore.open(runs_dir) as s:
        assert [_new_run(s)["name"] for _ in range(3)] == ["demo-1", "demo-2", "demo-3"]
        assert _new_run(s, preset="visdrone")["name"] == "visdrone-1"
        assert (runs_dir / "demo-2").is_dir()


def test_rows_round_trip_json(runs_dir):
    with RunStore.open(runs_dir) as s:
        run = _new_run(s)
        log = StepLogger(s, run["id"], batch=3)
        for i in range(1, 8):
            log.log(
                step=i, epoch=0, loss=1.0 / i, losses={"loss_vfl": 0.5}, lr={"backbone": 1e-4}, mem_mb=1.0
            )
        log.flush()
        rows = s.last_steps(run["id"], 100)
        assert [r["step"] for r in rows] == list(range(1, 8))
        assert rows[0]["losses"] == {"loss_vfl": 0.5} and rows[0]["lr"] == {"backbone": 1e-4}
        s.log_epoch(run["id"], 0, map50=0.4, per_class=[{"name": "a", "ap": 0.1}])
        s.log_epoch(run["id"], 0, map50=0.5)  # a replayed epoch replaces, never duplicates
        assert [e["map50"] for e in s.epochs(run["id"])] == [0.5]
        s.mark_best(run["id"], 0, 0.5)
        assert s.get_run(run["name"])["best_epoch"] == 0
        assert s.get_run(run["id"])["config"] == {"train": {"epochs": 3}}


def test_step_series_downsamples_in_sql(runs_dir):
    with RunStore.open(runs_dir) as s:
        run = _new_run(s)
        s.log_steps(
            run["id"], [{"step": i, "epoch": i // 100, "loss": float(i), "lr": {"g": i}} for i in range(1000)]
        )
        series = s.step_series(run["id"], max_points=100)
        assert len(series) == 101  # 100 buckets + the newest row, so charts always reach "now"
        assert series[-1]["step"] == 999 and series[-1]["lr"] == {"g": 999}
        assert series[0]["step"] == 0 and series[0]["loss_mean"] == sum(range(10)) / 10
        assert [r["step"] for r in series[:3]] == [0, 10, 20]


def test_stale_run_marked_interrupted(runs_dir):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with RunStore.open(runs_dir) as s:
        run = _new_run(s)
        alive = _new_run(s)  # owned by this (living) process
        s.update_run(run["id"], pid=dead.pid)
        remote = _new_run(s)
        s.update_run(remote["id"], host="elsewhere-" + socket.gethostname(), heartbeat_at=time.time() - 7200)
    with RunStore.open(runs_dir) as s:
        assert s.get_run(run["id"])["status"] == "interrupted"
        assert s.get_run(remote["id"])["status"] == "interrupted"
        assert s.get_run(alive["id"])["status"] == "running"
        assert any("marked interrupted" in e["message"] for e in s.events(run["id"]))


def test_resume_takes_over_and_counts(runs_dir):
    with RunStore.open(runs_dir) as s:
        run = _new_run(s)
        s.finish_run(run["id"], "interrupted")
        s.resume_run(run["id"], epochs=10)
        r = s.get_run(run["id"])
        assert r["status"] == "running" and r["resumes"] == 1 and r["epochs"] == 10


def test_migration_from_v1_keeps_data(runs_dir):
    conn = sqlite3.connect(runs_dir / "detcli.db", isolation_level=None)
    assert migrate(conn, upto=1) == 1
    conn.execute(
        "INSERT INTO runs (name, status, preset, config, host, pid, started_at) VALUES (?,?,?,?,?,?,?)",
        ("old-1", "finished", "demo", json.dumps({"a": 1}), "h", 1, 1.0),
    )
    conn.execute("INSERT INTO epochs (run_id, epoch, map50) VALUES (1, 0, 0.25)")
    conn.close()
    with RunStore.open(runs_dir) as s:
        assert s.conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()["v"] == LATEST
        run = s.get_run("old-1")
        assert run["config"] == {"a": 1} and run["resumes"] == 0 and "heartbeat_at" in run
        assert s.epochs(run["id"])[0]["map50"] == 0.25
        assert _new_run(s)["name"] == "demo-1"


def _writer(runs_dir, run_id, seconds):
    s = RunStore.open(runs_dir, recover=False)
    log = StepLogger(s, run_id, batch=20, interval_s=0.2)
    step, end = 0, time.time() + seconds
    while time.time() < end:
        step += 1
        log.log(step=step, epoch=step // 500, loss=1.0, losses={"a": 1.0}, lr={"g": 0.1})
        if step % 300 == 0:
            s.log_epoch(run_id, step // 300, map50=0.1)
            s.log_event(run_id, f"epoch {step // 300}")
    log.flush()


def _reader(runs_dir, run_id, seconds, out):
    s = RunStore.open(runs_dir)  # readers also open with recovery, like the dashboard
    seen, errors, end = [], [], time.time() + seconds
    while time.time() < end:
        try:
            n = s.conn.execute("SELECT COUNT(*) AS n FROM steps WHERE run_id = ?", (run_id,)).fetchone()["n"]
            s.step_series(run_id, 200)
            s.epochs(run_id)
            s.list_runs()
            seen.append(n)
        except sqlite3.OperationalError as e:
            errors.append(str(e))
        time.sleep(0.01)
    out.put((seen, errors))


def test_one_writer_two_readers_no_lock_errors(runs_dir):
    with RunStore.open(runs_dir) as s:
        run = _new_run(s)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    w = ctx.Process(target=_writer, args=(runs_dir, run["id"], 5.0))
    readers = [ctx.Process(target=_reader, args=(runs_dir, run["id"], 5.0, q)) for _ in range(2)]
    for p in [w, *readers]:
        p.start()
    results = [q.get(timeout=60) for _ in readers]
    for p in [w, *readers]:
        p.join(timeout=60)
    assert w.exitcode == 0
    for seen, errors in results:
        assert errors == []
        assert len(seen) > 20
        assert all(b >= a for a, b in itertools.pairwise(seen)), "readers must see growing data"
        assert seen[-1] > seen[0]


def _open_at_once(root, barrier):
    barrier.wait()
    RunStore.open(root).close()


def test_processes_creating_one_store_at_once_all_succeed(tmp_path):
    """A trainer and dashboards opening a new run history together: each migration is applied exactly once."""
    ctx = mp.get_context("fork")
    for trial in range(12):
        root = tmp_path / f"t{trial}"
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_open_at_once, args=(root, barrier)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 6, f"trial {trial}"
        with RunStore.open(root) as s:
            versions = [
                r["version"] for r in s.conn.execute("SELECT version FROM schema_version ORDER BY version")
            ]
        assert versions == list(range(1, LATEST + 1))
