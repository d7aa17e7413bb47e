"""OpenVINO inside one long-lived process: backends come and go, children exit, the process survives."""

import subprocess
import sys
import textwrap

import pytest

ov = pytest.importorskip("openvino")


def _tiny_ir(path):
    import numpy as np
    import openvino.opset13 as ops

    images = ops.parameter([1, 3, 8, 8], np.float32, name="images")
    sizes = ops.parameter([1, 2], np.int64, name="orig_target_sizes")
    outputs = [ops.convert(sizes, "i64"), ops.relu(images), ops.convert(sizes, "f32")]
    for out, name in zip(outputs, ("labels", "boxes", "scores"), strict=True):
        out.output(0).get_tensor().set_names({name})
    model = ov.Model(outputs, [images, sizes])
    ov.save_model(model, str(path))
    return path


def test_backends_destroyed_in_creation_order_then_signals(tmp_path):
    """Before the shared Core, the second backend's teardown left the signal stack unmapped: SIGSEGV on SIGCHLD."""
    xml = _tiny_ir(tmp_path / "tiny.xml")
    script = textwrap.dedent(
        f"""
        import gc, signal, subprocess
        from engine.infer.backends import OpenVinoBackend

        first, second = OpenVinoBackend({str(xml)!r}), OpenVinoBackend({str(xml)!r})
        del first
        gc.collect()
        del second
        gc.collect()
        signal.signal(signal.SIGCHLD, lambda *a: None)  # as torch's DataLoader does
        for _ in range(5):
            subprocess.run(["true"])
        print("alive")
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "alive" in r.stdout, (r.returncode, r.stderr[-2000:])


def test_shared_core_lends_the_process_core_and_gives_it_back():
    from engine.infer.openvino_core import core, shared_core

    original = ov.Core
    with shared_core() as shared:
        assert ov.Core() is shared is core()
    assert ov.Core is original
    assert ov.Core() is not core()


@pytest.mark.parametrize(
    ("requested", "caps", "expected"),
    [
        (None, ["FP32", "INT8"], "f32"),
        ("f16", ["FP32", "INT8"], "f32"),  # AVX2-only x86 (this AMD EPYC): no f16 arithmetic
        ("f16", ["FP32", "BF16", "INT8"], "f32"),  # AVX512-BF16 EPYC: f16 must not become bf16
        ("f16", ["FP32", "FP16", "BF16"], "f16"),  # Sapphire Rapids AMX-FP16, ARM, iGPU
        ("bf16", ["FP32", "BF16"], "bf16"),  # asked for by name, and the CPU has it
        ("bf16", ["FP32"], "f32"),
        ("f32", ["FP32", "FP16", "BF16"], "f32"),
    ],
)
def test_precision_rule(requested, caps, expected):
    from engine.infer.precision import choose_precision

    assert choose_precision(requested, caps) == expected


def test_precision_rule_rejects_unknown():
    from engine.infer.precision import choose_precision

    with pytest.raises(ValueError, match="f32, f16 or bf16"):
        choose_precision("int4", ["FP32"])


@pytest.mark.parametrize("requested", [None, "f32", "f16", "bf16"])
def test_compiled_model_runs_the_rule_on_this_cpu(tmp_path, requested):
    """Whatever this CPU is, the compiled model runs what the rule says for its capabilities (read back), and the
    backend reports that precision, which is what bench prints and stores."""
    from engine.infer.backends import OpenVinoBackend
    from engine.infer.openvino_core import core
    from engine.infer.precision import choose_precision, runtime_precisions

    xml = _tiny_ir(tmp_path / "tiny.xml")
    caps = core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    want = choose_precision(requested, caps)
    be = OpenVinoBackend(xml, precision=requested)
    assert be.compiled.get_property("INFERENCE_PRECISION_HINT") == getattr(ov.Type, want)
    names = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}
    assert be.precision == names[want]
    assert runtime_precisions(be.compiled) <= {names[want], "fp32"}
