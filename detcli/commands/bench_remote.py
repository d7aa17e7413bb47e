"""`detcli bench --host` / `--bundle` / `bench import`: benchmarks measured on another machine, recorded here."""

from __future__ import annotations

from pathlib import Path

import click


def _entries(profile, artifacts: dict[str, Path]) -> list[dict]:
    from engine.bench.local import backend_setup

    out = []
    for backend, artifact in artifacts.items():
        precision, kw, device = backend_setup(profile, backend)
        fallback = profile.options.get(backend, {}).get("fallback_device", "CPU")
        out.append(
            {
                "artifact": str(artifact),
                "backend": backend,
                "device": device,
                "precision": precision,
                "options": kw,
                "fallback_device": fallback,
            }
        )
    return out


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
    from engine.bench.local import artifact_for
    from engine.bench.remote import RemoteError, RemoteTarget, bench_remote

    if accuracy:
        raise click.UsageError("--accuracy with --host/--bundle is not supported yet: run `detcli eval` here")
    profile, run, store, images = plan.profile, plan.run, plan.store, plan.images
    # the target runs exports only, no PyTorch there
    artifacts = {b: artifact_for(plan, b, False, console.print) for b in plan.backends if b != "torch"}
    if not artifacts:
        raise click.UsageError("no exported backend to run on the target (PyTorch is not shipped there)")
    entries = _entries(profile, artifacts)
    meta = {"run_id": run["id"] if run else None, "device_profile": profile.name, "host": host}
    if bundle:
        meta["host"] = "bundle"
        out = write_bundle(Path(bundle), entries, images, runs, warmup, meta)
        console.print(
            f"wrote {out}: unzip on the target, run detcli-bench/run.sh, then `detcli bench import results.json`"
        )
        return
    target = RemoteTarget(host, remote_python, Path(ssh_config) if ssh_config else None, timeout)
    console.print(f"benchmarking {', '.join(artifacts)} on {host} ...")
    try:
        with console.status(f"running on {host}"):
            data = bench_remote(target, entries, images, runs, warmup, setup=setup, meta=meta)
    except RemoteError as e:
        raise click.ClickException(str(e)) from None
    _record_and_show(console, store, data, compare)


def _record_and_show(console, store, data: dict, compare: bool) -> None:
    from detcli.commands.bench import _print_table
    from engine.bench.record import benchmark_record
    from engine.bench.runner import BenchRow

    meta = data["meta"]
    rows = [BenchRow(**r) for r in data["rows"]]
    for r in rows:
        for note in r.notes:
            console.print(f"[yellow]warning:[/yellow] {note}")
    if store is not None:
        for r in data["rows"]:
            store.add_benchmark(
                benchmark_record(
                    r,
                    run_id=meta.get("run_id"),
                    artifact=r["artifact"],
                    profile=meta.get("device_profile", "?"),
                    host_cpu=data["host_cpu"],
                    host_gpu=data.get("host_gpu"),
                    host=meta.get("host"),
                    extra={"openvino_devices": data.get("openvino_devices", {})},
                )
            )
    for r in rows:
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
