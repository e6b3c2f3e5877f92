"""The split variant (dense model + box-head model in ONNX Runtime, RoI stage on the host) = the reference."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from postprocess.detection_match import ImageDetections
from ssdconvert.zoo.faster_rcnn.validation import check_detections
from ssdconvert.zoo.faster_rcnn.split import (DENSE_INPUTS, DENSE_OUTPUTS, HEAD_INPUTS, ROIS_PER_IMAGE,
                                              SplitDetector, level_shapes)

CANVAS = (128, 160)


@pytest.fixture(scope="module")
def split_models(frcnn_split):
    return frcnn_split[:2]


def test_split_models_are_static_apart_from_the_batch(split_models):
    dense, head = (onnx.load(str(r.path)) for r in split_models)
    shapes = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in dense.graph.output}
    total = sum(h * w * 3 for h, w in level_shapes(CANVAS, (4, 8, 16, 32, 64)))
    assert shapes == {"p2": ["N", 256, 32, 40], "p3": ["N", 256, 16, 20], "p4": ["N", 256, 8, 10],
                      "p5": ["N", 256, 4, 5], "objectness": ["N", total], "rpn_deltas": ["N", total, 4]}
    assert [d.dim_param or d.dim_value for d in head.graph.input[0].type.tensor_type.shape.dim] == ["N", 256, 7, 7]
    assert {n.op_type for n in head.graph.node} <= {"Gemm", "Relu", "Flatten", "Reshape", "MatMul", "Add",
                                                    "Constant", "Shape", "Gather", "Concat", "Unsqueeze"}


@pytest.mark.heavy  # test_stages checks the split composite against the fixed graph by default
def test_split_detections_match_the_reference(split_models, frcnn_model, frcnn_batches, frcnn_reference):
    import onnxruntime as ort

    dense, head = (ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"]) for r in split_models)
    heads_fed = []

    def run_head(roi_features):
        heads_fed.append(roi_features)
        return head.run(None, {HEAD_INPUTS[0]: roi_features})

    detector = SplitDetector.of(frcnn_model, CANVAS, lambda x: dense.run(list(DENSE_OUTPUTS), {DENSE_INPUTS[0]: x}),
                             run_head)
    batch = frcnn_batches[3]
    detections = detector(batch.images, batch.image_sizes)
    assert heads_fed[0].shape == (3 * ROIS_PER_IMAGE, 256, 7, 7)
    actual = [ImageDetections.of(d.boxes.numpy(), d.scores.numpy(), d.labels.numpy()) for d in detections]
    report = check_detections(frcnn_reference[3], actual, "split (ONNX Runtime)", limit=None).report
    assert report.matched == report.expected == 300 and report.max_score_diff <= 1e-4
    # fewer than 1000 proposals survive on this small canvas: the padding rows of the head input are zero
    rows = heads_fed[0].reshape(3, ROIS_PER_IMAGE, -1)
    assert not np.abs(rows).sum(-1).all(axis=1).any()


def test_a_backend_that_compiles_nothing_builds_a_composite_whose_parts_stay_where_they_are(frcnn_split, tmp_path):
    """ONNX Runtime "builds" each part as the part itself, outside the backend's build folder: the
    descriptor it writes there must still reach them (a path relative to it, with ../)."""
    from ssdconvert.backends import composite, get

    descriptor = frcnn_split[2]
    built = get("onnxruntime").compile(descriptor, tmp_path / "work", batch=2)
    parts = composite.read(built[0]).parts
    assert built[0].parent == tmp_path / "work" / "onnxruntime"
    assert [p.path.resolve() for p in parts] == [p.path.resolve() for p in composite.read(descriptor).parts]
    assert [p.rows_per_image for p in parts] == [1, ROIS_PER_IMAGE]
