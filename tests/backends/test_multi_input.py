"""Compilers with a two-input detector graph (images + im_info, NMS inside, int64 outputs), as Faster R-CNN's
export is: ATC through the fake, the real ovc and OpenVINO, ssdconvert's MagicMind build script on the fake
magicmind package."""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest

from ssdconvert.backends.ascend.compile import NMS_HINT, build_om
from ssdconvert.backends.compiling import CompilerError
from ssdconvert.backends.magicmind.compile import build_magicmind
from ssdconvert.backends.openvino.compile import convert_ir
from ssdconvert.launcher import ToolFailedError

SOC = "Ascend310P3"
HW = 64


def make_detector_onnx(path, opset: int = 16):
    """images [N, 3, 64, 64], im_info [N, 2] -> scores [N] (float), selected [M, 3] (int64, NonMaxSuppression),
    count [N] (int64): the shape of a graph with NMS inside and integer outputs."""
    import onnx
    from onnx import TensorProto, helper

    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, HW, HW])
    im_info = helper.make_tensor_value_info("im_info", TensorProto.FLOAT, ["N", 2])
    outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N"]),
               helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3]),
               helper.make_tensor_value_info("count", TensorProto.INT64, ["N"])]
    consts = [helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 1, 4]),
              helper.make_tensor("one", TensorProto.INT64, [1], [1]),
              helper.make_tensor("iou", TensorProto.FLOAT, [1], [0.5])]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["scores"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Concat", ["im_info", "im_info"], ["corners"], axis=1),
        helper.make_node("Reshape", ["corners", "shape"], ["boxes"]),
        helper.make_node("Reshape", ["scores", "shape3"], ["nms_scores"]),
        helper.make_node("NonMaxSuppression", ["boxes", "nms_scores", "one", "iou"], ["selected"]),
        helper.make_node("Cast", ["scores"], ["count"], to=TensorProto.INT64),
    ]
    consts.append(helper.make_tensor("shape3", TensorProto.INT64, [3], [-1, 1, 1]))
    graph = helper.make_graph(nodes, "detector", [images, im_info], outputs, initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def detector_onnx(tmp_path):
    return make_detector_onnx(tmp_path / "models" / "frcnn.onnx")


@pytest.fixture
def exported_detector(detector_onnx):
    """The graph with the export record the family's export writes beside it (the model it is)."""
    detector_onnx.with_name(f"{detector_onnx.name}.json").write_text(json.dumps({"model": "faster-rcnn-r101-fpn"}))
    return detector_onnx


def test_atc_gets_every_input_in_the_shape_and_the_op_notes(exported_detector, fake_on_path, tmp_path):
    result = build_om(exported_detector, SOC, batch=4, output=tmp_path / "om" / "frcnn_bs4")
    assert "--input_shape=images:4,3,64,64;im_info:4,2" in result.command
    # NonMaxSuppression's output length depends on the data: ATC packs host op libraries (ATC docs: --output)
    assert result.primary.name == f"frcnn_bs4_linux_{platform.machine()}.om"
    record = json.loads(result.sidecar.read_text())
    assert record["inputs"] == [{"name": "images", "shape": [4, 3, 64, 64], "dtype": "float32"},
                                {"name": "im_info", "shape": [4, 2], "dtype": "float32"}]
    notes = record["op_notes"]
    assert len(notes) == 2 and notes[0].startswith("NonMaxSuppression: ATC parses it as NonMaxSuppressionV6")
    assert notes[1].startswith("int64 outputs (selected, count) are kept as int64")
    assert "--opset 11" in notes[0] and "--variant split" in notes[0]  # the variant its export record's model has
    assert record["model"] == "faster-rcnn-r101-fpn"


def test_the_nms_note_names_no_variant_without_a_record_naming_the_model(detector_onnx, tmp_path):
    result = build_om(detector_onnx, SOC, batch=4, output=tmp_path / "x", dry_run=True, tool="/opt/atc")
    assert "--opset 11" in result.info["op_notes"][0] and "--variant" not in result.info["op_notes"][0]
    assert result.info["model"] is None


def test_atc_gears_refused_for_a_graph_with_nms_point_to_the_split_variant(exported_detector, fake_on_path,
                                                                          tmp_path):
    with pytest.raises(ToolFailedError) as failure:
        build_om(exported_detector, SOC, dynamic_batches=[1, 2, 4], output=tmp_path / "om" / "frcnn_dyn")
    message = str(failure.value)
    assert "data-dependent intermediate shapes (NonMaxSuppression)" in message and NMS_HINT in message
    assert "or export --variant split (faster-rcnn-r101-fpn as device models with a host stage between them)." in message


def test_atc_dry_run_of_gears_writes_every_input_with_a_leading_minus_one(detector_onnx, tmp_path):
    result = build_om(detector_onnx, SOC, dynamic_batches=[1, 2], output=tmp_path / "x", dry_run=True,
                      tool="/opt/atc")
    assert "--input_shape=images:-1,3,64,64;im_info:-1,2" in result.command
    assert "--dynamic_batch_size=1,2" in result.command


def test_aipp_is_refused_for_a_model_with_side_inputs(detector_onnx, tmp_path):
    with pytest.raises(CompilerError, match=r"has 2 inputs \(images, im_info\); --aipp normalises one uint8 image"):
        build_om(detector_onnx, SOC, batch=1, aipp=True, output=tmp_path / "x", dry_run=True, tool="/opt/atc")


def test_ovc_converts_both_inputs_and_openvino_runs_them(detector_onnx, tmp_path):
    from ssdconvert.backends import get

    result = convert_ir(detector_onnx, tmp_path / "ir" / "frcnn")
    assert any(arg == "--input=images[?,3,64,64],im_info[?,2]" for arg in result.command)
    assert result.info["inputs"] == [{"name": "images", "shape": ["?", 3, 64, 64], "dtype": "float32"},
                                     {"name": "im_info", "shape": ["?", 2], "dtype": "float32"}]
    rng = np.random.default_rng(0)
    feeds = {"images": rng.standard_normal((3, 3, HW, HW)).astype(np.float32),
             "im_info": np.array([[64, 48], [30, 64], [64, 64]], np.float32)}
    with get("openvino").make_runner(result.primary) as runner:
        assert [m.name for m in runner.inputs] == ["images", "im_info"]
        out = runner.infer(feeds)
    np.testing.assert_allclose(out["scores"], feeds["images"].mean(axis=(1, 2, 3)), atol=1e-5)
    assert out["count"].dtype == np.int64


def test_magicmind_gets_input_dims_once_per_input(detector_onnx, fake_on_path, tmp_path):
    result = build_magicmind(detector_onnx, batch=2, output=tmp_path / "mm" / "frcnn")
    command = result.command
    starts = [i for i, arg in enumerate(command) if arg == "--input_dims"]
    assert [command[starts[0] + 1:starts[0] + 5], command[starts[1] + 1:starts[1] + 3]] == \
        [["2", "3", "64", "64"], ["2", "2"]]
    assert command[command.index("--batch_size") + 1:command.index("--batch_size") + 3] == ["2", "2"]
    assert result.primary.is_file()


def test_magicmind_gives_a_mutable_shape_a_range_per_input(detector_onnx, fake_on_path, tmp_path):
    """build_param.py's --dim_range_min/max are `append` options, one per input (model_process.py set_dim_range)."""
    result = build_magicmind(detector_onnx, batch=2, dynamic=True, output=tmp_path / "x")
    command = result.command
    ranges = [command[i + 1:command.index("--dim_range_max", i)] if name == "--dim_range_min" else None
              for i, name in enumerate(command) if name == "--dim_range_min"]
    assert ranges == [["1", "3", "64", "64"], ["1", "2"]]
    assert result.info["dim_ranges"] == [{"min": [1, 3, HW, HW], "max": [2, 3, HW, HW]}, {"min": [1, 2], "max": [2, 2]}]
    with pytest.raises(CompilerError, match="same batch range"):
        build_magicmind(detector_onnx, batch=2, dynamic=True, dry_run=True,
                        dim_ranges=[((1, 3, HW, HW), (4, 3, HW, HW)), ((1, 2), (2, 2))])
