"""A bench plan measured on another machine (`detcli bench --host/--bundle`): the jobs the target runs, made from
the same plan as a local bench (engine.bench.local.plan_bench), and the rows it sends back recorded here.

The SSH transport is engine/bench/remote.py and the zip for a machine without SSH engine/bench/bundle.py; this
module only turns a plan into their jobs and their answers into run history."""

from __future__ import annotations

from pathlib import Path

from engine.bench.local import BenchPlan, Echo, artifact_for, backend_setup
from engine.bench.record import benchmark_record
from engine.bench.runner import BenchRow
from engine.errors import UsageProblem
from engine.runs import RunStore


def remote_jobs(plan: BenchPlan, host: str | None, echo: Echo = print) -> tuple[list[dict], dict]:
    """(one job per exported backend, the metadata sent along): the exports are the run's own (made if missing).

    PyTorch is not shipped to the target, so torch is left out; a plan with nothing else is a UsageProblem."""
    artifacts: dict[str, Path] = {
        b: artifact_for(plan, b, False, echo) for b in plan.backends if b != "torch"
    }
    if not artifacts:
        raise UsageProblem("no exported backend to run on the target (PyTorch is not shipped there)")
    jobs = []
    for backend, artifact in artifacts.items():
        precision, kw, device = backend_setup(plan.profile, backend)
        jobs.append(
            {
                "artifact": str(artifact),
                "backend": backend,
                "device": device,
                "precision": precision,
                "options": kw,
                "fallback_device": plan.profile.options.get(backend, {}).get("fallback_device", "CPU"),
            }
        )
    meta = {"run_id": plan.run["id"] if plan.run else None, "device_profile": plan.profile.name, "host": host}
    return jobs, meta


def record_remote(store: RunStore, data: dict, scores: list[dict] | None = None) -> list[BenchRow]:
    """Store each row a target sent back (with its host, CPU, GPU, OpenVINO devices, the interpreter that ran
    it and, with --accuracy, its F1 / mAP50 in `scores`, one dict per row); the rows, to show."""
    meta = data["meta"]
    scores = scores or [{} for _ in data["rows"]]
    for r, acc in zip(data["rows"], scores, strict=True):
        store.add_benchmark(
            benchmark_record(
                r,
                run_id=meta.get("run_id"),
                artifact=r["artifact"],
                profile=meta.get("device_profile", "?"),
                host_cpu=data["host_cpu"],
                host_gpu=data.get("host_gpu"),
                host=meta.get("host"),
                extra={
                    "openvino_devices": data.get("openvino_devices", {}),
                    "python": data.get("python_executable"),  # which interpreter ran it there
                    **acc,
                },
            )
        )
    return [BenchRow(**r) for r in data["rows"]]
