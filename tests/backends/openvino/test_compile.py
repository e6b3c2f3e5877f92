"""The OpenVINO adapter with the real `ovc`: a real exported SSD-ResNet34, compared to ONNX Runtime."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli
from ssdconvert.backends.compiling import CompilerError
from ssdconvert.backends.openvino.compile import convert_ir
from ssdconvert.launcher import ToolFailedError

FP32_ATOL = 1e-4


@pytest.fixture(scope="module")
def reference(exported_onnx):
    """reference(batch) -> (input, ONNX Runtime outputs), one session and one run per batch size."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported_onnx), providers=["CPUExecutionProvider"])
    cache: dict[int, tuple] = {}

    def get(batch: int):
        if batch not in cache:
            x = np.random.default_rng(batch).standard_normal((batch, 3, 300, 300)).astype(np.float32)
            cache[batch] = (x, session.run(None, {session.get_inputs()[0].name: x}))
        return cache[batch]

    return get


def _ov(xml: Path, x: np.ndarray) -> list[np.ndarray]:
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(x)
    return [result[o] for o in compiled.outputs]


@pytest.fixture(scope="module")
def ir_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ir")


@pytest.fixture(scope="module")
def fp32_dynamic(exported_onnx, ir_dir):
    return convert_ir(exported_onnx, ir_dir / "ssd_dyn")


def test_fp32_dynamic_ir_matches_onnxruntime(exported_onnx, fp32_dynamic, reference):
    result = fp32_dynamic
    xml, bin_ = result.artefacts
    assert xml.suffix == ".xml" and bin_ == xml.with_suffix(".bin")
    assert result.command[0] == str(Path(sys.executable).parent / "ovc")  # the venv's own ovc
    assert "--compress_to_fp16=False" in result.command and "--input=image[?,3,300,300]" in result.command
    assert bin_.stat().st_size > 0.95 * exported_onnx.stat().st_size  # FP32 weights, not FP16
    for batch in (1, 2):  # dynamic batch: any size runs
        x, ref = reference(batch)
        got = _ov(xml, x)
        assert [r.shape for r in ref] == [g.shape for g in got] == [(batch, 4, 8732), (batch, 81, 8732)]
        for r, g in zip(ref, got):
            assert np.abs(r - g).max() <= FP32_ATOL


def test_record_and_log(exported_onnx, fp32_dynamic):
    record = json.loads(fp32_dynamic.sidecar.read_text())
    assert fp32_dynamic.sidecar.name == "ssd_dyn.xml.json"
    assert record["weights"] == "float32" and record["dynamic_batch"] is True
    assert record["command"] == fp32_dynamic.command
    assert record["ovc_reported"]["XML"].endswith("ssd_dyn.xml")
    from ssdconvert.fileio import sha256_of

    assert record["source_onnx"]["sha256"] == sha256_of(exported_onnx)
    assert "[ SUCCESS ] XML file:" in fp32_dynamic.log_path.read_text()


def test_static_batch_ir(exported_onnx, ir_dir, reference):
    result = convert_ir(exported_onnx, ir_dir / "static", batch=2)
    assert "--input=image[2,3,300,300]" in result.command
    import openvino as ov

    model = ov.Core().read_model(str(result.primary))
    assert list(model.inputs[0].get_partial_shape().to_shape()) == [2, 3, 300, 300]
    x, ref = reference(2)
    for r, g in zip(ref, _ov(result.primary, x)):
        assert np.abs(r - g).max() <= FP32_ATOL


def test_fp16_weights(exported_onnx, ir_dir, fp32_dynamic, reference):
    result = convert_ir(exported_onnx, ir_dir / "half", fp16=True)
    assert "--compress_to_fp16=True" in result.command
    fp32_bin = fp32_dynamic.artefacts[1].stat().st_size
    assert result.artefacts[1].stat().st_size < 0.6 * fp32_bin
    x, ref = reference(1)
    for r, g in zip(ref, _ov(result.primary, x)):
        assert np.abs(r - g).max() <= 1e-2  # FP16 weights, FP32 compute (measured ~2e-3)


def test_ovc_failure_is_one_line(onnx_factory, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["-1", 3, 300, 300])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["image"], ["out"])], "g", [inp], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ToolFailedError) as err:
        convert_ir(bad, tmp_path / "bad")
    message = str(err.value)
    assert "ovc failed (exit code 1): [ ERROR ]" in message and "NoSuchOp" in message
    assert "bad.ovc.log" in message and "\n" not in message


def test_output_naming(tiny_onnx, tmp_path):
    assert convert_ir(tiny_onnx, dry_run=True).primary == tiny_onnx.with_suffix(".xml")
    assert convert_ir(tiny_onnx, batch=4, fp16=True, dry_run=True).primary == \
        tiny_onnx.parent / "ssd_resnet34_bs4_fp16.xml"
    assert convert_ir(tiny_onnx, tmp_path / "a" / "named.xml", dry_run=True).artefacts == \
        [tmp_path / "a" / "named.xml", tmp_path / "a" / "named.bin"]
    assert convert_ir(tiny_onnx, f"{tmp_path}/outdir/", dry_run=True).primary == tmp_path / "outdir" / "ssd_resnet34.xml"


def test_bad_batch(onnx_factory):
    with pytest.raises(CompilerError, match="fixed batch of 4"):
        convert_ir(onnx_factory("s.onnx", batch=4), batch=2, dry_run=True)


def test_cli_openvino(tiny_onnx, tmp_path):
    result = CliRunner().invoke(cli, ["openvino", "--onnx", str(tiny_onnx), "--output", str(tmp_path / "t"),
                                      "--bs", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 't.xml'}" in result.output
    assert "float32 weights, fp32 inference, batch 2, input image[2,3,300,300]" in result.output
    dry = CliRunner().invoke(cli, ["openvino", "--onnx", str(tiny_onnx), "--fp16", "--dry-run"])
    assert dry.exit_code == 0 and "--compress_to_fp16=True" in dry.stdout
