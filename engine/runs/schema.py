"""Run-history schema and its forward migrations.

Each migration takes the store from version N-1 to N inside one transaction; `schema_version` records every
applied version, so an old store is upgraded in place the first time a newer detcli opens it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT the migration's transaction early; run statement by statement instead.
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _v1(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL,
            preset TEXT,
            model TEXT,
            dataset TEXT,
            config TEXT,
            host TEXT,
            device TEXT,
            pid INTEGER,
            started_at REAL,
            ended_at REAL,
            epochs INTEGER,
            best_epoch INTEGER,
            best_metric REAL,
            dir TEXT
        );
        CREATE TABLE IF NOT EXISTS steps (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            step INTEGER NOT NULL,
            epoch INTEGER NOT NULL,
            loss REAL,
            losses TEXT,
            lr TEXT,
            mem_mb REAL,
            img_s REAL,
            eta_s REAL,
            t REAL
        );
        CREATE TABLE IF NOT EXISTS epochs (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            epoch INTEGER NOT NULL,
            train_loss REAL,
            map50 REAL,
            map50_95 REAL,
            precision REAL,
            recall REAL,
            f1 REAL,
            iou REAL,
            per_class TEXT,
            is_best INTEGER DEFAULT 0,
            duration_s REAL,
            t REAL
        );
        CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY,
            run_id INTEGER REFERENCES runs(id),
            t REAL,
            level TEXT,
            message TEXT
        );
        CREATE TABLE IF NOT EXISTS artifacts (
            id INTEGER PRIMARY KEY,
            run_id INTEGER REFERENCES runs(id),
            kind TEXT,
            path TEXT,
            meta TEXT,
            t REAL
        );
        CREATE TABLE IF NOT EXISTS benchmarks (
            id INTEGER PRIMARY KEY,
            run_id INTEGER REFERENCES runs(id),
            artifact TEXT,
            backend TEXT,
            device_profile TEXT,
            host_cpu TEXT,
            host_gpu TEXT,
            precision TEXT,
            imgsz TEXT,
            batch INTEGER,
            latency_p50 REAL,
            latency_p95 REAL,
            latency_mean REAL,
            fps REAL,
            breakdown TEXT,
            t REAL
        );
        CREATE INDEX IF NOT EXISTS idx_steps_run_step ON steps(run_id, step);
        CREATE INDEX IF NOT EXISTS idx_events_run ON events(run_id, id);
        """,
    )


def _v2(conn: sqlite3.Connection) -> None:
    # v2: liveness for runs on other hosts (shared file systems), resume counting, one epoch row per epoch,
    # the newest step the dashboard shows without scanning the steps table, and a covering (run_id, step, loss)
    # index so chart downsampling reads only the index.
    _run_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN heartbeat_at REAL;
        ALTER TABLE runs ADD COLUMN resumes INTEGER DEFAULT 0;
        ALTER TABLE runs ADD COLUMN last_step INTEGER DEFAULT 0;
        ALTER TABLE runs ADD COLUMN error TEXT;
        CREATE UNIQUE INDEX IF NOT EXISTS idx_epochs_run_epoch ON epochs(run_id, epoch);
        DROP INDEX IF EXISTS idx_steps_run_step;
        CREATE INDEX IF NOT EXISTS idx_steps_run_step_loss ON steps(run_id, step, loss)
        """,
    )


def _v3(conn: sqlite3.Connection) -> None:
    # v3: benchmarks measured on another machine (`bench --host`) record which one; NULL means this machine
    _run_script(conn, "ALTER TABLE benchmarks ADD COLUMN host TEXT")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]
LATEST = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    """The highest applied schema version (0 for an empty database)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, upto: int = LATEST) -> int:
    """Apply every missing migration up to `upto`; returns the resulting version."""
    version = current_version(conn)
    if version > LATEST:
        raise RuntimeError(
            f"run history has schema version {version}, newer than this detcli knows ({LATEST}): upgrade detcli"
        )
    for v in range(version + 1, upto + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process (a trainer and a dashboard opening a new store together) may have applied this
            # version while we waited for the write lock: applying it twice would fail on its ALTER TABLEs.
            if current_version(conn) < v:
                MIGRATIONS[v - 1](conn)
                conn.execute(
                    "INSERT INTO schema_version(version, applied_at) VALUES (?, ?)", (v, time.time())
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return max(version, upto)
