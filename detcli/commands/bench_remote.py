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
    remote_python: str | None,
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

    with engine_errors():
        entries, meta = remote_jobs(plan, host, console.print)
    val_images = None
    if accuracy:
        meta["accuracy"], val_images = _accuracy_payload(plan.config)
        console.print(f"--accuracy: {len(val_images)} val images and their labels go to the target too")
    if bundle:
        meta["host"] = "bundle"
        out = write_bundle(Path(bundle), entries, plan.images, runs, warmup, meta, accuracy_images=val_images)
        console.print(
            f"wrote {out}: unzip on the target, run detcli-bench/run.sh, then `detcli bench import results.json`"
        )
        return
    target = RemoteTarget(host, remote_python, Path(ssh_config) if ssh_config else None, timeout)
    console.print(f"benchmarking {', '.join(e['backend'] for e in entries)} on {host} ...")
    try:
        with console.status(f"running on {host}"):
            data = bench_remote(
                target, entries, plan.images, runs, warmup, setup=setup, meta=meta, accuracy_images=val_images
            )
    except RemoteError as e:
        raise click.ClickException(str(e)) from None
    _record_and_show(console, plan.store, data, compare)


def _accuracy_payload(cfg) -> tuple[dict, list[Path]]:
    from engine.bench.accuracy import accuracy_payload

    if cfg is None:
        raise click.UsageError(
            "--accuracy needs a run (its val split and labels): pass the run name, not an export file"
        )
    try:
        return accuracy_payload(cfg)
    except (ValueError, RuntimeError, OSError) as e:
        raise click.ClickException(f"--accuracy: cannot read the run's val split: {e}") from None


def _scores(data: dict, source: str) -> list[dict]:
    """F1 / mAP50 per row from the target's detections, scored here (empty without --accuracy)."""
    from engine.bench.accuracy import score_remote

    payload = data["meta"].get("accuracy")
    if not payload:
        return [{} for _ in data["rows"]]
    dets = data.get("accuracy")
    if not isinstance(dets, list) or len(dets) != len(data["rows"]):
        raise click.ClickException(f"{source}: the result holds no detections to score for --accuracy")
    out = []
    for per_image in dets:
        try:
            res = score_remote(payload, per_image)
        except (ValueError, KeyError, TypeError) as e:
            raise click.ClickException(f"{source}: cannot score the target's detections: {e}") from None
        out.append({"f1": res.f1, "map50": res.map50})
    return out


def _record_and_show(console, store, data: dict, compare: bool) -> None:
    from detcli.commands.bench import _print_table
    from engine.bench.elsewhere import record_remote

    meta = data["meta"]
    # scored before anything is recorded: a result that cannot be scored records nothing
    scores = _scores(data, str(meta.get("host")))
    rows = record_remote(store, data, scores)
    for r, acc in zip(rows, scores, strict=True):
        for note in r.notes:
            console.print(f"[yellow]warning:[/yellow] {note}")
        # the table's accuracy column, as local `bench --accuracy` fills it
        r.notes = [f"F1 {acc['f1']:.4f} mAP50 {acc['map50']:.4f}"] if acc else []
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
