"""SSD300-VGG16 is the network mmdet builds (SSDVGG, SSDNeck, SSDHead): parameters, keys, layout, L2Norm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssdconvert.zoo import get_spec

ANCHORS = (4, 6, 6, 6, 4, 4)
FEAT = (38, 19, 10, 5, 3, 1)
OFFSETS = (0, 5776, 7942, 8542, 8692, 8728)
SOURCES = (512, 1024, 512, 256, 256, 256)


def analytic_parameter_count() -> dict[str, int]:
    """From the architecture alone: conv weights + biases, L2Norm weights."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    vgg = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 512), (512, 512),
           (512, 512), (512, 512), (512, 512), (512, 512)]
    backbone = sum(conv(i, o, 3) for i, o in vgg) + conv(512, 1024, 3) + conv(1024, 1024, 1)
    extra = sum(conv(i, o // 2, 1) + conv(o // 2, o, 3) for i, o in ((1024, 512), (512, 256), (256, 256), (256, 256)))
    head = sum(conv(c, a * 81, 3) + conv(c, a * 4, 3) for c, a in zip(SOURCES, ANCHORS))
    return {"backbone": backbone, "neck": extra + 512, "head": head, "total": backbone + extra + 512 + head}


@pytest.fixture(scope="module")
def model(seeded_model):
    return seeded_model("ssd-vgg16")


def test_parameter_count_is_exact(model):
    counted = analytic_parameter_count()
    assert sum(p.numel() for p in model.parameters()) == counted["total"] == 34_305_206  # ~34.31 M
    assert sum(p.numel() for k, p in model.named_parameters() if k.startswith("backbone.")) == counted["backbone"]
    assert sum(p.numel() for k, p in model.named_parameters() if k.startswith("bbox_head.")) == counted["head"]
    # torchvision's 91-class SSD300-VGG16 has 35,641,826 (SSD300_VGG16_Weights.COCO_V1 num_params); the
    # difference is the head's 10 extra classes
    assert 35_641_826 - counted["total"] == sum(c * a * 10 * 9 + a * 10 for c, a in zip(SOURCES, ANCHORS))


def test_state_dict_has_the_mmdet_2_14_layout(model):
    state = model.state_dict()
    assert len(state) == 71
    assert {int(k.split(".")[2]) for k in state if k.startswith("backbone.features.")} == \
        {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, 31, 33}
    shapes = {"backbone.features.31.weight": (1024, 512, 3, 3), "backbone.features.33.weight": (1024, 1024, 1, 1),
              "neck.extra_layers.0.0.conv.weight": (256, 1024, 1, 1), "neck.extra_layers.0.1.conv.weight": (512, 256, 3, 3),
              "neck.extra_layers.3.1.conv.bias": (256,), "neck.l2_norm.weight": (512,),
              "bbox_head.cls_convs.0.0.weight": (324, 512, 3, 3), "bbox_head.reg_convs.1.0.weight": (24, 1024, 3, 3),
              "bbox_head.cls_convs.5.0.bias": (324,)}
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    conv31 = model.backbone.features[31]
    assert conv31.dilation == (6, 6) and conv31.padding == (6, 6)
    assert all(m.ceil_mode for m in model.backbone.features if isinstance(m, torch.nn.MaxPool2d) and m.kernel_size == 2)


def test_feature_maps_and_l2norm(model):
    x = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        feats = model.backbone(x)
        outs = model.neck(feats)
    assert [tuple(f.shape[1:]) for f in outs] == [(c, f, f) for c, f in zip(SOURCES, FEAT)]
    w = model.neck.l2_norm.weight
    expected = w[None, :, None, None] * feats[0] / (feats[0].pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
    assert torch.equal(outs[0], expected)  # y = (w * x) / (||x||_2 + 1e-10), in that order


@pytest.mark.parametrize("level", [1, 4])
def test_outputs_are_location_major_with_channel_a_times_81_plus_c(model, level):
    """cls_logits[n, c, off + (y*W + x)*A + a] is head channel a*81 + c at (y, x), as mmdet reads it."""
    captured = {}
    hooks = [model.bbox_head.cls_convs[level].register_forward_hook(lambda m, i, o: captured.setdefault("cls", o)),
             model.bbox_head.reg_convs[level].register_forward_hook(lambda m, i, o: captured.setdefault("reg", o))]
    with torch.no_grad():
        deltas, logits = model(torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(4)))
    for h in hooks:
        h.remove()
    a_n, f, off = ANCHORS[level], FEAT[level], OFFSETS[level]
    cls, reg = captured["cls"][0], captured["reg"][0]
    rng = np.random.default_rng(level)
    for y, x, a in zip(rng.integers(0, f, 20), rng.integers(0, f, 20), rng.integers(0, a_n, 20)):
        index = off + (y * f + x) * a_n + a
        for c in (0, 7, 79, 80):
            assert logits[0, c, index] == cls[a * 81 + c, y, x]
        for k in range(4):
            assert deltas[0, k, index] == reg[a * 4 + k, y, x]
    # and exhaustively: mmdet's permute(1, 2, 0).reshape(-1, 81) of the level, transposed
    assert torch.equal(logits[0, :, off:off + f * f * a_n], cls.permute(1, 2, 0).reshape(-1, 81).T)


def test_flops_per_image_counts_every_conv(model):
    macs = []

    def hook(module, inputs, output):
        macs.append(output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1])

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 300, 300))
    for h in hooks:
        h.remove()
    assert len(macs) == 15 + 8 + 12
    assert sum(macs) == 34_360_351_232  # ~34.4 GMAC at 300x300
    assert get_spec("ssd-vgg16").flops_per_image == 2 * sum(macs)
