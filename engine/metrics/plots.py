"""PNG plots of an evaluation: confusion matrices, P/R/F1 vs confidence, precision-recall curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from engine.metrics.evaluator import EvalResult


def save_eval_plots(res: EvalResult, out_dir: str | Path) -> list[Path]:
    """Write confusion_matrix.png, confusion_matrix_normalized.png, pr_f1_vs_conf.png, pr_curve.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _confusion(res, out / "confusion_matrix.png", normalise=False),
        _confusion(res, out / "confusion_matrix_normalized.png", normalise=True),
    ]
    if res.sweep.get("conf"):
        paths += [_vs_conf(res, out / "pr_f1_vs_conf.png"), _pr(res, out / "pr_curve.png")]
    return paths


def _confusion(res: EvalResult, path: Path, normalise: bool) -> Path:
    cm = np.asarray(res.confusion, np.float64)
    names = [*res.class_names, "background"]
    if normalise:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(names)
    fig, ax = plt.subplots(figsize=(max(5, n * 0.6 + 2), max(4, n * 0.6 + 1.5)))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"confusion matrix{' (row-normalised)' if normalise else ''} at conf {res.conf:g}, IoU {res.iou_threshold:g}"
    )
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    f"{cm[i, j]:.2f}" if normalise else f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                )
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _vs_conf(res: EvalResult, path: Path) -> Path:
    s = res.sweep
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ("precision", "recall", "f1"):
        ax.plot(s["conf"], s[key], label=key)
    ax.axvline(res.best_conf, color="grey", ls="--", label=f"best F1 {res.best_f1:.3f} @ {res.best_conf:.3f}")
    ax.set_xlabel("confidence threshold")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pr(res: EvalResult, path: Path) -> Path:
    """Per-class PR curves (COCO-interpolated, IoU 0.5) and the overall curve of the confidence sweep."""
    s = res.sweep
    fig, ax = plt.subplots(figsize=(6.5, 5))
    recall_points = np.linspace(0, 1, 101)
    for c in res.per_class:
        if c.get("pr50"):
            ax.plot(recall_points, c["pr50"], lw=1, label=f"{c['class']} AP50 {c['ap50'] or 0:.3f}")
    ax.plot(s["recall"], s["precision"], color="black", lw=2, label="all (threshold sweep)")
    if len(res.per_class) <= 20:
        ax.legend(fontsize=7, loc="lower left")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"PR at IoU {res.iou_threshold:g} (mAP50 {res.map50:.3f})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
