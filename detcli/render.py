"""Rich renderings shared by commands: evaluation tables and summaries."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render_eval(result, console: Console, title: str = "evaluation") -> None:
    """Per-class table, then the summary: mAP figures and P/R/F1/IoU at the production threshold."""
    t = Table(title=f"{title}: conf {result.conf:g}, IoU {result.iou_threshold:g}", title_justify="left")
    for col in ("class", "gt", "AP50", "AP50-95", "P", "R", "F1", "IoU", "TP", "FP", "FN"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c in result.per_class:
        t.add_row(
            c["class"],
            str(c["gt"]),
            _f(c["ap50"]),
            _f(c["ap50_95"]),
            _f(c["precision"]),
            _f(c["recall"]),
            _f(c["f1"]),
            _f(c["iou"]),
            str(c["tp"]),
            str(c["fp"]),
            str(c["fn"]),
        )
    t.add_section()
    t.add_row(
        "[bold]all",
        str(result.tp + result.fn),
        _f(result.map50),
        _f(result.map50_95),
        _f(result.precision),
        _f(result.recall),
        _f(result.f1),
        _f(result.iou),
        str(result.tp),
        str(result.fp),
        str(result.fn),
        style="bold",
    )
    console.print(t)
    console.print(
        f"mAP50-95 {result.map50_95:.4f}  mAP50 {result.map50:.4f}  mAP75 {result.map75:.4f}  "
        f"(small {result.map_small:.3f} / medium {result.map_medium:.3f} / large {result.map_large:.3f})"
    )
    console.print(
        f"at conf {result.conf:g}: precision {result.precision:.4f}  recall {result.recall:.4f}  "
        f"F1 {result.f1:.4f}  mean IoU of TPs {result.iou:.4f}"
    )
    console.print(f"F1-best confidence: {result.best_conf:.4f} (F1 {result.best_f1:.4f})")
