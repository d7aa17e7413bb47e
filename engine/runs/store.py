"""The local run history: one SQLite file (WAL mode) written by one trainer and read by many viewers.

Writes are short transactions; step rows arrive in batches (see `StepLogger`), so a dashboard polling the file
over SSH never sees "database is locked" and a killed trainer never leaves a half-written row behind.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.runs.schema import migrate

DB_NAME = "detcli.db"
STATUSES = ("running", "finished", "failed", "interrupted")
JSON_COLUMNS = {"config", "losses", "lr", "per_class", "meta", "breakdown"}
# A run on another host whose heartbeat is older than this is taken for dead (shared file systems).
REMOTE_STALE_S = 30 * 60


class RunNotFound(LookupError):
    """No run matches the given name or id; the message lists close names."""


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict[str, Any]:
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def _decode(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """Parse the JSON columns of a row in place (rows come from `_dict_row`, so they are fresh dicts)."""
    if row is None:
        return None
    for k in JSON_COLUMNS.intersection(row):
        v = row[k]
        if isinstance(v, str) and v[:1] in "{[":
            with contextlib.suppress(json.JSONDecodeError):
                row[k] = json.loads(v)
    return row


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v) if k in JSON_COLUMNS and v is not None else v) for k, v in row.items()}


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        # guard against pid reuse by an unrelated program
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return True
        return "python" in text or "detcli" in text
    return True


def _use_wal(conn: sqlite3.Connection, deadline: float) -> None:
    """Switch a new history to WAL (the mode persists in the file, so later opens find it set).

    SQLite answers "database is locked" at once, without waiting on the busy timeout, when two processes open a
    new history together and one is switching its journal mode while the other reads: retry until `deadline`.
    """
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() == "wal":
                return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("database is locked: could not switch the run history to WAL mode")
        time.sleep(0.02)


class RunStore:
    """Access to the run history under `runs_dir` (`runs_dir/detcli.db`, artifacts in `runs_dir/<name>/`)."""

    def __init__(self, runs_dir: Path, conn: sqlite3.Connection):
        self.root = Path(runs_dir)
        self.conn = conn
        self.db = sqlite_utils.Database(conn)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, runs_dir: str | Path, recover: bool = True) -> RunStore:
        """Open (creating and migrating if needed) the store; marks dead `running` runs as interrupted."""
        root = Path(runs_dir)
        root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(root / DB_NAME, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        _use_wal(conn, deadline=time.monotonic() + 30.0)
        # NORMAL in WAL mode is crash-safe for the database; only the last transactions may be lost on power loss.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
        conn.row_factory = _dict_row
        store = cls(root, conn)
        if recover:
            store.recover_stale()
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self.conn)

    def _one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        return _decode(self.conn.execute(sql, tuple(params)).fetchone())

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        # hot path for dashboards: plain tuples, column names and JSON columns resolved once per query
        cur = self.conn.cursor()
        cur.row_factory = None
        rows = cur.execute(sql, tuple(params)).fetchall()
        names = [d[0] for d in cur.description]
        json_idx = [i for i, n in enumerate(names) if n in JSON_COLUMNS]
        loads = json.loads
        out = []
        for row in rows:
            if json_idx:
                row = list(row)
                for i in json_idx:
                    v = row[i]
                    if isinstance(v, str) and v[:1] in "{[":
                        with contextlib.suppress(json.JSONDecodeError):
                            row[i] = loads(v)
            out.append(dict(zip(names, row, strict=True)))
        return out

    # ------------------------------------------------------------------ runs

    def next_name(self, prefix: str) -> str:
        """`<prefix>-<n>` with n one above the highest existing for that prefix."""
        prefix = re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix or "run").strip("-") or "run"
        pat = re.compile(rf"^{re.escape(prefix)}-(\d+)$")
        names = [r["name"] for r in self.conn.execute("SELECT name FROM runs")]
        used = [int(m.group(1)) for n in names if (m := pat.match(n))]
        return f"{prefix}-{max(used, default=0) + 1}"

    def create_run(
        self,
        *,
        preset: str | None,
        model: str | None,
        dataset: str | None,
        config: dict[str, Any],
        epochs: int | None,
        device: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Insert a new `running` run owned by this process and create its folder; returns the run row."""
        with self._tx():
            if name is None:
                name = self.next_name(preset or (model or "run"))
            elif self._one("SELECT id FROM runs WHERE name = ?", (name,)):
                raise ValueError(f"a run named '{name}' already exists; pick another --name or --resume it")
            run_dir = self.root / name
            now = time.time()
            self.conn.execute(
                "INSERT INTO runs (name, status, preset, model, dataset, config, host, device, pid, started_at,"
                " epochs, dir, heartbeat_at, resumes, last_step) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0,0)",
                (
                    name,
                    "running",
                    preset,
                    model,
                    dataset,
                    json.dumps(config),
                    socket.gethostname(),
                    device,
                    os.getpid(),
                    now,
                    epochs,
                    str(run_dir),
                    now,
                ),
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        return self.get_run(name)  # type: ignore[return-value]

    def resume_run(
        self, run_id: int, epochs: int | None = None, config: dict[str, Any] | None = None
    ) -> None:
        """Take over a stopped run in this process (status back to running, resume counted, event logged)."""
        run = self.get_run(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id}")
        if run["status"] == "running" and _pid_alive(run["pid"]) and run["pid"] != os.getpid():
            raise ValueError(f"run '{run['name']}' is still running (pid {run['pid']} on {run['host']})")
        sets = {
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "ended_at": None,
            "error": None,
            "heartbeat_at": time.time(),
            "resumes": (run.get("resumes") or 0) + 1,
        }
        if epochs is not None:
            sets["epochs"] = epochs
        if config is not None:
            sets["config"] = json.dumps(config)
        with self._tx():
            self._update_run(run_id, sets)
            self._event(run_id, "info", f"resumed (resume #{sets['resumes']}) by pid {os.getpid()}")

    def _update_run(self, run_id: int, sets: dict[str, Any]) -> None:
        cols = ", ".join(f"{k} = ?" for k in sets)
        self.conn.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*sets.values(), run_id))

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set run columns (e.g. best_epoch, best_metric, device)."""
        with self._tx():
            self._update_run(run_id, _encode(fields))

    def finish_run(self, run_id: int, status: str = "finished", error: str | None = None) -> None:
        """Close a run with a final status; a failure stores its error and logs an error event."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self._tx():
            self._update_run(run_id, {"status": status, "ended_at": time.time(), "error": error})
            if error:
                self._event(run_id, "error", error)
            else:
                self._event(run_id, "info", f"run {status}")

    def delete_run(self, run_id: int) -> None:
        """Remove a run and all its rows (the caller removes the folder)."""
        with self._tx():
            for table in ("steps", "epochs", "events", "artifacts"):
                self.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            self.conn.execute("UPDATE benchmarks SET run_id = NULL WHERE run_id = ?", (run_id,))
            self.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def recover_stale(self) -> list[str]:
        """Mark `running` runs whose process is gone as `interrupted`; returns their names."""
        host = socket.gethostname()
        now = time.time()
        stale = []
        for run in self._all("SELECT id, name, host, pid, heartbeat_at FROM runs WHERE status = 'running'"):
            if run["host"] == host:
                dead = not _pid_alive(run["pid"])
            else:
                dead = (now - (run["heartbeat_at"] or 0)) > REMOTE_STALE_S
            if dead:
                stale.append(run)
        for run in stale:
            with self._tx():
                # re-check under the write lock: the trainer may have finished in between
                cur = self._one("SELECT status FROM runs WHERE id = ?", (run["id"],))
                if cur and cur["status"] == "running":
                    self._update_run(run["id"], {"status": "interrupted", "ended_at": now})
                    self._event(
                        run["id"],
                        "warning",
                        f"process {run['pid']} on {run['host']} is gone: marked interrupted",
                    )
        return [r["name"] for r in stale]

    def get_run(self, name_or_id: str | int) -> dict[str, Any] | None:
        """The run row by name or numeric id, or None."""
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            row = self._one("SELECT * FROM runs WHERE id = ?", (int(name_or_id),))
            if row is not None:
                return row
        return self._one("SELECT * FROM runs WHERE name = ?", (str(name_or_id),))

    def resolve_run(self, name_or_id: str | int) -> dict[str, Any]:
        """Like get_run, but raises RunNotFound naming close matches."""
        run = self.get_run(name_or_id)
        if run is None:
            names = [r["name"] for r in self.conn.execute("SELECT name FROM runs ORDER BY id DESC")]
            close = difflib.get_close_matches(str(name_or_id), names, n=3)
            hint = (
                f"; did you mean {', '.join(close)}?"
                if close
                else (f"; known runs: {', '.join(names[:8])}" if names else "; the run history is empty")
            )
            raise RunNotFound(f"no run '{name_or_id}' in {self.root / DB_NAME}{hint}")
        return run

    def list_runs(self, status: str | None = None, preset: str | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, optionally filtered; each row carries its latest epoch number."""
        sql = "SELECT r.*, (SELECT MAX(epoch) FROM epochs e WHERE e.run_id = r.id) AS last_epoch FROM runs r"
        where, params = [], []
        if status:
            where.append("r.status = ?")
            params.append(status)
        if preset:
            where.append("r.preset = ?")
            params.append(preset)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._all(sql + " ORDER BY r.id DESC", params)

    # ------------------------------------------------------------------ rows a trainer writes

    def log_steps(self, run_id: int, rows: list[dict[str, Any]]) -> None:
        """Insert a batch of step rows in one transaction (and refresh the run's heartbeat)."""
        if not rows:
            return
        enc = [_encode({"run_id": run_id, **r}) for r in rows]
        cols = list(enc[0].keys())
        sql = f"INSERT INTO steps ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self._tx():
            self.conn.executemany(sql, [tuple(r.get(c) for c in cols) for r in enc])
            self._update_run(run_id, {"heartbeat_at": time.time(), "last_step": max(r["step"] for r in rows)})

    def log_epoch(self, run_id: int, epoch: int, **metrics: Any) -> None:
        """Insert or replace the row of one epoch (a resumed run re-running an epoch never duplicates it)."""
        row = _encode({"run_id": run_id, "epoch": epoch, "t": time.time(), **metrics})
        cols = list(row)
        with self._tx():
            self.conn.execute(
                f"INSERT OR REPLACE INTO epochs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                tuple(row.values()),
            )
            self._update_run(run_id, {"heartbeat_at": time.time()})

    def mark_best(self, run_id: int, epoch: int, metric: float) -> None:
        """Record `epoch` as the run's best (clearing the flag elsewhere)."""
        with self._tx():
            self.conn.execute("UPDATE epochs SET is_best = (epoch = ?) WHERE run_id = ?", (epoch, run_id))
            self._update_run(run_id, {"best_epoch": epoch, "best_metric": metric})

    def truncate_after(self, run_id: int, step: int, epoch: int) -> None:
        """Drop rows written after a checkpoint (a resumed run replays them, so none are duplicated)."""
        with self._tx():
            self.conn.execute("DELETE FROM steps WHERE run_id = ? AND step > ?", (run_id, step))
            self.conn.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", (run_id, epoch))

    def _event(self, run_id: int | None, level: str, message: str) -> None:
        self.conn.execute(
            "INSERT INTO events (run_id, t, level, message) VALUES (?,?,?,?)",
            (run_id, time.time(), level, message),
        )

    def log_event(self, run_id: int | None, message: str, level: str = "info") -> None:
        """Record a notable moment (resume, mosaic closed, new best, NaN skipped, error)."""
        with self._tx():
            self._event(run_id, level, message)

    def add_artifact(self, run_id: int | None, kind: str, path: str | Path, meta: dict | None = None) -> int:
        """Record a file a run produced (weights, export, plot, vis); returns its id."""
        with self._tx():
            cur = self.conn.execute(
                "INSERT INTO artifacts (run_id, kind, path, meta, t) VALUES (?,?,?,?,?)",
                (run_id, kind, str(path), json.dumps(meta or {}), time.time()),
            )
            return int(cur.lastrowid)

    def add_benchmark(self, row: dict[str, Any]) -> int:
        """Record one benchmark row (see the `benchmarks` table); returns its id."""
        row = _encode({"t": time.time(), **row})
        cols = list(row)
        with self._tx():
            cur = self.conn.execute(
                f"INSERT INTO benchmarks ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                tuple(row.values()),
            )
            return int(cur.lastrowid)

    # ------------------------------------------------------------------ readers

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,))

    def events(self, run_id: int, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._all("SELECT * FROM events WHERE run_id = ? ORDER BY id DESC LIMIT ?", (run_id, limit))
        return rows[::-1]

    def artifacts(self, run_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        if kind:
            return self._all(
                "SELECT * FROM artifacts WHERE run_id = ? AND kind = ? ORDER BY id", (run_id, kind)
            )
        return self._all("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,))

    def benchmarks(self, run_id: int | None = None) -> list[dict[str, Any]]:
        if run_id is None:
            return self._all("SELECT * FROM benchmarks ORDER BY id")
        return self._all("SELECT * FROM benchmarks WHERE run_id = ? ORDER BY id", (run_id,))

    def last_steps(self, run_id: int, limit: int = 1000) -> list[dict[str, Any]]:
        """The most recent `limit` step rows, oldest first."""
        rows = self._all("SELECT * FROM steps WHERE run_id = ? ORDER BY step DESC LIMIT ?", (run_id, limit))
        return rows[::-1]

    def step_series(self, run_id: int, max_points: int = 400) -> list[dict[str, Any]]:
        """At most ~max_points step rows spread evenly over the run, for charts over very long runs.

        Downsampling happens in SQL: one index seek per bucket picks the bucket's first row, and `loss_mean` is
        the mean loss of (up to) the bucket's first 64 rows, read from the covering (run_id, step, loss) index,
        so the cost is bounded by max_points, not by the run's length.
        """
        lo = self.conn.execute(
            "SELECT step FROM steps WHERE run_id = ? ORDER BY step LIMIT 1", (run_id,)
        ).fetchone()
        if lo is None:
            return []
        hi = self.conn.execute(
            "SELECT step FROM steps WHERE run_id = ? ORDER BY step DESC LIMIT 1", (run_id,)
        )
        lo, hi = int(lo["step"]), int(hi.fetchone()["step"])
        width = max(1, -(-(hi - lo + 1) // max_points))
        rows = self._all(
            """
            WITH RECURSIVE b(x) AS (SELECT ? UNION ALL SELECT x + ? FROM b WHERE x + ? <= ?)
            SELECT s.*, (SELECT AVG(loss) FROM (SELECT loss FROM steps WHERE run_id = ? AND step >= b.x
                                                AND step < b.x + ? ORDER BY step LIMIT 64)) AS loss_mean
            FROM b JOIN steps s ON s.rowid =
                (SELECT rowid FROM steps WHERE run_id = ? AND step >= b.x AND step < b.x + ? ORDER BY step LIMIT 1)
            """,
            (lo, width, width, hi, run_id, width, run_id, width),
        )
        if rows and rows[-1]["step"] != hi:  # always end on the newest row: charts show "now"
            rows.append(
                self._one(
                    "SELECT *, loss AS loss_mean FROM steps WHERE run_id = ? AND step = ?", (run_id, hi)
                )
            )
        return rows


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front so a writer never deadlocks on upgrade."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.nested = False

    def __enter__(self) -> None:
        self.nested = self.conn.in_transaction
        if not self.nested:
            self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.nested:
            return
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class StepLogger:
    """Buffers step rows and writes them in batches (every `batch` rows or `interval_s` seconds)."""

    def __init__(self, store: RunStore, run_id: int, batch: int = 50, interval_s: float = 5.0):
        self.store, self.run_id = store, run_id
        self.batch, self.interval_s = batch, interval_s
        self.rows: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def log(self, **row: Any) -> None:
        """Queue one step row (step, epoch, loss, losses, lr, mem_mb, img_s, eta_s)."""
        row.setdefault("t", time.time())
        self.rows.append(row)
        if len(self.rows) >= self.batch or time.monotonic() - self.last_flush >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.store.log_steps(self.run_id, self.rows)
            self.rows = []
        self.last_flush = time.monotonic()
