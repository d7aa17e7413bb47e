"""`detcli runs`: list, show, compare and remove runs of the run history."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path

import click

from detcli.errors import run_errors

METRICS = ("map50", "map50_95", "precision", "recall", "f1", "iou")


def _store(ctx: click.Context):
    from detcli.cli import runs_dir_from
    from engine.runs import RunStore

    return RunStore.open(runs_dir_from(ctx))


def _age(t: float | None) -> str:
    if not t:
        return "-"
    s = time.time() - t
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{int(s // n)}{unit} ago"
    return f"{int(s)}s ago"


@click.group("runs")
def runs_group() -> None:
    """The run history: list, show, compare, remove."""


@runs_group.command("list")
@click.option("--status", type=click.Choice(["running", "finished", "failed", "interrupted"]))
@click.option("--preset", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_cmd(ctx: click.Context, status: str | None, preset: str | None, as_json: bool) -> None:
    """Every run, newest first."""
    runs = _store(ctx).list_runs(status=status, preset=preset)
    if as_json:
        click.echo(json.dumps([{k: v for k, v in r.items() if k != "config"} for r in runs], default=str))
        return
    from rich.table import Table

    from detcli.console import make_console

    if not runs:
        click.echo("no runs yet: start one with `detcli train --preset demo`")
        return
    t = Table(title="runs", title_justify="left")
    for c in ("name", "status", "preset", "model", "epoch", "best", "started", "dir"):
        t.add_column(c)
    colour = {"running": "cyan", "finished": "green", "failed": "red", "interrupted": "yellow"}
    for r in runs:
        ep = "-" if r["last_epoch"] is None else f"{r['last_epoch'] + 1}/{r['epochs']}"
        best = "-" if r["best_metric"] is None else f"{r['best_metric']:.4f} @ {r['best_epoch'] + 1}"
        t.add_row(
            r["name"],
            f"[{colour.get(r['status'], 'white')}]{r['status']}",
            r["preset"] or "-",
            r["model"] or "-",
            ep,
            best,
            _age(r["started_at"]),
            r["dir"],
        )
    make_console().print(t)


def _preset_diff(run: dict) -> dict:
    from engine.config import ConfigError, RunConfig, config_diff, load_config

    try:
        base = load_config(run["preset"]) if run["preset"] else RunConfig()
    except ConfigError:
        base = RunConfig()
    diff = config_diff(base, run["config"])
    diff.pop("preset", None)
    return diff


@runs_group.command("show")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show_cmd(ctx: click.Context, run: str, as_json: bool) -> None:
    """One run: config changes vs its preset, epochs, best epoch, artifacts, exports, benchmarks, events."""
    store = _store(ctx)
    with run_errors():
        r = store.resolve_run(run)
    epochs = store.epochs(r["id"])
    arts = store.artifacts(r["id"])
    bench = store.benchmarks(r["id"])
    diff = _preset_diff(r)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run": {k: v for k, v in r.items() if k != "config"},
                    "config_vs_preset": diff,
                    "epochs": epochs,
                    "artifacts": arts,
                    "benchmarks": bench,
                    "events": store.events(r["id"], 20),
                },
                default=str,
            )
        )
        return
    from rich.table import Table

    from detcli.console import make_console

    con = make_console()
    con.print(
        f"[bold]{r['name']}[/bold]  {r['status']}  preset {r['preset']}  model {r['model']}  "
        f"device {r['device']}  host {r['host']}  dir {r['dir']}"
    )
    if r.get("error"):
        con.print(f"[red]error:[/red] {r['error']}")
    con.print(
        f"config vs preset '{r['preset']}': "
        + (", ".join(f"{k}={b!r}" for k, (_, b) in diff.items()) or "no changes")
    )
    if epochs:
        t = Table(title="epochs", title_justify="left")
        for c in ("epoch", "train_loss", *METRICS, "s"):
            t.add_column(c, justify="right")
        for e in epochs:
            style = "bold green" if e["is_best"] else None
            t.add_row(
                str(e["epoch"] + 1),
                f"{e['train_loss'] or 0:.3f}",
                *[f"{e[m]:.4f}" if e[m] is not None else "-" for m in METRICS],
                f"{e['duration_s'] or 0:.0f}",
                style=style,
            )
        con.print(t)
    if r["best_epoch"] is not None:
        con.print(f"best epoch {r['best_epoch'] + 1}: {r['best_metric']:.4f}")
    for a in arts:
        if a["kind"] == "pretrained":  # where the run's starting weights came from
            m = a["meta"] or {}
            con.print(
                f"started from ({m.get('setting')}): {m.get('name')}  sha256 {str(m.get('sha256'))[:16]}  "
                f"filled {m.get('loaded')} of {m.get('of')} {m.get('part')} tensors ({m.get('layout')})  {a['path']}"
            )
    if arts:
        t = Table(title="artifacts", title_justify="left")
        for c in ("kind", "path", "meta"):
            t.add_column(c)
        for a in arts:
            t.add_row(a["kind"], a["path"], json.dumps(a["meta"])[:80])
        con.print(t)
    if bench:
        _bench_table(con, {r["name"]: bench})


def _bench_table(con, by_run: dict) -> None:
    from rich.table import Table

    t = Table(title="benchmarks (ms per image)", title_justify="left")
    for c in (
        "run",
        "backend",
        "profile",
        "device",
        "precision",
        "imgsz",
        "mean",
        "p50",
        "p95",
        "FPS",
        "host",
    ):
        t.add_column(c)
    for name, rows in by_run.items():
        for b in rows:
            t.add_row(
                name,
                b["backend"],
                b["device_profile"],
                str((b.get("breakdown") or {}).get("device", "")),
                b["precision"],
                b["imgsz"],
                f"{b['latency_mean']:.1f}",
                f"{b['latency_p50']:.1f}",
                f"{b['latency_p95']:.1f}",
                f"{b['fps']:.1f}",
                # where it ran: the ssh destination (or "bundle") for a benchmark on another machine
                f"{b['host']}: {b['host_cpu'] or '?'}" if b.get("host") else (b["host_cpu"] or ""),
            )
    con.print(t)


def _started_from(store, run_id: int) -> str:
    """The names of the pretrained files a run started from, or "random"."""
    names = [(a["meta"] or {}).get("name", "?") for a in store.artifacts(run_id, "pretrained")]
    return " + ".join(names) or "random"


@runs_group.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True)
@click.pass_context
def compare_cmd(ctx: click.Context, runs: tuple[str, ...], as_json: bool, as_csv: bool) -> None:
    """Runs side by side: config keys that differ, best and final metrics (winner marked), benchmarks, curves."""
    from engine.config import config_diff

    if len(runs) < 2:
        raise click.UsageError("compare needs at least two runs")
    store = _store(ctx)
    with run_errors():
        rows = [store.resolve_run(r) for r in runs]
    names = [r["name"] for r in rows]
    keys: dict[str, list] = {}
    for _i, r in enumerate(rows[1:], start=1):
        for k in config_diff(rows[0]["config"], r["config"]):
            keys.setdefault(k, [])
    diffs = {k: [_get(r["config"], k) for r in rows] for k in sorted(keys) if k != "preset"}
    table = {}
    for r in rows:
        eps = store.epochs(r["id"])
        best = next((e for e in eps if e["is_best"]), None)
        final = eps[-1] if eps else None
        table[r["name"]] = (
            {f"best_{m}": best[m] if best else None for m in METRICS}
            | {f"final_{m}": final[m] if final else None for m in METRICS}
            | {"epochs": len(eps), "status": r["status"], "weights": _started_from(store, r["id"])}
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "runs": names,
                    "config_diff": diffs,
                    "metrics": table,
                    "benchmarks": {r["name"]: store.benchmarks(r["id"]) for r in rows},
                },
                default=str,
            )
        )
        return
    if as_csv:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["key", *names])
        for k, vals in diffs.items():
            w.writerow([k, *vals])
        for m in table[names[0]]:
            w.writerow([m, *[table[n][m] for n in names]])
        click.echo(buf.getvalue().rstrip())
        return
    from rich.table import Table

    from detcli.console import make_console

    con = make_console()
    t = Table(title="config keys that differ", title_justify="left")
    t.add_column("key")
    for n in names:
        t.add_column(n)
    for k, vals in diffs.items():
        t.add_row(k, *[repr(v) for v in vals])
    if not diffs:
        t.add_row("(identical configs)", *[""] * len(names))
    con.print(t)
    t = Table(title="metrics (winner in green)", title_justify="left")
    t.add_column("metric")
    for n in names:
        t.add_column(n, justify="right")
    for m in [f"best_{x}" for x in METRICS] + [f"final_{x}" for x in METRICS]:
        vals = [table[n][m] for n in names]
        top = max((v for v in vals if v is not None), default=None)
        t.add_row(
            m, *[("-" if v is None else (f"[bold green]{v:.4f} *" if v == top else f"{v:.4f}")) for v in vals]
        )
    t.add_row("started from", *[table[n]["weights"] for n in names])
    con.print(t)
    benches = {r["name"]: store.benchmarks(r["id"]) for r in rows}
    if any(benches.values()):
        _bench_table(con, benches)
    _curves(con, store, rows)


def _get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _curves(con, store, rows) -> None:
    """Terminal overlays of mAP50 per epoch and the training loss (plotext)."""
    import plotext as plt

    for title, fetch in (
        (
            "val mAP50 per epoch",
            lambda r: [(e["epoch"] + 1, e["map50"]) for e in store.epochs(r["id"]) if e["map50"] is not None],
        ),
        (
            "train loss",
            lambda r: [
                (s["step"], s["loss_mean"])
                for s in store.step_series(r["id"], 120)
                if s["loss_mean"] is not None
            ],
        ),
    ):
        series = [(r["name"], fetch(r)) for r in rows]
        if not any(pts for _, pts in series):
            continue
        plt.clf()
        plt.plotsize(min(100, con.width), 15)
        plt.title(title)
        for name, pts in series:
            if pts:
                plt.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
        con.print(plt.build(), markup=False, highlight=False)


@runs_group.command("rm")
@click.argument("run")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def rm_cmd(ctx: click.Context, run: str, yes: bool) -> None:
    """Delete a run from the history, with its folder (weights, exports, plots)."""
    store = _store(ctx)
    with run_errors():
        r = store.resolve_run(run)
    if r["status"] == "running":
        raise click.UsageError(f"run '{r['name']}' is running (pid {r['pid']}); stop it first")
    if not yes:
        click.confirm(f"delete run '{r['name']}' and {r['dir']}?", abort=True)
    store.delete_run(r["id"])
    if r["dir"] and Path(r["dir"]).is_dir():
        shutil.rmtree(r["dir"])
    click.echo(f"deleted {r['name']}")


COMMANDS = [runs_group]
