"""`detcli bench --host` / `--bundle` / `bench import`: benchmarks measured on another machine, recorded here."""

from __future__ import annotations

from pathlib import Path

import click

from detcli.errors import engine_errors


def bench_elsewhere(
    console,
    plan,
    runs: int,
    warmup: int,
    host: str | None,
    remote_python: str,
    ssh_config: str | None,
    setup: bool,
    timeout: float,
    bundle: str | None,
    accuracy: bool,
    compare: bool,
) -> None:
    """Run `plan` (engine.bench.local.plan_bench) on `host` over SSH and record the rows, or write a `bundle` zip
    for a machine without SSH."""
    from engine.bench.bundle import write_bundle
    from engine.bench.elsewhere import remote_jobs
    from engine.bench.remote import RemoteError, RemoteTarget, bench_remote

    if accuracy:
        raise click.UsageError("--accuracy with --host/--bundle is not supported yet: run `detcli eval` here")
    with engine_errors():
        entries, meta = remote_jobs(plan, host, console.print)
    if bundle:
        meta["host"] = "bundle"
        out = write_bundle(Path(bundle), entries, plan.images, runs, warmup, meta)
        console.print(
            f"wrote {out}: unzip on the target, run detcli-bench/run.sh, then `detcli bench import results.json`"
        )
        return
    target = RemoteTarget(host, remote_python, Path(ssh_config) if ssh_config else None, timeout)
    console.print(f"benchmarking {', '.join(e['backend'] for e in entries)} on {host} ...")
    try:
        with console.status(f"running on {host}"):
            data = bench_remote(target, entries, plan.images, runs, warmup, setup=setup, meta=meta)
    except RemoteError as e:
        raise click.ClickException(str(e)) from None
    _record_and_show(console, plan.store, data, compare)


def _record_and_show(console, store, data: dict, compare: bool) -> None:
    from detcli.commands.bench import _print_table
    from engine.bench.elsewhere import record_remote

    meta = data["meta"]
    rows = record_remote(store, data)
    for r in rows:
        for note in r.notes:
            console.print(f"[yellow]warning:[/yellow] {note}")
        r.notes = []
    devices = ", ".join(data.get("openvino_devices", {})) or "none"
    where = f"{meta.get('host')}: {data['host_cpu']}" + (
        f", {data['host_gpu']}" if data.get("host_gpu") else ""
    )
    _print_table(console, rows, meta.get("device_profile", "?"), compare or len(rows) > 1, where=where)
    console.print(f"OpenVINO devices on the target: {devices}")


def import_results(ctx: click.Context, path: Path) -> None:
    """Record the results.json a bundle's run.sh wrote."""
    from detcli.cli import runs_dir_from
    from detcli.console import make_console
    from engine.bench.bundle import read_results
    from engine.bench.remote import RemoteError
    from engine.runs import RunStore

    try:
        data = read_results(path)
    except RemoteError as e:
        raise click.ClickException(str(e)) from None
    _record_and_show(make_console(), RunStore.open(runs_dir_from(ctx)), data, False)
