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


def test_fp32_graph_runs_in_fp32_on_cpu(tmp_path):
    """OpenVINO's CPU default is bf16 where the CPU has it; an FP32 artifact must give FP32 numbers everywhere."""
    from engine.infer.backends import OpenVinoBackend

    xml = _tiny_ir(tmp_path / "tiny.xml")
    be = OpenVinoBackend(xml)
    assert be.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    # a profile's hint reaches the plugin (f16 falls back to f32 on CPUs without f16 arithmetic)
    be16 = OpenVinoBackend(xml, precision="f16")
    assert be16.compiled.get_property("INFERENCE_PRECISION_HINT") in (ov.Type.f16, ov.Type.f32)
