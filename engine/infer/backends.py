"""Backends run the compiled graph: (images NCHW float32, sizes N x 2 (w, h)) -> labels, boxes, scores.

Boxes come back in pixels of `sizes`; the shared post-processing maps them to the original image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class Backend(ABC):
    name = "base"
    dynamic = False  # whether the graph accepts any H, W (needed for cut-padding inference)
    on_cpu = True  # whether the graph runs on the CPU cores (then reading ahead competes with it)
    precision = (
        "fp32"  # the precision the graph really runs in (read back from the compiled model where one exists)
    )

    @abstractmethod
    def run(self, images: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the compiled graph on a batch."""


class TorchBackend(Backend):
    name = "torch"
    dynamic = True

    def __init__(self, path: Path | None, device: str = "cpu", model=None):
        import torch

        from engine.models import DFINEPostProcessor, build_model_from_checkpoint

        self.torch, self.device = torch, torch.device(device)
        if model is None:
            model, self.meta = build_model_from_checkpoint(path)
        else:
            self.meta = {}
        self.model = model.to(self.device).eval()
        self.on_cpu = self.device.type == "cpu"
        self.precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(
            next(self.model.parameters()).dtype, "fp32"
        )
        self.post = DFINEPostProcessor(
            model.num_classes, num_top_queries=min(300, model.decoder.num_queries * model.num_classes)
        )

    @classmethod
    def from_model(cls, model, device: str = "cpu") -> TorchBackend:
        """A backend over a model already built and loaded (an official file has no detcli config inside)."""
        return cls(None, device, model=model)

    def run(self, images, sizes):
        with self.torch.no_grad():
            out = self.model(self.torch.from_numpy(images).to(self.device))
            labels, boxes, scores = self.post(out, self.torch.from_numpy(sizes).to(self.device))
        return labels.cpu().numpy(), boxes.float().cpu().numpy(), scores.float().cpu().numpy()


class OnnxBackend(Backend):
    name = "onnx"

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if device.startswith("cuda")
            else ["CPUExecutionProvider"]
        )
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.on_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        shape = self.session.get_inputs()[0].shape
        self.dynamic = not all(isinstance(d, int) for d in shape[2:])

    def run(self, images, sizes):
        labels, boxes, scores = self.session.run(None, {"images": images, "orig_target_sizes": sizes})
        return labels, boxes, scores


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(
        self,
        path: Path,
        device: str = "CPU",
        hint: str = "LATENCY",
        threads: int | None = None,
        precision: str | None = None,
    ):
        from engine.infer.openvino_core import core as shared_core

        core = shared_core()
        model = core.read_model(str(path))
        shape = model.input("images").get_partial_shape()
        self.dynamic = shape[2].is_dynamic or shape[3].is_dynamic  # batch may be free; H, W decide
        config = {"PERFORMANCE_HINT": hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        # Always explicit (engine/infer/precision.py has the rule): left alone, OpenVINO's CPU plugin runs bf16 on
        # CPUs with AVX512-BF16 or AMX, even for an f16 request, which moves boxes by pixels.
        from engine.infer.precision import choose_precision, device_capabilities

        if precision or device.startswith(("CPU", "GPU")):
            caps = device_capabilities(core, device) if not device.startswith(("AUTO", "MULTI")) else []
            config["INFERENCE_PRECISION_HINT"] = (
                choose_precision(precision, caps) if caps else (precision or "f32")
            )
        self._core, self._model, self._device, self._config = core, model, device, config
        self.device_name = device
        # A free batch axis costs OpenVINO's CPU plugin ~10% per image (measured at 640, dfine-n and dfine-s), and
        # single images are the common case: they run through a batch-1 copy; batches compile on first use.
        self._batched: tuple | None = None
        if shape[0].is_dynamic:
            single = model.clone()
            one = model.input("images").get_partial_shape()
            one[0] = 1
            single.reshape({"images": one, "orig_target_sizes": [1, 2]})
            self.compiled = core.compile_model(single, device, config)
            self._single = self._session(self.compiled)
        else:
            self.compiled = core.compile_model(model, device, config)
            self._single = self._batched = self._session(self.compiled)
        try:  # AUTO / MULTI resolve to real devices at compile time
            devices = list(self.compiled.get_property("EXECUTION_DEVICES"))
        except RuntimeError:
            devices = [device]
        self.on_cpu = any(str(d).upper().startswith("CPU") for d in devices)
        from engine.infer.precision import compiled_precision

        self.precision = compiled_precision(self.compiled)

    @staticmethod
    def _session(compiled) -> tuple:
        """An infer request and the output ports in our order, looked up once rather than per image."""
        return compiled.create_infer_request(), [compiled.output(n) for n in ("labels", "boxes", "scores")]

    def run(self, images, sizes):
        if images.shape[0] == 1:
            request, ports = self._single
        else:
            if self._batched is None:
                self._batched = self._session(
                    self._core.compile_model(self._model, self._device, self._config)
                )
            request, ports = self._batched
        res = request.infer({"images": images, "orig_target_sizes": sizes})
        return tuple(res[port] for port in ports)


class TensorRTBackend(Backend):
    name = "tensorrt"
    on_cpu = False

    def __init__(self, path: Path, device: str = "cuda"):
        from engine.export.tensorrt import require_tensorrt

        trt, torch = require_tensorrt()
        self.torch = torch
        logger = trt.Logger(trt.Logger.WARNING)
        with open(path, "rb") as f, trt.Runtime(logger) as runtime:
            self.engine = runtime.deserialize_cuda_engine(f.read())
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]

    def run(self, images, sizes):
        torch = self.torch
        feeds = {
            "images": torch.from_numpy(images).cuda(),
            "orig_target_sizes": torch.from_numpy(sizes).cuda(),
        }
        outs = {}
        for name in self.names:
            if name in feeds:
                self.context.set_input_shape(name, tuple(feeds[name].shape))
                self.context.set_tensor_address(name, feeds[name].data_ptr())
        for name in self.names:
            if name not in feeds:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = torch.int64 if name == "labels" else torch.float32
                outs[name] = torch.empty(shape, dtype=dtype, device="cuda")
                self.context.set_tensor_address(name, outs[name].data_ptr())
        self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
        torch.cuda.synchronize()
        return outs["labels"].cpu().numpy(), outs["boxes"].cpu().numpy(), outs["scores"].cpu().numpy()
