"""Inference: one Predictor over torch / ONNX Runtime / OpenVINO / TensorRT with shared pre/post-processing."""

from engine.infer.predictor import Detections, FilePrediction, Predictor

__all__ = ["Detections", "FilePrediction", "Predictor"]
