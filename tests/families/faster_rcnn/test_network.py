"""The network matches maskrcnn-benchmark's R-101-FPN (modeling/backbone/, rpn/, roi_heads/box_head/)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssdconvert.zoo.faster_rcnn.network import FasterRCNN, FrozenBatchNorm2d


def analytic_parameter_count() -> int:
    """Conv/linear weights and biases from the architecture alone (FrozenBN has no parameters)."""
    conv = lambda cin, cout, k, bias=False: cin * cout * k * k + (cout if bias else 0)  # noqa: E731
    total = conv(3, 64, 7)  # stem
    cin = 64
    for mid, out, blocks in ((64, 256, 3), (128, 512, 4), (256, 1024, 23), (512, 2048, 3)):
        for b in range(blocks):
            total += conv(cin, mid, 1) + conv(mid, mid, 3) + conv(mid, out, 1)
            total += conv(cin, out, 1) if b == 0 else 0  # downsample where in != out
            cin = out
    total += sum(conv(c, 256, 1, True) + conv(256, 256, 3, True) for c in (256, 512, 1024, 2048))  # FPN
    total += conv(256, 256, 3, True) + conv(256, 3, 1, True) + conv(256, 12, 1, True)  # RPN head
    total += 256 * 7 * 7 * 1024 + 1024 + 1024 * 1024 + 1024  # fc6, fc7
    total += 1024 * 81 + 81 + 1024 * 324 + 324  # cls_score, bbox_pred
    return total


@pytest.fixture(scope="module")
def net():
    return FasterRCNN().eval()


def test_parameter_count_is_the_analytic_one(net):
    assert analytic_parameter_count() == 60_643_940
    assert sum(p.numel() for p in net.parameters()) == 60_643_940


def test_state_dict_has_the_maskrcnn_benchmark_keys(net):
    state = net.state_dict()
    expected = {
        "backbone.body.stem.conv1.weight": (64, 3, 7, 7),
        "backbone.body.stem.bn1.running_var": (64,),
        "backbone.body.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "backbone.body.layer1.0.downsample.1.bias": (256,),
        "backbone.body.layer3.22.conv3.weight": (1024, 256, 1, 1),
        "backbone.body.layer4.2.bn3.running_mean": (2048,),
        "backbone.fpn.fpn_inner1.weight": (256, 256, 1, 1),
        "backbone.fpn.fpn_inner4.bias": (256,),
        "backbone.fpn.fpn_layer4.weight": (256, 256, 3, 3),
        "rpn.anchor_generator.cell_anchors.4": (3, 4),
        "rpn.head.conv.weight": (256, 256, 3, 3),
        "rpn.head.cls_logits.weight": (3, 256, 1, 1),
        "rpn.head.bbox_pred.bias": (12,),
        "roi_heads.box.feature_extractor.fc6.weight": (1024, 12544),
        "roi_heads.box.feature_extractor.fc7.bias": (1024,),
        "roi_heads.box.predictor.cls_score.weight": (81, 1024),
        "roi_heads.box.predictor.bbox_pred.weight": (324, 1024),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.endswith("num_batches_tracked") for k in state)
    assert "backbone.body.layer1.1.downsample.0.weight" not in state  # only where in != out channels
    assert sum(k.startswith("rpn.anchor_generator.cell_anchors.") for k in state) == 5


def test_frozen_batch_norm_has_buffers_only_and_no_eps():
    bn = FrozenBatchNorm2d(4)
    assert not list(bn.parameters())
    assert sorted(name for name, _ in bn.named_buffers()) == ["bias", "running_mean", "running_var", "weight"]
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        bn.running_mean.copy_(torch.tensor([0.5, 0.0, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([1e-4, 4.0, 0.25, 1e-3]))  # small variances make eps visible
    x = torch.randn(2, 4, 3, 3)
    literal = (x - bn.running_mean.view(1, -1, 1, 1)) / bn.running_var.sqrt().view(1, -1, 1, 1) \
        * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    assert torch.allclose(bn(x), literal, rtol=1e-5, atol=1e-5)
    with_eps = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=1e-5)
    assert not torch.allclose(bn(x), with_eps, rtol=1e-3)


def test_the_stride_sits_on_the_1x1_conv(net):
    body = net.backbone.body
    for layer in (body.layer2, body.layer3, body.layer4):
        assert layer[0].conv1.stride == (2, 2) and layer[0].conv2.stride == (1, 1)
        assert layer[0].downsample[0].stride == (2, 2)
    assert body.layer1[0].conv1.stride == (1, 1)


def test_fpn_levels_and_p6_is_every_second_pixel_of_p5(net):
    with torch.no_grad():
        features, logits, deltas = net.dense(torch.randn(1, 3, 96, 160))
    assert [tuple(f.shape[-2:]) for f in features] == [(24, 40), (12, 20), (6, 10), (3, 5), (2, 3)]
    assert torch.equal(features[4], features[3][:, :, ::2, ::2])
    assert [tuple(t.shape[1:2]) for t in logits] == [(3,)] * 5 and deltas[0].shape[1] == 12
