"""ssd-resnet50 ONNX export: BN folding, validation naming the output, and the FP16 export (`--half`)."""

from __future__ import annotations

import copy
import json
from functools import lru_cache

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from ssdconvert.fileio import sha256_of
from ssdconvert.errors import ExportError, NonFiniteOutputError
from ssdconvert.export import convert_to_fp16, seeded_input
from ssdconvert.zoo.raw_outputs import DEFAULT_TOLERANCES, compare_outputs, validate_model_outputs

FP16_ATOL, FP16_RTOL = DEFAULT_TOLERANCES["fp16"]


@pytest.fixture(scope="module")
def torch_outputs(r50_model, r50_spec):
    """FP32 PyTorch outputs per batch size, computed once for the FP32 and the FP16 checks."""

    @lru_cache(maxsize=None)
    def run(batch: int):
        x = seeded_input(r50_spec, batch, seed=batch)
        with torch.no_grad():
            return x, [t.numpy() for t in r50_model(torch.from_numpy(x))]

    return run


def sidecar(path):
    return json.loads(path.with_name(path.name + ".json").read_text())


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_fp32_graph_has_batchnorm_folded(r50_onnx):
    """Graph names, shapes and parity are checked for every model in tests/contract; BN folding is
    what this family has and the others do not."""
    model = onnx.load(str(r50_onnx))
    assert model.opset_import[0].version == 11
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)  # folded into the convs


def test_fp32_sidecar_is_unchanged_in_meaning(r50_onnx, r50_export_bs):
    meta = sidecar(r50_onnx)
    assert meta["model"] == "ssd-resnet50" and meta["precision"] == "fp32"
    assert meta["onnx"]["sha256"] == sha256_of(r50_onnx)
    assert meta["onnx"]["io_dtype"] == "float32" and meta["spec"]["input"]["dtype"] == "float32"
    assert meta["spec"]["gflops_per_image"] == 40.3 and meta["spec"]["backbone_file"] == "resnet50-19c8e357.pth"
    v = meta["validation"]
    assert v["atol"] == 1e-4 and v["rtol"] == 0.0 and v["passed"] is True
    expected = {(b, o) for b in (1, r50_export_bs) for o in ("ploc", "plabel")}
    assert {(d["batch"], d["output"]) for d in v["diffs"]} == expected
    assert all(d["tolerance"] == 1e-4 and d["max_abs"] < 1e-4 for d in v["diffs"])


def test_fp32_validation_names_the_output_that_differs(r50_onnx, r50_model, r50_spec):
    perturbed = copy.deepcopy(r50_model)
    with torch.no_grad():
        perturbed.conf[0].bias += 0.01
    report = validate_model_outputs(r50_onnx, perturbed, r50_spec, [1])
    failure = report.first_failure()
    assert failure.output == "plabel" and failure.max_abs == pytest.approx(0.01, rel=1e-3)
    assert next(d for d in report.diffs if d.output == "ploc").max_abs < 1e-4


def test_fp16_graph_is_float16_throughout(r50_onnx_fp16, r50_onnx):
    path, printed = r50_onnx_fp16
    model = onnx.load(str(path))
    (inp,) = model.graph.input
    assert inp.name == "image" and inp.type.tensor_type.elem_type == TensorProto.FLOAT16
    assert dims(inp) == ["-1", 3, 300, 300]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [TensorProto.FLOAT16] * 2
    float_types = {i.data_type for i in model.graph.initializer} - {TensorProto.INT64}
    assert float_types == {TensorProto.FLOAT16}
    assert not any(n.op_type == "Cast" for n in model.graph.node)
    fp32 = onnx.load(str(r50_onnx))
    assert [n.op_type for n in model.graph.node] == [n.op_type for n in fp32.graph.node]  # same graph
    assert path.stat().st_size < 0.55 * r50_onnx.stat().st_size  # ~45.8 MB vs ~91.5 MB
    assert "precision: fp16" in printed and "max abs <= 0.001 + 0.005 * max|torch|" in printed


@pytest.mark.parametrize("batch", [1, 3, pytest.param(16, marks=pytest.mark.heavy)])  # 16: ~17 s
def test_fp16_runs_in_onnxruntime_cpu_within_the_stated_tolerance(r50_onnx_fp16, torch_outputs, batch):
    session = ort.InferenceSession(str(r50_onnx_fp16[0]), providers=["CPUExecutionProvider"])
    x, refs = torch_outputs(batch)
    outputs = session.run(["ploc", "plabel"], {"image": x.astype(np.float16)})
    for got, ref in zip(outputs, refs):
        assert got.dtype == np.float16 and got.shape == ref.shape
        err = np.abs(got.astype(np.float64) - ref).max()
        assert err <= FP16_ATOL + FP16_RTOL * np.abs(ref).max()
        assert err > 1e-5  # really rounded to float16, not an FP32 graph in disguise
        assert err / np.abs(ref).max() < 2e-3  # measured ~5e-4: one float16 rounding, with seed-0 weights


def test_fp16_sidecar_records_precision_and_tolerance(r50_onnx_fp16):
    path = r50_onnx_fp16[0]
    meta = sidecar(path)
    assert meta["precision"] == "fp16" and meta["onnx"]["precision"] == "fp16"
    assert meta["onnx"]["io_dtype"] == "float16" and meta["onnx"]["sha256"] == sha256_of(path)
    assert meta["spec"]["input"]["dtype"] == "float16"
    assert [o["dtype"] for o in meta["spec"]["outputs"]] == ["float16", "float16"]
    v = meta["validation"]
    assert (v["atol"], v["rtol"], v["passed"]) == (FP16_ATOL, FP16_RTOL, True)
    assert v["reference"] == "PyTorch float32" and "atol + rtol * max|torch|" in v["criterion"]
    for d in v["diffs"]:
        assert FP16_ATOL < d["tolerance"] < 0.1 and d["max_abs"] < d["tolerance"]


def test_fp16_validation_still_catches_a_wrong_weight(r50_onnx_fp16, r50_model, r50_spec):
    perturbed = copy.deepcopy(r50_model)
    with torch.no_grad():
        perturbed.conf[0].bias += 0.05
    report = validate_model_outputs(r50_onnx_fp16[0], perturbed, r50_spec, [1], FP16_ATOL, FP16_RTOL)
    assert report.precision == "fp16" and not report.passed
    failure = report.first_failure()
    assert failure.output == "plabel" and failure.max_abs > report.limit(failure)
    assert next(d for d in report.diffs if d.output == "ploc").max_abs <= report.limit(failure)


def test_ssd_resnet34_exports_fp16_through_the_same_path(tmp_path, spec, torch_model):
    """The FP16 path is family-agnostic: the first model converts and validates too."""
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.export import export_model

    result = export_model(torch_model, spec, tmp_path / "r34_fp16.onnx", weights=WeightsSource(random_seed=0),
                         dynamic_batch=False, precision="fp16")
    assert result.precision == "fp16" and result.validation.passed
    assert result.validation.max_abs > 1e-5
    assert sidecar(result.onnx_path)["model"] == "ssd-resnet34"


def _tiny_model(op: str, weight: np.ndarray, domain: str = "") -> onnx.ModelProto:
    w = numpy_helper.from_array(weight.astype(np.float32), "w")
    node = helper.make_node(op, ["x", "w"], ["y"], domain=domain)
    graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def test_fp16_conversion_refuses_what_it_cannot_convert_safely(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_tiny_model("Add", np.array([1.0, 2.0])), path)
    assert convert_to_fp16(path) == 1
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16

    onnx.save(_tiny_model("Add", np.array([1.0, 1e5])), path)
    with pytest.raises(ExportError, match="tensor 'w' has values beyond the float16 range"):
        convert_to_fp16(path)
    onnx.save(_tiny_model("Pow", np.array([1.0, 2.0])), path)
    with pytest.raises(ExportError, match="does not support op.* Pow; export FP32 and use the compiler's precision"):
        convert_to_fp16(path)
    onnx.save(_tiny_model("Add", np.array([1.0, 2.0]), domain="com.example"), path)
    with pytest.raises(ExportError, match="does not support op"):
        convert_to_fp16(path)


def test_non_finite_outputs_never_pass():
    """NaN or inf on either side is a failure naming the output and the side, never a difference to judge (an
    fp16 overflow shows up on the ONNX side)."""
    ref = np.ones((1, 4), np.float32)
    got = ref.copy()
    got[0, 1] = np.nan
    with pytest.raises(NonFiniteOutputError, match=r"output 'ploc' of the ONNX model \(ONNX Runtime\) has 1 of 4 "
                                                   r"values not finite \(NaN or inf\) at batch 1"):
        compare_outputs([ref], [got], ["ploc"], 1, atol=1e-4)
    with pytest.raises(NonFiniteOutputError, match="output 'ploc' of the ONNX model"):
        compare_outputs([ref], [np.full((1, 4), np.inf, np.float16)], ["ploc"], 1, atol=1e-3, rtol=5e-3)
    with pytest.raises(NonFiniteOutputError, match=r"output 'plabel' of PyTorch has 1 of 4 .* check the "
                                                   r"checkpoint's weights"):
        compare_outputs([ref, got], [ref, ref], ["ploc", "plabel"], 1, atol=1e-4)


def test_unknown_precision_is_rejected(tmp_path, r50_model, r50_spec):
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.export import export_model

    with pytest.raises(ExportError, match="precision 'int8' is not supported; use fp32 or fp16"):
        export_model(r50_model, r50_spec, tmp_path / "a.onnx", weights=WeightsSource(random_seed=0), precision="int8")
