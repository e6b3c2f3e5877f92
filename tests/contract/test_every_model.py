"""The contract every registered detector keeps, checked the same way for each: the exported graph's
outputs are what its head declares, a hand-made output decodes to known COCO boxes, checkpoints
round-trip, and the ONNX export matches PyTorch at several batch sizes.

Where a family legitimately differs it is said here: a graph that ends in final detections
(faster-rcnn-r101-fpn: NMS in the graph, data-dependent steps with fixed-size stand-ins) is
compared with PyTorch detection by detection (matched by IoU per image and class), not element by
element, and runs at a small canvas (its input size is a deployment choice)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from postprocess.detection_match import ImageDetections, match_detections
from postprocess.heads import FinalDetectionsHead, decoder_for, exact_outputs_for
from preprocess.manifest import ImageRecord
from ssdconvert.checkpoints import build_model
from ssdconvert.export import seeded_input
from ssdconvert.synth import COCO_CATEGORIES
from ssdconvert.zoo import get_spec, model_names

NAMES = model_names()
CATEGORIES = [{"id": i, "name": n, "supercategory": s} for i, n, s in COCO_CATEGORIES]
SMALL_CANVAS = (128, 160)  # for models whose input size is a choice (tests/conftest.py FRCNN_CANVAS)
SLOW = {"faster-rcnn-r101-fpn"}  # 60 M parameters and a calibration pass per build


def spec_for_tests(name: str):
    spec = get_spec(name)
    return spec.with_canvas(SMALL_CANVAS) if spec.at_canvas else spec


def inputs(spec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The family's example inputs, else seeded random ones (every input)."""
    return spec.example_feeds(batch) or {spec.input.name: seeded_input(spec, batch, seed=seed + batch)}


def run_graph(spec, model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in spec.graph_module(model)(*(torch.from_numpy(feeds[n]) for n in spec.input_names))]


def as_detections(outputs) -> list[ImageDetections]:
    boxes, scores, labels, counts = outputs
    return [ImageDetections.of(boxes[i, :n], scores[i, :n], labels[i, :n]) for i, n in enumerate(counts.tolist())]


def slow_marked(names):
    return [pytest.param(n, marks=pytest.mark.heavy) if n in SLOW else n for n in names]


def test_every_family_is_covered():
    assert set(NAMES) == {"ssd-resnet34", "ssd-resnet50", "ssd-vgg16", "faster-rcnn-r101-fpn"}


@pytest.mark.parametrize("name", NAMES)
def test_graph_outputs_are_what_the_head_declares(name, seeded_model):
    spec = spec_for_tests(name)
    batch = 1 if name in SLOW else 2  # the fixed-size detector's eager NMS stand-ins are slow in PyTorch
    outputs = run_graph(spec, seeded_model(name), inputs(spec, batch))
    assert [o.shape for o in outputs] == [(batch, *o.shape) for o in spec.head.outputs]
    assert [o.dtype.name for o in outputs] == [o.dtype for o in spec.head.outputs]
    assert spec.output_names == tuple(o.name for o in spec.head.outputs) and spec.num_classes == 81
    if isinstance(spec.head, FinalDetectionsHead):  # the graph ends in final detections: K slots and a count
        boxes, scores, labels, counts = outputs
        assert boxes.shape[1] == spec.head.detections == 100 and (counts > 0).all()
        assert ((labels >= 1) & (labels <= 80))[np.arange(100) < counts[:, None]].all()
        assert not scores[np.arange(100) >= counts[:, None]].any()
        return
    # one axis is the anchors, as many as the head's anchor generator makes
    for out in spec.head.outputs:
        assert spec.head.num_anchors in out.shape
    logits = torch.from_numpy(outputs[1])
    class_axis = 1 + list(spec.head.outputs[1].shape).index(spec.head.num_classes)
    assert not torch.allclose(logits.sum(class_axis), torch.ones(()), atol=1e-2)  # raw logits, no softmax
    assert spec.head.num_anchors == 8732


@pytest.mark.parametrize("name", NAMES)
def test_a_hand_made_output_decodes_to_the_known_boxes(name):
    """Two images of different sizes, boxes in normalised ltrb of the original image: eval's decoder
    gives them back as COCO [x, y, w, h] in original pixels with the right category ids."""
    spec = get_spec(name)
    head = spec.head
    boxes = [np.array([[0.1, 0.2, 0.5, 0.7], [0.55, 0.05, 0.95, 0.45]]), np.array([[0.3, 0.3, 0.6, 0.9]])]
    labels = [np.array([0, 79]), np.array([11])]
    geometry = spec.transform.converter().geometry  # what the manifest records per image (nothing for SSDs)
    images = [ImageRecord(42, "a.jpg", "a", 640, 480, **geometry((640, 480))),
              ImageRecord(7, "b.jpg", "b", 333, 500, **geometry((333, 500)))]
    arrays = exact_outputs_for(head, boxes, labels, images)
    assert [a.shape[1:] for a in arrays] == [o.shape for o in head.outputs]
    decoder = decoder_for(head)
    rows = decoder.rows(decoder.select(arrays), images, head.category_ids(CATEGORIES))
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    expected = []
    for im, bx, lb in zip(images, boxes, labels):
        for (l, t, r, b), k in zip(bx, lb):
            expected.append([im.id, l * im.width, t * im.height, (r - l) * im.width, (b - t) * im.height,
                             COCO_CATEGORIES[k][0]])
    expected = np.array(sorted(expected, key=lambda e: (e[0], e[1])))
    assert len(rows) == 3
    assert np.array_equal(rows[:, [0, 6]], expected[:, [0, 5]])
    assert np.abs(rows[:, 1:5] - expected[:, 1:5]).max() < 0.01  # float32 decode of pixel boxes
    assert (rows[:, 5] > 0.99).all()


@pytest.mark.parametrize("name", slow_marked(NAMES))
def test_checkpoint_round_trip_gives_identical_weights_and_outputs(name, tmp_path):
    spec = spec_for_tests(name)
    original, _ = build_model(spec, seed=11)
    state = original.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "meta": {"epoch": 1}},
               tmp_path / "ckpt.pth")
    loaded, source = build_model(spec, tmp_path / "ckpt.pth", seed=5)  # weights_only, no trust needed
    assert not source.is_random
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    feeds = inputs(spec, 1)
    assert all(np.array_equal(a, b) for a, b in zip(run_graph(spec, loaded, feeds), run_graph(spec, original, feeds)))


@pytest.mark.parametrize("name", NAMES)
def test_export_declares_the_contract_and_passed_its_validation(name, onnx_export):
    spec = spec_for_tests(name)
    path = onnx_export(name)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == list(spec.input_names)
    assert [o.name for o in model.graph.output] == list(spec.output_names)
    dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim][1:] for o in model.graph.output]
    assert dims == [list(o.shape) for o in spec.head.outputs]
    assert all(o.type.tensor_type.shape.dim[0].dim_param for o in model.graph.output)  # dynamic batch axis
    assert model.opset_import[0].version <= 17  # what ATC parses
    # raw outputs: no NMS in the graph; final detections: the graph runs it
    assert any(n.op_type == "NonMaxSuppression" for n in model.graph.node) == isinstance(spec.head, FinalDetectionsHead)
    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    assert sidecar["model"] == name and sidecar["validation"]["passed"] is True


@pytest.mark.parametrize("name", slow_marked(NAMES))
def test_export_matches_pytorch_at_several_batches(name, onnx_export, seeded_model):
    spec = spec_for_tests(name)
    session = ort.InferenceSession(str(onnx_export(name)), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        feeds = inputs(spec, batch)
        got = session.run(list(spec.output_names), feeds)
        ref = run_graph(spec, seeded_model(name), feeds)
        assert [g.shape for g in got] == [r.shape for r in ref]
        if isinstance(spec.head, FinalDetectionsHead):  # detection by detection: float noise may reorder slots
            report = match_detections(as_detections(ref), as_detections(got), 0.9, pixel_offset=1.0)
            assert report.matched == report.expected == report.actual > 0 and report.max_score_diff <= 1e-4
        else:
            assert all(np.abs(g - r).max() < 1e-4 for g, r in zip(got, ref))
