"""The training loop: AMP, accumulation, clipping, EMA, per-epoch evaluation, checkpoints, resume, DDP.

Everything a run does is written to the run history (steps in batches, epochs, events), so the dashboard can
follow it from another process; weights go to `<runs_dir>/<run>/{last,best}.pt`.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from engine.config import RunConfig
from engine.data.dataset import build_dataset, to_model_input
from engine.data.loader import train_loader
from engine.metrics import EvalResult, best_metric
from engine.models import build_criterion, build_model, save_checkpoint
from engine.models.checkpoint import read_checkpoint
from engine.runs import RunStore, StepLogger
from engine.train import distributed as dist_utils
from engine.train.ema import ModelEMA
from engine.train.evaluate import evaluate_model
from engine.train.optim import build_optimizer
from engine.train.progress import TrainProgress, fmt_eta
from engine.train.schedulers import apply_lr, lr_factor
from engine.train.stepper import OptimizerStepper
from engine.weights.pretrained import apply_pretrained

log = logging.getLogger(__name__)
LOSS_GROUPS = ("loss_vfl", "loss_bbox", "loss_giou", "loss_fgl", "loss_ddf")


class TrainingStopped(RuntimeError):
    """Training stopped for a reason the user must act on (the message says which)."""


@dataclass
class TrainSummary:
    run_name: str
    status: str
    epochs_done: int
    steps: int
    best_epoch: int | None
    best_metric: float | None
    best_path: Path | None
    last_metrics: dict | None
    seconds: float


def resolve_device(devices: str) -> torch.device:
    if devices in ("auto", ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if devices.startswith("cpu"):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainingStopped(
            f"train.devices={devices} asks for CUDA, but no CUDA device is available (use train.devices=cpu)"
        )
    local = int(os.environ.get("LOCAL_RANK", devices.split(",")[0]))
    return torch.device(f"cuda:{local}")


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """fp16 on CUDA, bf16 where asked (CPU, Ampere+), none when off."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "bf16":
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _group_losses(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """Sum the per-layer terms into the five loss kinds for logging (loss_vfl = final + aux + pre + enc + dn)."""
    out = dict.fromkeys(LOSS_GROUPS, 0.0)
    for k, v in losses.items():
        for g in LOSS_GROUPS:
            if k == g or k.startswith(g + "_"):
                out[g] += float(v.detach())
    return out


class Trainer:
    """Runs one training run described by a RunConfig, recording it under `run` in `store`."""

    def __init__(
        self,
        cfg: RunConfig,
        store: RunStore | None,
        run: dict | None,
        resume: bool = False,
        quiet: bool = False,
        on_step=None,
        on_epoch=None,
    ):
        self.cfg, self.store, self.run = cfg, store, run
        # a notebook's own progress: called on the main process only, with the same dicts the history records
        self.on_step, self.on_epoch = on_step, on_epoch
        self.ddp = dist_utils.init_from_env(cfg.train.devices)
        self.rank = dist_utils.rank()
        self.main = self.rank == 0
        self.device = resolve_device(cfg.train.devices)
        if store and run and self.main and self.device.type == "cuda":
            # the resolved device, so readers (the dashboard's VRAM label) know steps' mem_mb is peak VRAM
            store.update_run(run["id"], device=f"cuda ({torch.cuda.get_device_name(self.device)})")
        self.run_dir = Path(run["dir"]) if run else Path("runs") / "unnamed"
        self.quiet = quiet or not self.main
        torch.manual_seed(cfg.train.seed)
        random.seed(cfg.train.seed)
        np.random.seed(cfg.train.seed)

        self.train_ds = build_dataset(cfg, "train", "train")
        self.val_ds = build_dataset(cfg, cfg.eval.split, "val")
        self.class_names = self.train_ds.class_names
        m = cfg.model
        over = {
            "num_queries": m.num_queries,
            "num_layers": m.num_decoder_layers,
            "num_denoising": m.num_denoising,
            "freeze_at": m.freeze_at,
            "freeze_stem_only": m.freeze_stem_only,
            "freeze_norm": m.freeze_norm,
        }
        self.model = build_model(
            m.name,
            num_classes=len(self.class_names),
            eval_spatial_size=cfg.data.imgsz,
            **{k: v for k, v in over.items() if v is not None},
        ).to(self.device)
        self.criterion = build_criterion(m.name, num_classes=len(self.class_names))
        # a file that fills too little of its part raises WeightsMismatch here, before any training step
        self.pretrained = []
        if not resume:
            if self.ddp and not self.main:
                dist_utils.barrier()  # rank 0 fetches into the cache first; the others then find it there
            self.pretrained = apply_pretrained(self.model, m, self.class_names, progress=not self.quiet)
            if self.ddp and self.main:
                dist_utils.barrier()
        if self.ddp:
            if cfg.train.sync_bn:
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = build_optimizer(self.model, cfg.train)
        self.ema = ModelEMA(self.model, cfg.train.ema_decay, cfg.train.ema_warmups) if cfg.train.ema else None
        self.amp = amp_dtype(cfg.train.amp, self.device)
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp == torch.float16 and self.device.type == "cuda"
        )
        self.stepper = OptimizerStepper(
            self.model, self.optimizer, self.scaler, cfg.train.accumulate, cfg.train.clip_grad, self.ema
        )
        self.sampler = (
            DistributedSampler(self.train_ds, shuffle=True, seed=cfg.train.seed) if self.ddp else None
        )
        self.start_epoch, self.global_step = 0, 0
        self.best_value, self.best_epoch, self.bad_epochs = -float("inf"), None, 0
        self.best_conf: float | None = None  # F1-best confidence of the best epoch: travels into exports
        self.logger = (
            StepLogger(store, run["id"], batch=50, interval_s=5.0) if (store and run and self.main) else None
        )
        if resume:
            self._resume()
        if self.ddp:
            self._event(
                f"distributed: {dist_utils.world_size()} rank(s) over {dist_utils.backend()} on {self.device.type}"
            )

    # ------------------------------------------------------------------ state

    def _event(self, message: str, level: str = "info") -> None:
        if self.store and self.run and self.main:
            self.store.log_event(self.run["id"], message, level)
        if level != "info":
            log.warning(message)

    def _model(self) -> torch.nn.Module:
        return getattr(self.model, "module", self.model)

    def _save(self, name: str, epoch: int) -> Path:
        weights = self.ema.module if self.ema else self._model()
        state = {
            "train_model": self._model().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "global_step": self.global_step,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_conf": self.best_conf,
            "bad_epochs": self.bad_epochs,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": _numpy_rng_state(),
                "python": list(random.getstate()[1]),
            },
            "config": self.cfg.model_dump(mode="json"),
            "run_name": self.run["name"] if self.run else None,
        }
        if name == "best.pt":
            state = {k: state[k] for k in ("epoch", "global_step", "config", "run_name", "best_conf")}
        path = save_checkpoint(
            self.run_dir / name,
            weights,
            class_names=self.class_names,
            imgsz=self.cfg.data.imgsz,
            extra={"keep_ratio": self.cfg.data.keep_ratio, **state},
        )
        return path

    def _resume(self) -> None:
        path = self.run_dir / "last.pt"
        if not path.is_file():
            raise TrainingStopped(f"cannot resume: {path} does not exist (the run never finished an epoch)")
        ck = read_checkpoint(path)
        self._model().load_state_dict(ck["train_model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        for g in self.optimizer.param_groups:  # config may have changed the LR on resume
            g.setdefault("initial_lr", g["lr"])
        if self.ema and ck.get("ema"):
            self.ema.load_state_dict(ck["ema"])
        self.scaler.load_state_dict(ck["scaler"])
        self.start_epoch, self.global_step = ck["epoch"] + 1, ck["global_step"]
        self.best_value, self.best_epoch, self.bad_epochs = (
            ck["best_value"],
            ck["best_epoch"],
            ck["bad_epochs"],
        )
        self.best_conf = ck.get("best_conf")
        torch.set_rng_state(ck["rng"]["torch"])
        keys, pos, has_gauss, gauss = ck["rng"]["numpy"]
        np.random.set_state(("MT19937", np.asarray(keys, np.uint32), pos, has_gauss, gauss))
        random.setstate((3, tuple(ck["rng"]["python"]), None))
        if self.store and self.run and self.main:
            # rows logged after the checkpoint belong to the epoch being replayed: drop them
            self.store.truncate_after(self.run["id"], self.global_step, ck["epoch"])
        self._event(f"resumed from {path.name}: epoch {self.start_epoch + 1}, step {self.global_step}")

    # ------------------------------------------------------------------ loop

    def _loader(self, epoch: int) -> DataLoader:
        return train_loader(
            self.train_ds,
            self.cfg.train.batch,
            self.cfg.train.workers,
            self.cfg.train.seed,
            epoch,
            self.sampler,
            pin_memory=self.device.type == "cuda",
        )

    def fit(self) -> TrainSummary:
        cfg = self.cfg.train
        t_start = time.monotonic()
        progress = TrainProgress(cfg.epochs, enabled=not self.quiet)
        handler = signal.getsignal(signal.SIGTERM)
        in_main_thread = threading.current_thread() is threading.main_thread()
        if self.main and in_main_thread:
            signal.signal(signal.SIGTERM, _raise_interrupt)
        status, last_metrics, epoch = "finished", None, self.start_epoch - 1
        try:
            for load in self.pretrained:
                progress.message(load.report.summary())
                self._event(load.line())
                if self.store and self.run and self.main:
                    self.store.add_artifact(
                        self.run["id"], "pretrained", load.weights.path, load.provenance()
                    )
            steps_per_epoch = max(1, len(self._loader(self.start_epoch)) // cfg.accumulate)
            total_steps = steps_per_epoch * cfg.epochs
            for epoch in range(self.start_epoch, cfg.epochs):
                augs = self.cfg.augs
                if augs.mosaic.prob > 0 and augs.close_mosaic and epoch == cfg.epochs - augs.close_mosaic:
                    self._event(f"mosaic closed for the last {self.cfg.augs.close_mosaic} epochs")
                if epoch == augs.ignore_background_epochs and epoch > 0:
                    self._event("background images included from now on")
                t_epoch = time.monotonic()
                train_loss, out_of_time = self._train_epoch(
                    epoch, steps_per_epoch, total_steps, t_start, progress
                )
                self._check_replicas(epoch)
                result = self._validate()
                last_metrics = self._end_epoch(
                    epoch, train_loss, result, time.monotonic() - t_epoch, progress
                )
                if cfg.patience and self.bad_epochs >= cfg.patience:
                    self._event(f"early stop: no improvement for {cfg.patience} epochs")
                    break
                if out_of_time:
                    self._event(f"time budget of {cfg.time_hours} h reached: stopped after epoch {epoch + 1}")
                    break
        except KeyboardInterrupt:
            status = "interrupted"
            self._event(
                "interrupted by signal: resume with `detcli train --resume "
                f"{self.run['name'] if self.run else ''}`",
                "warning",
            )
        finally:
            if self.logger:
                self.logger.flush()
            if in_main_thread:
                signal.signal(signal.SIGTERM, handler)
            dist_utils.cleanup()
        return TrainSummary(
            self.run["name"] if self.run else "",
            status,
            epoch + 1,
            self.global_step,
            self.best_epoch,
            None if self.best_epoch is None else self.best_value,
            self.run_dir / "best.pt" if self.best_epoch is not None else None,
            last_metrics,
            time.monotonic() - t_start,
        )

    def _train_epoch(
        self, epoch: int, steps_per_epoch: int, total_steps: int, t_start: float, progress: TrainProgress
    ) -> tuple[float, bool]:
        cfg = self.cfg.train
        loader = self._loader(epoch)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        n_batches = len(loader)
        progress.start_epoch(epoch, n_batches)
        losses_sum, n_loss, bad_in_row, out_of_time = 0.0, 0, 0, False
        t_last, images_since = time.monotonic(), 0
        budget = cfg.time_hours * 3600 if cfg.time_hours else None
        for i, (images, targets) in enumerate(loader):
            images = to_model_input(images, self.device)
            targets = [
                {"labels": t["labels"].to(self.device), "boxes": t["boxes"].to(self.device)} for t in targets
            ]
            with torch.autocast(
                self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
            ):
                outputs = self.model(images, targets=targets)
            # the loss runs in fp32: matching and log-probabilities are precision-sensitive
            with torch.autocast(self.device.type, enabled=False):
                outputs = _to_float(outputs)
                losses = self.criterion(
                    outputs, targets, epoch=epoch, step=i, global_step=self.global_step, epoch_step=n_batches
                )
                total = sum(losses.values())
            if not torch.isfinite(total):
                bad_in_row += 1
                self.stepper.discard()
                self._event(f"non-finite loss at epoch {epoch + 1} batch {i + 1}: step skipped", "warning")
                if bad_in_row >= cfg.max_bad_steps:
                    raise TrainingStopped(
                        f"{bad_in_row} non-finite losses in a row: lower train.lr, check your labels "
                        "(`detcli data check`), or set train.amp=off"
                    )
                continue
            bad_in_row = 0
            self.stepper.backward(total)
            last_batch = i + 1 == n_batches
            stepped = self.stepper.maybe_step(i, last_batch)
            if stepped:
                self.global_step += 1
                apply_lr(self.optimizer, lr_factor(self.global_step, total_steps, steps_per_epoch, cfg))
            losses_sum += float(total.detach())
            n_loss += 1
            images_since += len(images) * dist_utils.world_size()
            now = time.monotonic()
            elapsed = now - t_start
            done_frac = (epoch - self.start_epoch + (i + 1) / n_batches) / max(
                cfg.epochs - self.start_epoch, 1
            )
            eta = elapsed / max(done_frac, 1e-9) * (1 - done_frac)
            if budget:
                eta = min(eta, max(budget - elapsed, 0.0))
            if (
                self.logger
                and (self.global_step % cfg.log_every == 0 or last_batch)
                and ((i + 1) % cfg.accumulate == 0 or last_batch)
            ):
                img_s = images_since / max(now - t_last, 1e-9)
                t_last, images_since = now, 0
                self.logger.log(
                    step=self.global_step,
                    epoch=epoch,
                    loss=float(total.detach()),
                    losses=_group_losses(losses),
                    lr={g["name"]: g["lr"] for g in self.optimizer.param_groups},
                    mem_mb=memory_mb(self.device),
                    img_s=img_s,
                    eta_s=eta,
                )
            if self.on_step and self.main:
                self.on_step(
                    {"step": self.global_step, "epoch": epoch, "loss": float(total.detach()), "eta_s": eta}
                )
            progress.update(
                i + 1,
                f"loss {losses_sum / n_loss:.3f} lr {self.optimizer.param_groups[-1]['lr']:.2e} "
                f"mem {memory_mb(self.device):.0f}MB eta {fmt_eta(eta)}",
            )
            if budget and elapsed >= budget:
                out_of_time = True
                break
        return losses_sum / max(n_loss, 1), out_of_time

    def _check_replicas(self, epoch: int) -> None:
        """DDP: every rank must hold the same weights; a checksum per rank proves it (and catches divergence)."""
        if not self.ddp:
            return
        flat = torch.cat([p.detach().double().flatten() for p in self._model().parameters()])
        mine = torch.stack([flat.sum(), (flat * flat).sum()]).to(self.device)
        gathered = [torch.zeros_like(mine) for _ in range(dist_utils.world_size())]
        torch.distributed.all_gather(gathered, mine)
        spread = max(float((g - gathered[0]).abs().max()) for g in gathered)
        if self.main:
            level = "info" if spread == 0 else "warning"
            self._event(
                f"DDP epoch {epoch + 1}: weights {'identical' if spread == 0 else 'DIFFER'} on "
                f"{len(gathered)} ranks (checksum spread {spread:.3g})",
                level,
            )

    def _validate(self) -> EvalResult | None:
        if not self.main:
            return None
        model = self.ema.module if self.ema else self._model()
        result = evaluate_model(
            model, self.val_ds, self.cfg.eval, batch=self.cfg.train.batch, workers=0, device=self.device
        )
        if result.skipped:
            self._event(
                f"{len(result.skipped)} unreadable validation image(s) not scored, e.g. {result.skipped[0]} "
                "(run `detcli data check`)",
                "warning",
            )
        return result

    def _end_epoch(
        self,
        epoch: int,
        train_loss: float,
        result: EvalResult | None,
        seconds: float,
        progress: TrainProgress,
    ) -> dict | None:
        dist_utils.barrier()
        if not self.main or result is None:
            return None
        value = best_metric(result, self.cfg.eval.best_metric)
        improved = value > self.best_value
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_conf = result.best_conf
        else:
            self.bad_epochs += 1
        metrics = {
            "train_loss": train_loss,
            "map50": result.map50,
            "map50_95": result.map50_95,
            "precision": result.precision,
            "recall": result.recall,
            "f1": result.f1,
            "iou": result.iou,
            "per_class": [{k: v for k, v in c.items() if k != "pr50"} for c in result.per_class],
            "duration_s": seconds,
        }
        if self.logger:
            # the epoch's step rows become durable together with its metrics and checkpoint
            self.logger.flush()
        if self.store and self.run:
            self.store.log_epoch(self.run["id"], epoch, **metrics)
        if self.on_epoch and self.main:
            self.on_epoch({"epoch": epoch, **metrics})
        if improved:
            self._save("best.pt", epoch)
            if self.store and self.run:
                self.store.mark_best(self.run["id"], epoch, value)
                self._event(f"new best at epoch {epoch + 1}: {self.cfg.eval.best_metric} = {value:.4f}")
        self._save("last.pt", epoch)
        skipped = len(self.train_ds.skipped)
        if skipped:
            self._event(f"{skipped} unreadable image(s) skipped so far (run `detcli data check`)", "warning")
        progress.end_epoch(
            f"epoch {epoch + 1}/{self.cfg.train.epochs} loss {train_loss:.3f} mAP50 {result.map50:.3f} "
            f"mAP50-95 {result.map50_95:.3f} P {result.precision:.3f} R {result.recall:.3f} F1 {result.f1:.3f} "
            f"({seconds:.0f}s){' *best*' if improved else ''}"
        )
        return {k: v for k, v in metrics.items() if k != "per_class"} | {"best_conf": result.best_conf}


def _numpy_rng_state() -> list:
    """numpy's global RNG state as plain lists (checkpoints are loaded with weights_only=True)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return [keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def _to_float(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _to_float(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_float(v) for v in obj]
    return obj


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
