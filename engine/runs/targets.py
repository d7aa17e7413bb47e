"""What a user names when they point at a model — a run name, a checkpoint, an export — resolved to the file
and the run it belongs to. Every public call (load, evaluate, export, bench) resolves through here, so a run
name means the same thing everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.config import RunConfig
from engine.errors import ModelNotFound
from engine.runs.store import RunNotFound, RunStore

MODEL_SUFFIXES = {".pt", ".pth", ".onnx", ".xml", ".engine"}
EXPORT_SUFFIXES = {".onnx", ".xml", ".engine"}


@dataclass
class ResolvedTarget:
    """A model file, the backend that runs it, the config it was trained with, its run (if known), and the
    folder its evaluation outputs go to (the run folder, else the file's folder)."""

    path: Path
    backend: str
    config: RunConfig
    run: dict | None
    out_dir: Path


def run_weights(run: dict, allow_last: bool = False) -> Path:
    """A run's best.pt (or, with allow_last, its last.pt when no epoch has been scored yet)."""
    d = Path(run["dir"])
    for fname in ("best.pt", "last.pt") if allow_last else ("best.pt",):
        if (d / fname).is_file():
            return d / fname
    if allow_last:
        raise ModelNotFound(f"run '{run['name']}' has no weights yet ({d} has no best.pt/last.pt)")
    raise ModelNotFound(f"run '{run['name']}' has no best.pt yet (it has not finished an epoch)")


def resolve_model_path(model: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A model file or export as given, or a run name -> that run's best.pt (else last.pt)."""
    p = Path(model)
    if p.exists():
        return p
    if p.suffix.lower() in MODEL_SUFFIXES:
        raise ModelNotFound(f"model not found: {p}")
    if Path(runs_dir).is_dir():
        try:
            run = RunStore.open(runs_dir, recover=False).resolve_run(str(model))
        except RunNotFound as e:
            raise ModelNotFound(f"'{model}' is neither a model file nor a run in {runs_dir}: {e}") from None
        return run_weights(run, allow_last=True)
    raise ModelNotFound(
        f"'{model}' is neither a model file (.pt/.onnx/.xml/.engine) nor a run name (no runs in {runs_dir})"
    )


def resolve_target(target: str | Path, store: RunStore) -> ResolvedTarget:
    """A run name (its best.pt), or a .pt/.onnx/.xml/.engine file (its run found through the metadata).

    An unknown run name raises RunNotFound with close matches."""
    from engine.infer.predictor import backend_for

    path = Path(target)
    if not path.exists():
        if path.suffix.lower() in MODEL_SUFFIXES:
            raise ModelNotFound(f"model not found: {path}")
        run = store.resolve_run(str(target))
        best = run_weights(run)
        return ResolvedTarget(best, "torch", RunConfig.model_validate(run["config"]), run, Path(run["dir"]))
    try:
        backend = backend_for(path)
    except ValueError as e:
        raise ModelNotFound(str(e)) from None
    if backend == "torch":
        from engine.models.checkpoint import read_checkpoint

        try:
            ck = read_checkpoint(path)
        except (ValueError, FileNotFoundError) as e:
            raise ModelNotFound(str(e)) from None
        cfg_dict, run_name = ck.get("config"), ck.get("run_name")
    else:
        from engine.export.metadata import read_metadata

        try:
            meta = read_metadata(path)
        except (ValueError, FileNotFoundError) as e:
            raise ModelNotFound(str(e)) from None
        run_name, cfg_dict = meta.get("run_name"), None
    run = store.get_run(run_name) if run_name else None
    if cfg_dict is None and run is not None:
        cfg_dict = run["config"]
    cfg = RunConfig.model_validate(cfg_dict) if cfg_dict else RunConfig()
    return ResolvedTarget(path, backend, cfg, run, Path(run["dir"]) if run else path.parent)
