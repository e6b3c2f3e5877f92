"""`ssdconvert dequantize`: QDQ INT8 graphs built here with known scales and zero points fold back to the
float values computed by hand; the vendored ST model dequantizes, runs and agrees with its INT8 release."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from ssdconvert.cli import cli
from ssdconvert.dequantize import dequantize_array, dequantize_graph
from ssdconvert.errors import SsdConvertError

OPSET = 19


def const(name: str, values, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def qdq(tensor: str, out: str, scale: str, zero: str, *, axis: int | None = None) -> list:
    """QuantizeLinear -> DequantizeLinear of an activation."""
    extra = {} if axis is None else {"axis": axis}
    return [helper.make_node("QuantizeLinear", [tensor, scale, zero], [f"{out}_q"], name=f"{out}_quant", **extra),
            helper.make_node("DequantizeLinear", [f"{out}_q", scale, zero], [out], name=f"{out}_dequant", **extra)]


def make_model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "qdq", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=9)
    onnx.checker.check_model(model)
    return model


def conv_model() -> onnx.ModelProto:
    """x -> Q/DQ -> Conv 1x1 (2 output channels, per-channel int8 weights and int32 bias, both with
    zero points) -> Q -> Transpose -> DQ -> y: a QDQ pair with a layout op between its halves."""
    inits = [
        const("s_x", 0.5, np.float32), const("z_x", 2, np.int8),
        const("w_q", [[[[-3]]], [[[5]]]], np.int8), const("w_s", [0.5, 0.25], np.float32),
        const("w_z", [1, -2], np.int8),
        const("b_q", [10, -7], np.int32), const("b_s", [0.125, 0.5], np.float32), const("b_z", [2, 1], np.int32),
        const("s_y", 0.25, np.float32), const("z_y", -1, np.int8),
    ]
    nodes = [*qdq("x", "x_dq", "s_x", "z_x"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], name="w_dequant", axis=0),
             helper.make_node("DequantizeLinear", ["b_q", "b_s", "b_z"], ["b"], name="b_dequant", axis=0),
             helper.make_node("Conv", ["x_dq", "w", "b"], ["conv"], name="conv"),
             helper.make_node("QuantizeLinear", ["conv", "s_y", "z_y"], ["conv_q"], name="conv_quant"),
             helper.make_node("Transpose", ["conv_q"], ["conv_qt"], name="layout", perm=[0, 2, 3, 1]),
             helper.make_node("DequantizeLinear", ["conv_qt", "s_y", "z_y"], ["y"], name="y_dequant")]
    return make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])], inits)


def initializers(model) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_weights_fold_to_the_floats_computed_by_hand():
    model, stats = dequantize_graph(conv_model())
    values = initializers(model)
    # (q - zero point) * scale, per output channel: (-3 - 1) * 0.5, (5 + 2) * 0.25
    np.testing.assert_array_equal(values["w"], np.array([[[[-2.0]]], [[[1.75]]]], np.float32))
    # (10 - 2) * 0.125, (-7 - 1) * 0.5
    np.testing.assert_array_equal(values["b"], np.array([1.0, -4.0], np.float32))
    assert values["w"].dtype == values["b"].dtype == np.float32
    assert not {"w_q", "w_s", "b_q", "s_x", "s_y"} & set(values)  # nothing left reads them
    assert stats.folded_weights == 2


def test_activation_pairs_go_also_across_a_transpose():
    model, stats = dequantize_graph(conv_model())
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops == {"Conv": 1, "Transpose": 1}
    transpose = next(n for n in model.graph.node if n.op_type == "Transpose")
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert list(conv.input) == ["x", "w", "b"] and list(transpose.input) == list(conv.output)
    assert list(transpose.output) == ["y"]  # the graph output keeps its name
    assert stats.removed == {"QuantizeLinear": 2, "DequantizeLinear": 4} and not stats.kept
    x = np.array([[[[1.0, -2.0], [0.5, 3.0]]]], np.float32)
    # the float network written out: 1x1 conv = per-channel scale + bias, then NCHW -> NHWC
    expected = np.stack([x[0, 0] * -2.0 + 1.0, x[0, 0] * 1.75 - 4.0], axis=-1)[None]
    np.testing.assert_allclose(run(model, {"x": x})[0], expected, rtol=0, atol=1e-6)


def test_per_tensor_uint8_and_axis_one_weights():
    # uint8 per tensor: (q - 128) * 0.125; int8 along axis 1 (scales per column): (q - 0) * s[j]
    np.testing.assert_array_equal(dequantize_array(np.array([0, 128, 255], np.uint8), np.float32(0.125),
                                                   np.uint8(128), 1), np.array([-16.0, 0.0, 15.875], np.float32))
    got = dequantize_array(np.array([[1, 2, 3], [-4, -5, -6]], np.int8), np.array([1.0, 0.5, 0.25], np.float32),
                           np.array([0, 0, 0], np.int8), -1)
    np.testing.assert_array_equal(got, np.array([[1.0, 1.0, 0.75], [-4.0, -2.5, -1.5]], np.float32))
    assert dequantize_array(np.array([3], np.int8), np.float32(0.5), None, 1).tolist() == [1.5]


def test_weights_in_constant_nodes_and_behind_a_quantizelinear():
    """A Constant node's int8 weight folds (and the Constant goes); a float constant fake-quantized by
    QuantizeLinear -> DequantizeLinear goes back to the float constant itself."""
    inits = [const("s", 0.5, np.float32), const("z", 0, np.int8), const("b_f", [0.3, -0.7], np.float32)]
    nodes = [helper.make_node("Constant", [], ["w_q"], value=const("v", [3, -5], np.int8)),
             helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w"], name="w_dequant"),
             helper.make_node("QuantizeLinear", ["b_f", "s", "z"], ["b_q"], name="b_quant"),
             helper.make_node("DequantizeLinear", ["b_q", "s", "z"], ["b"], name="b_dequant"),
             helper.make_node("Mul", ["x", "w"], ["xw"], name="mul"),
             helper.make_node("Add", ["xw", "b"], ["y"], name="add")]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2])  # noqa: E731
    model, stats = dequantize_graph(make_model(nodes, [vi("x")], [vi("y")], inits))
    assert [n.op_type for n in model.graph.node] == ["Mul", "Add"]
    assert set(initializers(model)) == {"w", "b_f"} and stats.folded_weights == 1
    np.testing.assert_array_equal(initializers(model)["w"], np.array([1.5, -2.5], np.float32))
    assert list(model.graph.node[1].input) == ["xw", "b_f"]


def test_a_concat_of_quantized_branches_with_one_scale_goes_back_to_float():
    inits = [const("s", 0.5, np.float32), const("z", 0, np.int8), const("shape", [1, 4], np.int64)]
    nodes = [helper.make_node("QuantizeLinear", ["a", "s", "z"], ["aq"], name="qa"),
             helper.make_node("QuantizeLinear", ["b", "s", "z"], ["bq"], name="qb"),
             helper.make_node("Concat", ["aq", "bq"], ["cat"], name="cat", axis=1),
             helper.make_node("Reshape", ["cat", "shape"], ["flat"], name="flat"),
             helper.make_node("DequantizeLinear", ["flat", "s", "z"], ["y"], name="dq")]
    vi = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)  # noqa: E731
    model, _ = dequantize_graph(make_model(nodes, [vi("a", [1, 2]), vi("b", [1, 2])], [vi("y", [1, 4])], inits))
    assert [n.op_type for n in model.graph.node] == ["Concat", "Reshape"]
    a, b = np.array([[0.3, -1.1]], np.float32), np.array([[2.6, 7.0]], np.float32)
    np.testing.assert_array_equal(run(model, {"a": a, "b": b})[0], np.array([[0.3, -1.1, 2.6, 7.0]], np.float32))


def test_a_region_with_different_scales_stays_quantized():
    inits = [const("s1", 0.5, np.float32), const("s2", 0.25, np.float32), const("z", 0, np.int8)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s1", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s2", "z"], ["y"], name="dq"),
             helper.make_node("DequantizeLinear", ["w_q", "s1", "z"], ["w"], name="w_dequant"),
             helper.make_node("Add", ["y", "w"], ["out"], name="add")]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2])  # noqa: E731
    model, stats = dequantize_graph(make_model(nodes, [vi("x")], [vi("out")],
                                               inits + [const("w_q", [2, -4], np.int8)]))
    assert [n.op_type for n in model.graph.node] == ["QuantizeLinear", "DequantizeLinear", "Add"]
    assert {k.node for k in stats.kept} == {"q", "dq"}
    assert all("different scales" in k.reason for k in stats.kept)
    np.testing.assert_array_equal(initializers(model)["w"], np.array([1.0, -2.0], np.float32))


def test_the_dequantize_of_a_uint8_graph_input_stays():
    """uint8 image -> DequantizeLinear (kept) -> QuantizeLinear int8 -> Transpose -> DequantizeLinear -> Relu."""
    inits = [const("s", 0.5, np.float32), const("zu", 127, np.uint8), const("zi", -1, np.int8)]
    nodes = [helper.make_node("DequantizeLinear", ["image", "s", "zu"], ["image_f"], name="input_dequant"),
             helper.make_node("QuantizeLinear", ["image_f", "s", "zi"], ["image_q"], name="requant"),
             helper.make_node("Transpose", ["image_q"], ["image_t"], name="nhwc_to_nchw", perm=[0, 3, 1, 2]),
             helper.make_node("DequantizeLinear", ["image_t", "s", "zi"], ["x"], name="dq"),
             helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = make_model(nodes, [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 1, 2, 1])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 2])], inits)
    model, stats = dequantize_graph(model)
    assert [(n.op_type, list(n.input[:1])) for n in model.graph.node] == [
        ("DequantizeLinear", ["image"]), ("Transpose", ["image_f"]), ("Relu", ["image_t"])]
    assert [(k.node, k.reason) for k in stats.kept] == [("input_dequant", "dequantizes the graph input 'image'")]
    image = np.array([[[[0], [255]]]], np.uint8)
    np.testing.assert_array_equal(run(model, {"image": image})[0], np.array([[[[0.0, 64.0]]]], np.float32))


def test_constant_derived_dequantize_stays():
    """int8 anchors tiled by a batch size read from an activation's shape, then dequantized: kept."""
    inits = [const("anchors_q", [[[1, 2]]], np.int8), const("s", 0.5, np.float32), const("z", 0, np.int8),
             const("w_q", [4], np.int8), const("one", [1, 1], np.int64)]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w"], name="w_dequant"),
             helper.make_node("Mul", ["x", "w"], ["y"], name="mul"),
             helper.make_node("Shape", ["x"], ["n"], name="shape", end=1),
             helper.make_node("Concat", ["n", "one"], ["reps"], name="reps", axis=0),
             helper.make_node("Tile", ["anchors_q", "reps"], ["tiled"], name="tile"),
             helper.make_node("DequantizeLinear", ["tiled", "s", "z"], ["anchors"], name="anchors_dequant")]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1]),
                        helper.make_tensor_value_info("anchors", TensorProto.FLOAT, ["N", 1, 2])], inits)
    model, stats = dequantize_graph(model)
    assert [k.node for k in stats.kept] == ["anchors_dequant"] and "constant-derived" in stats.kept[0].reason
    y, anchors = run(model, {"x": np.array([[1.0], [3.0]], np.float32)})
    np.testing.assert_array_equal(y, [[2.0], [6.0]])
    np.testing.assert_array_equal(anchors, [[[0.5, 1.0]], [[0.5, 1.0]]])


def test_a_model_without_qdq_is_refused_in_one_line_and_nothing_is_written(tmp_path):
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2])  # noqa: E731
    plain = tmp_path / "plain.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"])], [vi("x")], [vi("y")], []), str(plain))
    with pytest.raises(SsdConvertError, match="no QuantizeLinear or DequantizeLinear"):
        dequantize_graph(onnx.load(str(plain)))
    result = CliRunner().invoke(cli, ["dequantize", str(plain), "--output", str(tmp_path / "out.onnx")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {plain} has no QuantizeLinear or DequantizeLinear node: "
                                                  "it is not a QDQ model, there is nothing to dequantize"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.onnx"]


def test_cli_writes_the_float_model_and_refuses_a_second_pass(tmp_path):
    source = tmp_path / "int8.onnx"
    onnx.save(conv_model(), str(source))
    first = CliRunner().invoke(cli, ["dequantize", str(source)])
    assert first.exit_code == 0, first.output
    out = tmp_path / "int8_fp32.onnx"
    assert f"wrote {out}" in first.output and "QuantizeLinear 2 -> 0, DequantizeLinear 4 -> 0" in first.output
    assert "agreement not measured" in first.output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    same = CliRunner().invoke(cli, ["dequantize", str(source), "--output", str(source)])
    assert same.exit_code == 1 and "--output must differ" in same.output
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    junk = CliRunner().invoke(cli, ["dequantize", str(tmp_path / "junk.onnx")])
    assert junk.exit_code == 1 and junk.output.startswith(f"Error: cannot read {tmp_path / 'junk.onnx'} as ONNX")
    assert not (tmp_path / "junk_fp32.onnx").exists()


# --- the vendored ST SSD-MobileNetV2-FPNLite ---------------------------------------------------------

@pytest.fixture(scope="module")
def st_images(tmp_path_factory) -> Path:
    """Four real val2014 images as the ST app feeds them: cv2.resize(np.array(PIL image), (256, 256))."""
    import cv2
    from PIL import Image

    from ssdconvert import realdata

    folder = tmp_path_factory.mktemp("st_inputs")
    for path in realdata.images(realdata.VAL_IMAGES)[:4]:
        with Image.open(path) as img:
            np.save(folder / f"{path.stem}.npy", cv2.resize(np.array(img.convert("RGB")), (256, 256)))
    return folder


@pytest.fixture(scope="module")
def st_float(tmp_path_factory, st_images):
    from ssdconvert import realdata

    out = tmp_path_factory.mktemp("st") / "st_fp32.onnx"
    result = CliRunner().invoke(cli, ["dequantize", str(realdata.ST_SSD_INT8), "-o", str(out), "--input",
                                      str(st_images)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_st_model_dequantizes_to_a_float_graph(st_float):
    out, text = st_float
    ops = Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert ops["QuantizeLinear"] == 0 and ops["DequantizeLinear"] == 2 and ops["Conv"] == 123
    assert "nodes: 796 -> 267 (QuantizeLinear 143 -> 0, DequantizeLinear 388 -> 2)" in text
    assert "kept DequantizeLinear 'serving_default_input_1:0_dequant'" in text
    assert "kept DequantizeLinear 'StatefulPartitionedCall:0': dequantizes constant-derived" in text
    assert "agreement on 4 samples" in text


def test_the_st_float_model_agrees_with_the_int8_release(st_float, st_images):
    """Bounds from the measured agreement on these images (scores SNR ~37 dB, box offsets ~17 dB,
    anchors exact): the INT8 release is the float network plus its quantization noise, nothing else."""
    import onnxruntime as ort

    from ssdconvert import realdata
    from ssdconvert.agreement import tensor_figures

    x = np.stack([np.load(p) for p in sorted(st_images.glob("*.npy"))])
    float_run = run(onnx.load(str(st_float[0])), {"serving_default_input_1:0": x})
    int8 = ort.InferenceSession(str(realdata.ST_SSD_INT8), providers=["CPUExecutionProvider"])
    int8_run = int8.run(None, {"serving_default_input_1:0": x})
    scores, offsets, anchors = (tensor_figures(str(i), f, q) for i, (f, q) in enumerate(zip(float_run, int8_run)))
    assert scores.snr_db > 30 and scores.cosine > 0.999
    assert offsets.snr_db > 14 and offsets.cosine > 0.98
    assert anchors.max_abs == 0
    np.testing.assert_allclose(float_run[0].sum(-1), 1.0, atol=1e-5)  # still a softmax over 81 columns


def test_openvino_reads_the_st_float_model_and_matches_onnx_runtime(st_float, st_images):
    import openvino as ov

    x = np.stack([np.load(p) for p in sorted(st_images.glob("*.npy"))])[:2]
    model = onnx.load(str(st_float[0]))
    expected = run(model, {"serving_default_input_1:0": x})
    compiled = ov.Core().compile_model(str(st_float[0]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(x)
    for out, want in zip(model.graph.output, expected):
        np.testing.assert_allclose(got[compiled.output(out.name)], want, rtol=0, atol=1e-4)
