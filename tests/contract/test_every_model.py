"""The contract every registered detector keeps, checked the same way for each: the network's
outputs are what its head declares, a hand-made output decodes to known COCO boxes, checkpoints
round-trip, and the ONNX export matches PyTorch at several batch sizes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from postprocess.heads import decoder_for
from postprocess.images import ImageRef
from postprocess.synthetic import exact_outputs_for
from ssdconvert.checkpoints import build_model
from ssdconvert.export import seeded_input
from ssdconvert.synth import COCO_CATEGORIES
from ssdconvert.zoo import get_spec, model_names

NAMES = model_names()
CATEGORIES = [{"id": i, "name": n, "supercategory": s} for i, n, s in COCO_CATEGORIES]


def test_every_family_is_covered():
    assert set(NAMES) == {"ssd-resnet34", "ssd-resnet50", "ssd-vgg16"}


@pytest.mark.parametrize("name", NAMES)
def test_network_outputs_are_what_the_head_declares(name, seeded_model):
    spec = get_spec(name)
    x = torch.from_numpy(seeded_input(spec, 2))
    with torch.no_grad():
        outputs = seeded_model(name)(x)
    assert [tuple(o.shape) for o in outputs] == [(2, *o.shape) for o in spec.head.outputs]
    assert spec.output_names == tuple(o.name for o in spec.head.outputs)
    # one axis is the anchors, as many as the head's anchor generator makes
    for out in spec.head.outputs:
        assert spec.head.num_anchors in out.shape
    logits = outputs[1]
    class_axis = 1 + list(spec.head.outputs[1].shape).index(spec.head.num_classes)
    assert not torch.allclose(logits.sum(class_axis), torch.ones(()), atol=1e-2)  # raw logits, no softmax
    assert spec.head.num_anchors == 8732 and spec.num_classes == 81


@pytest.mark.parametrize("name", NAMES)
def test_a_hand_made_output_decodes_to_the_known_boxes(name):
    """Two images of different sizes, boxes in normalised ltrb of the original image: eval's decoder
    gives them back as COCO [x, y, w, h] in original pixels with the right category ids."""
    head = get_spec(name).head
    boxes = [np.array([[0.1, 0.2, 0.5, 0.7], [0.55, 0.05, 0.95, 0.45]]), np.array([[0.3, 0.3, 0.6, 0.9]])]
    labels = [np.array([0, 79]), np.array([11])]
    images = [ImageRef(42, "a", 640, 480), ImageRef(7, "b", 333, 500)]
    arrays = exact_outputs_for(head, boxes, labels)
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


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_identical_weights_and_outputs(name, tmp_path):
    spec = get_spec(name)
    original, _ = build_model(spec, seed=11)
    state = original.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "meta": {"epoch": 1}},
               tmp_path / "ckpt.pth")
    loaded, source = build_model(spec, tmp_path / "ckpt.pth", seed=5)  # weights_only, no trust needed
    assert not source.is_random
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    x = torch.from_numpy(seeded_input(spec, 1))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(x), original(x)))


@pytest.mark.parametrize("name", NAMES)
def test_export_matches_pytorch_at_several_batches(name, onnx_export, seeded_model):
    spec = get_spec(name)
    path = onnx_export(name)
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == list(spec.output_names)
    dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert dims == [["-1", *o.shape] for o in spec.head.outputs]
    assert model.opset_import[0].version <= 17  # what ATC parses
    assert not any(n.op_type in ("NonMaxSuppression", "TopK", "Softmax") for n in model.graph.node)  # raw outputs
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = seeded_input(spec, batch, seed=batch)
        got = session.run(list(spec.output_names), {spec.input.name: x})
        with torch.no_grad():
            ref = [t.numpy() for t in seeded_model(name)(torch.from_numpy(x))]
        for g, r in zip(got, ref):
            assert g.shape == r.shape and np.abs(g - r).max() < 1e-4
    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    assert sidecar["model"] == name and sidecar["validation"]["passed"] is True
