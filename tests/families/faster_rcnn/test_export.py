"""The exported fixed-size detector against the PyTorch reference path, in ONNX Runtime and OpenVINO.

Detections are compared box by box (postprocess.detection_match): per image and class, IoU >= 0.9
pairs, then the largest score and coordinate differences over the pairs.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from ssdconvert.errors import DetectionMismatchError, ExportError
from ssdconvert.zoo.faster_rcnn.validation import (check_detections, fixed_outputs_to_detections,
                                                   reference_detections, validate_detector)
from ssdconvert.zoo.faster_rcnn.fixed import INPUT_NAMES, OUTPUT_NAMES

SCORE_ATOL = 1e-4


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_runtime_matches_the_reference(frcnn_export, frcnn_reference, batch):
    """The exporter validated the graph in ONNX Runtime against reference.detect at batch 1 and 3 (synthetic
    images of different contents and sizes): its reports are the evidence."""
    (report,) = [r for r in frcnn_export.validation.reports if r.images == batch]
    # meaningful: every image has the full 100 (more than 100 candidates survived per-class NMS)
    assert report.matched == report.expected == report.actual == 100 * batch
    assert report.missing == report.extra == report.ties_past_limit == 0
    assert report.max_score_diff <= SCORE_ATOL
    assert report.max_box_diff <= 1e-2 and report.min_iou > 0.999
    labels = np.concatenate([d.labels for d in frcnn_reference[3]])
    assert len(np.unique(labels)) >= 5  # the demo model detects several classes: per-class NMS and class ties run


@pytest.mark.heavy
def test_validation_on_other_images_matches_too(frcnn_export, frcnn_model, frcnn_batches, frcnn_reference):
    report = validate_detector(frcnn_export.onnx_path, frcnn_model, frcnn_batches[3]).report
    assert [len(d) for d in frcnn_reference[3]] == [100] * 3
    assert report.matched == report.expected == 300 and report.max_score_diff <= SCORE_ATOL


@pytest.mark.heavy  # ~11 s (OpenVINO compiles the detection graph); ONNX Runtime validates every export
def test_openvino_runs_the_export_and_matches_onnx_runtime(frcnn_export, frcnn_batches, run_onnx):
    import openvino as ov

    batch = frcnn_batches[3]
    compiled = ov.Core().compile_model(str(frcnn_export.onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled({INPUT_NAMES[0]: batch.images, INPUT_NAMES[1]: batch.im_info})
    got = [result[compiled.output(name)] for name in OUTPUT_NAMES]
    expected = run_onnx(frcnn_export.onnx_path, batch)
    assert got[2].dtype == np.int64 and got[0].shape == (3, 100, 4)
    report = check_detections(fixed_outputs_to_detections(*expected), fixed_outputs_to_detections(*got),
                              "OpenVINO").report
    assert report.matched == 300 and report.max_score_diff <= SCORE_ATOL


def test_graph_uses_standard_ops_with_the_roi_align_mode_written_out(frcnn_export):
    model = onnx.load(str(frcnn_export.onnx_path))
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 16
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("NonMaxSuppression") == 2  # per-level RPN NMS, per-class box NMS
    roi_aligns = [n for n in model.graph.node if n.op_type == "RoiAlign"]
    assert len(roi_aligns) == 4  # P2..P5
    for node in roi_aligns:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes["coordinate_transformation_mode"] == b"output_half_pixel"
    batch_dims = [i.type.tensor_type.shape.dim[0].dim_param for i in (*model.graph.input, *model.graph.output)]
    assert batch_dims == ["N"] * 6


def _edited_copies(frcnn_export, frcnn_model, tmp_path, name, edit):
    """The exported graph and the PyTorch model with the same edit of the class-score layer."""
    model = onnx.load(str(frcnn_export.onnx_path))
    weight = next(i for i in model.graph.initializer if list(i.dims) in ([81, 1024], [1024, 81]))
    bias = next(i for i in model.graph.initializer if list(i.dims) == [81])
    net = copy.deepcopy(frcnn_model)
    layer = net.roi_heads.box.predictor.cls_score
    with torch.no_grad():
        edit(layer)
    w = layer.weight.detach().numpy()
    w = w if list(weight.dims) == [81, 1024] else w.T
    weight.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w), weight.name))
    bias.CopyFrom(numpy_helper.from_array(layer.bias.detach().numpy().copy(), bias.name))
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path, net


@pytest.mark.parametrize("runtime", ["onnxruntime", pytest.param("openvino", marks=pytest.mark.heavy)])
def test_no_detections_gives_empty_zero_slots(frcnn_export, frcnn_model, frcnn_batches, run_onnx, tmp_path, runtime):
    import openvino as ov

    def background_wins(layer):
        layer.bias[0] += 50.0

    path, net = _edited_copies(frcnn_export, frcnn_model, tmp_path, "empty", background_wins)
    batch = frcnn_batches[3]
    assert [len(d) for d in reference_detections(net, batch)] == [0, 0, 0]
    if runtime == "openvino":
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        result = compiled({INPUT_NAMES[0]: batch.images, INPUT_NAMES[1]: batch.im_info})
        outputs = [result[compiled.output(n)] for n in OUTPUT_NAMES]
    else:
        outputs = run_onnx(path, batch)
    assert outputs[3].tolist() == [0, 0, 0]
    assert not any(o.any() for o in outputs[:3])


def test_ties_past_100_are_cut_to_the_reference_order_and_counted(frcnn_export, frcnn_model, frcnn_batches,
                                                                  run_onnx, tmp_path):
    """Three classes score the same on every RoI: the reference keeps every tied survivor (hundreds), the
    graph keeps 100 - the reference's first 100 (lower class, then lower proposal first)."""

    def three_tied_classes(layer):
        layer.weight.zero_()
        layer.bias.zero_()
        layer.bias[1:4] = 5.0

    path, net = _edited_copies(frcnn_export, frcnn_model, tmp_path, "ties", three_tied_classes)
    batch = frcnn_batches[1]
    expected = reference_detections(net, batch)
    outputs = run_onnx(path, batch)
    actual = fixed_outputs_to_detections(*outputs)
    report = check_detections(expected, actual, "ONNX Runtime").report
    assert len(expected[0]) > 100 and report.ties_past_limit == len(expected[0]) - 100
    assert report.matched == 100 and report.missing == report.extra == 0
    assert outputs[2][0].tolist() == expected[0].labels[:100].tolist()
    np.testing.assert_allclose(outputs[0][0], expected[0].boxes[:100], atol=1e-2)


def test_a_different_model_fails_validation_naming_what_differs(frcnn_export, frcnn_model, frcnn_batches):
    net = copy.deepcopy(frcnn_model)
    with torch.no_grad():
        net.roi_heads.box.predictor.cls_score.bias[1:] += torch.linspace(-0.3, 0.3, 80)
    with pytest.raises(DetectionMismatchError, match=r"ONNX Runtime detections differ from the PyTorch reference "
                                                     r"at batch 1: \d+ of 100 reference detections have no match"):
        validate_detector(frcnn_export.onnx_path, net, frcnn_batches[1])


def test_score_differences_beyond_the_tolerance_are_named(frcnn_reference):
    expected = frcnn_reference[1]
    shifted = [type(d)(d.boxes, d.scores + 2e-4, d.labels) for d in expected]
    with pytest.raises(DetectionMismatchError, match=r"output 'scores': a matched score differs by 0.0002 > 0.0001") \
            as caught:
        check_detections(expected, shifted, "OpenVINO")
    assert caught.value.output == "scores"


@pytest.mark.parametrize("kwargs, message", [
    ({"opset": 18}, "opset 18 is not supported"),
    ({"variant": "tiled"}, "has the export variant.s. fixed, split, not 'tiled'"),
    ({"precision": "fp16"}, "exports FP32 only"),
    ({"rtol": 1e-3}, "--rtol does not apply"),
    ({"dynamic_batch": False}, "always exported with a dynamic batch axis"),
])
def test_bad_export_arguments_are_refused_before_any_work(tmp_path, frcnn_model, frcnn_spec, kwargs, message):
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.export import export_model

    with pytest.raises(ExportError, match=message):
        export_model(frcnn_model, frcnn_spec, tmp_path / "x.onnx", weights=WeightsSource(random_seed=0), **kwargs)
    assert not list(tmp_path.iterdir())


def test_a_canvas_off_the_fpn_grid_is_refused(tmp_path, frcnn_model):
    from ssdconvert.zoo.faster_rcnn.graphs import fixed_graph

    with pytest.raises(ExportError, match="canvas 130x160 must be positive multiples of 32"):
        fixed_graph(frcnn_model, tmp_path / "x.onnx", (130, 160))
