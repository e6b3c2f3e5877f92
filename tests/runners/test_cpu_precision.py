"""The precision a CPU backend reports is the one it computed: decided from the probes, checked on the
compiled model, refused in one line where the CPU cannot do what was asked. Each test runs on this CPU and
on it made AVX2-only (`cpu_kind`) and compares the outcome with what the probe says."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.backends.base import RunnerError, RunOptions
from ssdconvert.cli import cli


def _refusal(precision: str) -> str | None:
    from ssdconvert.backends.openvino.device import refusal

    return refusal(precision)


def test_openvino_runner_computes_bf16_or_refuses_it(cpu_kind, tiny_onnx):
    from ssdconvert import backends

    runner = backends.get("openvino").make_runner if _refusal("bf16") else None
    if runner is not None:
        with pytest.raises(RunnerError, match="OpenVINO's CPU cannot compute bf16 here"):
            runner(tiny_onnx, RunOptions(batch=2, precision="bf16"))
        return
    with backends.get("openvino").make_runner(tiny_onnx, RunOptions(batch=2, precision="bf16")) as ov:
        assert ov.precision == "bf16" and ov.versions()["inference_precision"] == "bf16"
        out = ov.infer({"image": np.linspace(-3, 3, 2 * 3 * 64, dtype=np.float32).reshape(2, 3, 8, 8)})
    with backends.get("onnxruntime").make_runner(tiny_onnx) as ort:
        ref = ort.infer({"image": np.linspace(-3, 3, 2 * 3 * 64, dtype=np.float32).reshape(2, 3, 8, 8)})
    err = np.abs(out["plabel"] - ref["plabel"]).max() / np.abs(ref["plabel"]).max()
    assert 1e-4 < err < 2e-2  # bf16 rounding (8 mantissa bits), not f32


def test_a_compiled_model_computing_another_precision_than_asked_is_refused(tiny_onnx, monkeypatch):
    """Past the probe, the compiled model's own INFERENCE_PRECISION_HINT is checked: asked for f16 on a CPU without
    native FP16 (the probe told to allow it), OpenVINO computes bf16 or f32, and the runner says so instead of
    reporting f16."""
    from ssdconvert import backends
    from ssdconvert.backends.openvino import device

    native = "FP16" in device._reported("CPU")
    monkeypatch.setattr(device, "refusal", lambda precision, device="CPU": None)
    runner = backends.get("openvino").make_runner(tiny_onnx, RunOptions(batch=1, precision="fp16"))
    if native:
        with runner:
            assert runner.precision == "f16"
        return
    with pytest.raises(RunnerError, match=r"to compute (bf16|f32), not the f16 asked for"):
        runner.activate()


def test_bench_measures_what_the_cpu_computes_and_says_what_it_skipped(cpu_kind, tiny_onnx, tmp_path):
    result = CliRunner().invoke(cli, ["bench", "--model", str(tiny_onnx), "--backend", "openvino", "--bs", "1,2",
                                      "--duration", "0.02", "--precision", "fp32,bf16", "-o", str(tmp_path)])
    # a CPU backend: the CPU's features, which its figures depend on, are shown once
    assert [ln.startswith("CPU: ") for ln in result.output.splitlines()].count(True) == 1
    fp32 = json.loads((tmp_path / "tiny_dyn_openvino_fp32.json").read_text())
    assert fp32["runtime"]["inference_precision"] == "f32" and len(fp32["rows"]) == 2
    refused = _refusal("bf16")
    if refused:
        assert result.exit_code == 1, result.output
        assert f"skipped bf16: {refused}" in result.output
        assert result.output.strip().splitlines()[-1] == f"Error: bf16 not measured: {refused}"
        assert not (tmp_path / "tiny_dyn_openvino_bf16.json").exists()
    else:
        assert result.exit_code == 0, result.output
        bf16 = json.loads((tmp_path / "tiny_dyn_openvino_bf16.json").read_text())
        assert bf16["runtime"]["inference_precision"] == "bf16" and bf16["label"].endswith("CPU bf16")
    only = CliRunner().invoke(cli, ["bench", "--model", str(tiny_onnx), "--backend", "openvino", "--bs", "1",
                                    "--duration", "0.02", "--precision", "bf16", "-o", str(tmp_path / "only")])
    assert (only.exit_code == 1) == bool(refused), only.output
    if refused:  # the only thing asked: refused before anything runs
        assert only.output.strip().splitlines()[-1] == f"Error: {refused}" and not (tmp_path / "only").exists()


def test_openvino_compile_refuses_a_precision_the_cpu_cannot_compute(cpu_kind, tiny_onnx, tmp_path):
    result = CliRunner().invoke(cli, ["openvino", "--onnx", str(tiny_onnx), "--precision", "bf16", "--output",
                                      str(tmp_path / "m_bf16")])
    refused = _refusal("bf16")
    if refused:
        assert result.exit_code == 1 and result.output.strip().splitlines()[-1] == f"Error: {refused}"
        assert not list(tmp_path.iterdir())
    else:
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "m_bf16.xml.json").read_text())["precision"] == "bf16"
        assert "bf16 inference" in result.output


def test_a_recorded_bf16_model_is_refused_where_the_cpu_cannot_compute_it(tiny_onnx, tmp_path, monkeypatch):
    """An IR built for bf16 on a BF16 CPU, run where the probe says no BF16: infer refuses it naming the record."""
    from ssdconvert import backends
    from ssdconvert.cpu import AVX2_ONLY, SIMULATE_ENV

    xml = tmp_path / "m.xml"
    (tmp_path / "m.xml.json").write_text(json.dumps({"tool": "ovc", "precision": "bf16"}))
    import openvino as ov

    ov.save_model(ov.convert_model(str(tiny_onnx)), str(xml))
    monkeypatch.setenv(SIMULATE_ENV, AVX2_ONLY)
    with pytest.raises(RunnerError, match=r"cannot compute bf16 here.*bf16 is what m.xml.json records: rebuild it"):
        backends.get("openvino").make_runner(xml, RunOptions(batch=1))
    with backends.get("openvino").make_runner(xml, RunOptions(batch=1, precision="fp32")) as runner:
        assert runner.precision == "f32"


def test_ort_int8_weights_follow_the_vnni_probe(cpu_kind, tiny_onnx, tmp_path, tiny):
    """`--ort-types auto` on x86: full-range int8 weights with VNNI, 7-bit ones (reduce_range) without; the
    setting reaches ONNX Runtime's quantizer and the record says why."""
    import platform

    import onnx
    from onnx import numpy_helper

    from ssdconvert.backends.onnxruntime.quantize import quantize
    from ssdconvert.cpu import cpu_features
    from ssdconvert.samples import open_samples

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the VNNI-dependent choice is x86's")
    bins = tmp_path / "bins"
    tiny.write_inputs(bins, 4)
    settings = quantize(tiny_onnx, open_samples(bins).pick(4), tmp_path / "q.onnx", exclude=(), ort_types="auto",
                        per_channel=True, say=lambda s: None)
    vnni = cpu_features().vnni
    assert settings["reduce_range"] == (not vnni) and settings["types"] == "u8s8"
    if cpu_kind == "avx2-only":
        assert settings["reduce_range"] and "without VNNI" in settings["types_why"]
    weights = [numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "q.onnx")).graph.initializer
               if i.data_type == onnx.TensorProto.INT8 and i.dims and len(i.dims) == 4]
    peak = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert peak == (127 if vnni else 64)  # symmetric per channel: the largest weight on the end of [-127, 127] or,
    #                                       reduced, [-64, 64] (onnxruntime quant_utils.get_qmin_qmax_for_qType)
