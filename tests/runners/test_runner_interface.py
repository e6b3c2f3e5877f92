"""The runner interface on the real ONNX Runtime and OpenVINO runtimes (tiny model)."""

from __future__ import annotations

import numpy as np
import pytest

from ssdconvert.backends import RunnerError, RunOptions, for_model
from ssdconvert.errors import SsdConvertError


def make_runner(model, backend="auto", batch=None):
    return for_model(model, backend).make_runner(model, RunOptions(batch=batch))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_runner_metadata_outputs_and_timing(tiny_onnx, backend, tiny):
    x = np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)
    with make_runner(tiny_onnx, backend, batch=3) as runner:
        assert [m.name for m in runner.inputs] == ["image"]
        assert [m.name for m in runner.outputs] == ["ploc", "plabel"]
        assert runner.inputs[0].dtype == "float32"
        assert runner.inputs[0].shape == (3, 8, 8)
        out = runner.infer({"image": x})
        out_list = runner.infer([x])  # a list in input order works too
        assert list(out) == ["ploc", "plabel"]
        assert out["plabel"].shape == (3, tiny.CLASSES, 64)
        for k in range(3):
            loc, cls = tiny.reference_outputs(x[k])
            np.testing.assert_allclose(out["ploc"][k], loc, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out_list["plabel"][k], cls, rtol=1e-5, atol=1e-5)
        assert len(runner.compute_ms) == 2 and runner.last_compute_ms > 0
        assert runner.versions()
    assert not runner.is_active


def test_onnxruntime_keeps_a_dynamic_batch(tiny_onnx):
    with make_runner(tiny_onnx, "onnxruntime") as runner:
        assert runner.static_batch is None
        for n in (1, 5):
            assert runner.infer([np.zeros((n, 3, 8, 8), np.float32)])["ploc"].shape == (n, 4, 64)


def test_openvino_reshapes_dynamic_batch_and_rejects_a_static_mismatch(tiny_onnx, tiny_onnx_bs4):
    with make_runner(tiny_onnx, "openvino", batch=2) as runner:
        assert runner.static_batch == 2
    with pytest.raises(RunnerError, match="static batch of 4"):
        make_runner(tiny_onnx_bs4, "openvino", batch=8).activate()


def test_runner_errors_are_clear(tmp_path, tiny_onnx):
    with pytest.raises(RunnerError, match="model not found"):
        make_runner(tmp_path / "missing.onnx").activate()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(RunnerError, match="ONNX Runtime cannot load"):
        make_runner(bad).activate()
    runner = make_runner(tiny_onnx)
    with pytest.raises(RunnerError, match="not active"):
        runner.infer([np.zeros((1, 3, 8, 8), np.float32)])
    with runner:
        with pytest.raises(RunnerError, match="ONNX Runtime failed"):
            runner.infer([np.zeros((1, 4, 8, 8), np.float32)])
