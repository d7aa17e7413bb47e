"""Export: ONNX (post-processing in the graph), OpenVINO IR (FP32/FP16/INT8), TensorRT engines."""
