"""Faster R-CNN export validation judges detections against PyTorch's own float32 error; real mistakes still fail.

Issue: a checkpoint in maskrcnn-benchmark's layout with realistic FrozenBN statistics was refused at
the default 1344x1344 canvas ("a matched box coordinate differs by 0.0104 px > 0.01 px"): box
decoding (exp of deltas times sizes) multiplies rounding, and PyTorch's own float32 detections miss
the exact ones by more than the fixed 1e-4 / 0.01 px, so no fixed tolerance judges every model.

The checkpoint here is made the way training leaves one: seeded random convolutions whose every
FrozenBN normalises what it sees on the validation images (running mean and variance measured
there, scale 0.3-1, shift around -0.1), the RPN and the box head rescaled on the same images so that
the detection scores spread from about 0.1 to 0.6; it is saved in maskrcnn-benchmark's own layout
(Checkpointer.save) and loaded through build_model. At 128x160 its PyTorch float32 detections
already miss float64's by more than the fixed tolerances (the heavy test runs the default canvas).

The mistakes are made in the exported graph, as a converter bug would make them: RoiAlign with
half-pixel coordinates (torchvision's aligned=True), the LevelMapper's canonical scale 112 instead
of 224 (every larger RoI pooled one level off), the NMS boxes without the legacy +1.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from postprocess.detection_match import ImageDetections, match_detections
from ssdconvert.checkpoints import build_model, randomize
from ssdconvert.cli import cli
from ssdconvert.errors import DetectionMismatchError
from ssdconvert.export import export_model, float64_copy
from ssdconvert.zoo import get_spec
from ssdconvert.zoo.faster_rcnn.demo import HeadScales, calibrate_heads
from ssdconvert.zoo.faster_rcnn.network import FasterRCNN, FrozenBatchNorm2d
from ssdconvert.zoo.faster_rcnn.validation import (BOX_ATOL, LEGACY_PIXEL, MATCH_IOU, SCORE_ATOL, Float64Judgement,
                                                   check_detections, reference_detections, validate_detector,
                                                   validation_batch)

NAME = "faster-rcnn-r101-fpn"
CANVAS = (128, 160)
BATCH = 2
# detection scores from ~0.1 to ~0.6 on the validation images: 0.089-0.63 at 128x160 (batch 2), 0.17-0.51 at
# 1344x1344 (batch 1)
TRAINED_HEADS = HeadScales(objectness=(-3.0, 2.0), rpn_deltas=0.2, class_logits=1.4, box_deltas=1.0)


def realistic_model(batch, seed: int = 0) -> FasterRCNN:
    """Seeded convolutions, FrozenBN statistics measured on `batch`'s images, heads calibrated on them."""
    net = FasterRCNN().eval()
    randomize(net, seed)
    gen = torch.Generator().manual_seed(seed + 1)

    def measured(bn, inputs):
        x, channels = inputs[0], inputs[0].shape[1]
        bn.running_mean.copy_(x.mean((0, 2, 3)))
        bn.running_var.copy_(x.var((0, 2, 3)))
        bn.weight.copy_(0.3 + 0.7 * torch.rand(channels, generator=gen))
        bn.bias.copy_(0.2 * torch.randn(channels, generator=gen) - 0.1)

    images = torch.from_numpy(batch.images)
    hooks = [m.register_forward_pre_hook(measured) for m in net.modules() if isinstance(m, FrozenBatchNorm2d)]
    with torch.no_grad():
        net.backbone(images)
    for hook in hooks:
        hook.remove()
    calibrate_heads(net, images, batch.image_sizes, TRAINED_HEADS)
    return net


def loaded_checkpoint(path, spec, batch, maskrcnn_checkpoint):
    """realistic_model saved as maskrcnn-benchmark saves a training checkpoint, loaded through build_model."""
    maskrcnn_checkpoint.write(path, realistic_model(batch))
    model, weights = build_model(spec, path)
    assert not weights.is_random and weights.checkpoint_sha256
    return model, weights


@pytest.fixture(scope="module")
def realistic(tmp_path_factory, maskrcnn_checkpoint):
    spec = get_spec(NAME).with_canvas(CANVAS)
    batches = [validation_batch(spec.transform, n) for n in (1, BATCH)]
    path = tmp_path_factory.mktemp("realistic") / "e2e_faster_rcnn_R_101_FPN_1x.pth"
    model, weights = loaded_checkpoint(path, spec, batches[-1], maskrcnn_checkpoint)
    return SimpleNamespace(spec=spec, model=model, weights=weights, batches=batches)


@pytest.fixture(scope="module")
def realistic_export(realistic, tmp_path_factory):
    out = tmp_path_factory.mktemp("realistic_export") / "frcnn.onnx"
    return export_model(realistic.model, realistic.spec, out, weights=realistic.weights, batch=BATCH,
                        simplify_model=False)


def test_the_checkpoint_is_realistic_and_pytorch_float32_misses_the_fixed_tolerances(realistic):
    batch = realistic.batches[-1]
    f32 = reference_detections(realistic.model, batch)
    f64 = reference_detections(float64_copy(realistic.model), batch)
    scores = np.concatenate([d.scores for d in f32])
    assert [len(d) for d in f32] == [100] * BATCH
    assert 0.05 < scores.min() < 0.2 and 0.45 < scores.max() < 0.7  # the box head's scores spread ~0.1-0.6
    own = match_detections(f64, f32, MATCH_IOU, 100, pixel_offset=LEGACY_PIXEL)
    assert own.max_score_diff > SCORE_ATOL and own.max_box_diff > BOX_ATOL  # PyTorch's own rounding


def test_the_export_passes_where_the_fixed_tolerances_refused_it(realistic_export):
    checks = realistic_export.validation.checks
    refused = [c for c in checks if c.report.failure(SCORE_ATOL, BOX_ATOL)]  # the fixed-tolerance verdict
    assert refused
    for check in refused:
        judged = check.float64
        assert judged is not None
        assert Float64Judgement.unpaired(judged.exported) <= Float64Judgement.unpaired(judged.torch)
        assert judged.exported.max_score_diff <= judged.score_limit
        assert judged.exported.max_box_diff <= judged.box_limit
        # a detection PyTorch float32 itself flips (a near-tie at float precision) may be unpaired, no more
        assert judged.exported.matched >= judged.exported.expected - Float64Judgement.unpaired(judged.torch) > 0
    lines = "\n".join(realistic_export.summary_lines())
    assert "so judged against a float64 run" in lines and realistic_export.verdict().startswith("PASSED")
    sidecar = json.loads(realistic_export.sidecar_path.read_text())
    assert any("float64" in report for report in sidecar["validation"]["reports"])
    assert sidecar["weights"]["is_random"] is False


def shifted(detections, box=0.0, score=0.0):
    return [ImageDetections.of(d.boxes + box, d.scores + score, d.labels) for d in detections]


EXACT = [ImageDetections.of([[10.0, 20.0, 800.0, 600.0], [300.0, 40.0, 1300.0, 900.0]], [0.56, 0.1], [1, 7])]


@pytest.mark.parametrize("pytorch, exported, passes, named", [
    ({"box": 0.015}, {"box": -0.02}, True, None),  # 0.02 px from float64 <= 0.01 + 2 x 0.015
    ({"box": 0.001}, {"box": 0.05}, False, "boxes"),  # 0.05 px > 0.01 + 2 x 0.001
    ({"score": 3e-4}, {"score": -5e-4}, True, None),  # 5e-4 <= 1e-4 + 2 x 3e-4
    ({"score": 1e-5}, {"score": 3e-4}, False, "scores"),  # 3e-4 > 1e-4 + 2 x 1e-5
])
def test_the_float64_rule_on_crafted_detections(pytorch, exported, passes, named):
    """The rule itself, on literal boxes up to 1300 px: differences beyond 1e-4 / 0.01 px from PyTorch float32 pass
    if the exported model is within the tolerance + 2 x PyTorch float32's own error of float64."""
    expected, actual = shifted(EXACT, **pytorch), shifted(EXACT, **exported)
    if passes:
        check = check_detections(expected, actual, "ONNX Runtime", exact=lambda: EXACT)
        assert check.float64 is not None and check.report.matched == 2
        return
    with pytest.raises(DetectionMismatchError, match="from a float64 run") as caught:
        check_detections(expected, actual, "ONNX Runtime", exact=lambda: EXACT)
    assert caught.value.output == named


def test_the_float64_rule_counts_unpaired_detections_against_pytorch_float32s():
    """A detection PyTorch float32 itself loses (a near-tie) may be missing from the export too; one more fails."""
    dropped = [ImageDetections.of(d.boxes[:1], d.scores[:1], d.labels[:1]) for d in EXACT]
    check = check_detections(dropped, dropped, "ONNX Runtime", exact=lambda: EXACT)
    assert check.float64 is None  # equal to PyTorch float32: nothing to judge
    check = check_detections(EXACT, dropped, "ONNX Runtime", exact=lambda: dropped)
    assert check.float64 is not None  # float64 lacks it too: PyTorch float32 has it by its own rounding
    with pytest.raises(DetectionMismatchError, match=r"1 of 2 reference detections have no match .*against a float64 "
                                                     r"run 1 detections are unpaired, PyTorch float32's own rounding "
                                                     r"leaves 0"):
        check_detections(EXACT, dropped, "ONNX Runtime", exact=lambda: EXACT)


def edited_copy(source, target, edit) -> str:
    model = onnx.load(str(source))
    assert edit(model) > 0  # the graph has what the mistake changes
    onnx.save(model, str(target))
    return str(target)


def replace_constant(model, value, consumer: str, new) -> int:
    """Replace every constant equal to `value` that feeds a `consumer` node by `new`; the count replaced."""
    feeds = {name for node in model.graph.node if node.op_type == consumer for name in node.input}
    replaced = 0
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in feeds:
            tensor = node.attribute[0].t
            values = numpy_helper.to_array(tensor)
            if values.shape == np.shape(value) and np.array_equal(values, value):
                tensor.CopyFrom(numpy_helper.from_array(np.asarray(new, values.dtype).reshape(values.shape)))
                replaced += 1
    for init in model.graph.initializer:  # a simplified graph keeps its constants as initializers
        values = numpy_helper.to_array(init)
        if init.name in feeds and values.shape == np.shape(value) and np.array_equal(values, value):
            init.CopyFrom(numpy_helper.from_array(np.asarray(new, values.dtype).reshape(values.shape), init.name))
            replaced += 1
    return replaced


def roi_align_half_pixel(model) -> int:
    nodes = [n for n in model.graph.node if n.op_type == "RoiAlign"]
    for node in nodes:
        (mode,) = [a for a in node.attribute if a.name == "coordinate_transformation_mode"]
        mode.s = b"half_pixel"
    return len(nodes)


MISTAKES = {
    "roi_align_aligned_true": roi_align_half_pixel,
    "level_mapper_scale_112": lambda model: replace_constant(model, np.float32(224.0), "Div", 112.0),
    "nms_without_plus_one": lambda model: replace_constant(model, np.float32([0, 0, 1, 1]), "Add", [0, 0, 0, 0]),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_real_mistakes_are_still_refused(realistic, realistic_export, tmp_path, mistake):
    broken = edited_copy(realistic_export.onnx_path, tmp_path / f"{mistake}.onnx", MISTAKES[mistake])
    with pytest.raises(DetectionMismatchError, match=r"ONNX Runtime detections differ from the PyTorch reference at "
                                                     r"batch 1: .*float64 run"):
        validate_detector(broken, realistic.model, realistic.batches[0])


@pytest.mark.heavy  # ~10 min on 2 busy cores: a 1344x1344 export, two validations (PyTorch float32 and float64)
def test_the_default_canvas_exports_a_realistic_checkpoint(tmp_path, monkeypatch, maskrcnn_checkpoint):
    """The issue's command: `export --model faster-rcnn-r101-fpn --checkpoint ckpt.pth --bs 1` at 1344x1344."""
    spec = get_spec(NAME)
    batch = validation_batch(spec.transform, 1)
    model, _ = loaded_checkpoint(tmp_path / "ckpt.pth", spec, batch, maskrcnn_checkpoint)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["export", "--model", NAME, "--checkpoint", "ckpt.pth", "--bs", "1",
                                      "--output", "frcnn.onnx"])
    assert result.exit_code == 0, result.output
    assert "canvas 1344x1344" in result.output and "PASSED" in result.output
    (report,) = json.loads((tmp_path / "frcnn.onnx.json").read_text())["validation"]["reports"]
    assert report["matched"] == report["expected"] == 100
    # the fixed tolerances refuse it (measured: 3.8e-4 / 0.019 px from PyTorch float32), float64 judges it
    assert report["max_score_diff"] > SCORE_ATOL or report["max_box_diff"] > BOX_ATOL
    judged = report["float64"]
    assert judged["exported"]["max_score_diff"] <= judged["score_limit"]
    assert judged["exported"]["max_box_diff"] <= judged["box_limit"]
    broken = edited_copy(tmp_path / "frcnn.onnx", tmp_path / "broken.onnx", MISTAKES["level_mapper_scale_112"])
    with pytest.raises(DetectionMismatchError, match="ONNX Runtime detections differ"):
        validate_detector(broken, model, batch)


def test_a_model_that_computes_nan_fails_validation_naming_the_output(realistic, realistic_export):
    """NaN weights (a corrupt checkpoint): PyTorch's RPN output is NaN, its detections empty like the exported
    model's; that is a failure naming the output, not 0 of 0 detections matched."""
    from ssdconvert.errors import NonFiniteOutputError

    broken = FasterRCNN().eval()
    broken.load_state_dict(realistic.model.state_dict())
    with torch.no_grad():
        broken.backbone.fpn.fpn_layer4.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteOutputError, match=r"output 'objectness' of PyTorch has \d+ of \d+ values not "
                                                   r"finite \(NaN or inf\) at batch 1: .*check the checkpoint's "
                                                   r"weights"):
        validate_detector(realistic_export.onnx_path, broken, realistic.batches[0])
