"""The registered spec: canvas-dependent inputs and compute, demo weights, the compute counted from the
architecture against the real modules."""

from __future__ import annotations

import pytest
import torch

from preprocess.errors import PreprocessError
from ssdconvert.errors import SsdConvertError
from ssdconvert.zoo import get_spec
from ssdconvert.zoo.faster_rcnn.flops import macs
from ssdconvert.zoo.faster_rcnn.network import FasterRCNN

NAME = "faster-rcnn-r101-fpn"


def hooked_macs(canvas):
    """MACs counted by forward hooks on every conv of the real network (meta tensors), plus the box head's
    linears for 1000 RoIs: output elements x input channels x kernel area."""
    with torch.device("meta"):
        net = FasterRCNN()
    counted = {"conv": 0}

    def count(module, inputs, output):
        counted["conv"] += output.numel() * module.in_channels // module.groups * module.kernel_size[0] \
            * module.kernel_size[1]

    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(count)
    with torch.no_grad():
        net.dense(torch.empty(1, 3, *canvas, device="meta"))
    linears = sum(m.in_features * m.out_features for m in net.roi_heads.modules() if isinstance(m, torch.nn.Linear))
    return counted["conv"] + 1000 * linears


@pytest.mark.parametrize("canvas", [(1344, 1344), (800, 1344), (800, 1216), (320, 352), (96, 160)])
def test_compute_counted_from_the_architecture_equals_the_modules(canvas):
    assert macs(canvas)["total"] == hooked_macs(canvas)


def test_the_analytic_compute_figures():
    """Analytic count: ~264 G at 800x1216, ~290 G at 800x1344 (1000 RoIs), box head 14.3 G."""
    assert round(macs((800, 1216))["total"] / 1e9) == 264
    assert round(macs((800, 1344))["total"] / 1e9, 1) == 290.5
    assert round(macs((800, 1344))["box_head"] / 1e9, 1) == 14.3


def test_a_canvas_changes_the_input_the_transform_and_the_compute():
    spec = get_spec(NAME)
    assert spec.input.shape == (3, 1344, 1344) and spec.input_names == ("images", "im_info")
    small = spec.with_canvas((320, 352))
    assert small.input.shape == (3, 320, 352) and (small.transform.height, small.transform.width) == (320, 352)
    assert small.flops_per_image == 2 * macs((320, 352))["total"] < spec.flops_per_image
    assert small.extra_inputs == spec.extra_inputs and small.head is spec.head
    with pytest.raises(PreprocessError, match="must be positive multiples of 32"):
        spec.with_canvas((300, 300))
    with pytest.raises(SsdConvertError, match="ssd-vgg16 has a fixed 300x300 input"):
        get_spec("ssd-vgg16").with_canvas((320, 320))


def test_the_transform_writes_what_the_spec_declares():
    spec = get_spec(NAME)
    converter = spec.transform.converter()
    assert converter.input_info(spec.input.name).tensor.shape == spec.input.shape
    assert [(s.tensor.name, s.tensor.shape, s.tensor.dtype) for s in converter.side_inputs] == \
        [(i.name, i.shape, i.dtype) for i in spec.extra_inputs]


def test_without_a_checkpoint_the_demo_weights_are_applied_and_labelled(frcnn_model):
    from ssdconvert.checkpoints import WeightsSource, randomize

    plain = FasterRCNN()
    randomize(plain, 0)
    assert not torch.equal(plain.roi_heads.box.predictor.cls_score.bias, frcnn_model.roi_heads.box.predictor.cls_score.bias)
    assert torch.equal(plain.backbone.body.stem.conv1.weight, frcnn_model.backbone.body.stem.conv1.weight)
    label = WeightsSource(random_seed=0, demo=True).label()
    assert label.startswith("seeded random weights (seed 0), calibrated for varied detections;")
