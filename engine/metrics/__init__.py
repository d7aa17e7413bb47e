"""Detection metrics: COCO mAP (faster-coco-eval) and P/R/F1/IoU at a production threshold."""

from engine.metrics.evaluator import DetectionEvaluator, EvalResult, best_metric

__all__ = ["DetectionEvaluator", "EvalResult", "best_metric"]
