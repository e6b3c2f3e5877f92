"""The SSD-ResNet50 network matches NVIDIA SSD300 v1.1 (DeepLearningExamples Detection/SSD/ssd/model.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from postprocess.heads.nvidia_ssd.priors import default_boxes
from ssdconvert.zoo import get_spec, model_names

NUM_DEFAULTS = (4, 6, 6, 6, 4, 4)
FEAT = (38, 19, 10, 5, 3, 1)
LEVEL_OFFSETS = (0, 5776, 7942, 8542, 8692, 8728)  # cumulative f * f * nd
BACKBONE = "feature_extractor.feature_extractor"


def analytic_parameter_count() -> dict[str, int]:
    """Parameters counted from the architecture alone (conv weights, conv biases, BN gamma/beta)."""
    conv = lambda cin, cout, k: cin * cout * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    backbone = conv(3, 64, 7) + bn(64)
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6)):  # torchvision resnet50 layer1..layer3
        for b in range(blocks):
            cin = inplanes if b == 0 else planes * 4
            backbone += conv(cin, planes, 1) + bn(planes) + conv(planes, planes, 3) + bn(planes)
            backbone += conv(planes, planes * 4, 1) + bn(planes * 4)
            if b == 0:
                backbone += conv(cin, planes * 4, 1) + bn(planes * 4)
        inplanes = planes * 4
    channels = (1024, 512, 512, 256, 256, 256)
    extra = sum(conv(i, m, 1) + bn(m) + conv(m, o, 3) + bn(o)
                for i, o, m in zip(channels[:-1], channels[1:], (256, 256, 128, 128, 128)))
    heads = sum(conv(c, nd * (4 + 81), 3) + nd * (4 + 81) for c, nd in zip(channels, NUM_DEFAULTS))
    return {"backbone": backbone, "extra": extra, "heads": heads, "total": backbone + extra + heads}


def test_registered_next_to_ssd_resnet34():
    assert {"ssd-resnet34", "ssd-resnet50"} <= set(model_names())


def test_parameter_count_is_exact_and_matches_the_analytic_count(r50_model):
    counted = analytic_parameter_count()
    total = sum(p.numel() for p in r50_model.parameters())
    backbone = sum(p.numel() for k, p in r50_model.named_parameters() if k.startswith(BACKBONE))
    assert total == counted["total"] == 22_894_902  # ~22.9 M
    assert backbone == counted["backbone"] == 8_543_296  # ~8.5 M
    # torchvision resnet50 has 25,557,032 parameters; layer4 (14,964,736) and fc (2,049,000) are cut
    assert backbone == 25_557_032 - 14_964_736 - 2_049_000


def test_state_dict_has_the_nvidia_layout(r50_model):
    state = r50_model.state_dict()
    assert len(state) == 342
    expected_shapes = {
        f"{BACKBONE}.0.weight": (64, 3, 7, 7),
        f"{BACKBONE}.1.running_var": (64,),
        f"{BACKBONE}.4.0.conv3.weight": (256, 64, 1, 1),
        f"{BACKBONE}.4.0.downsample.0.weight": (256, 64, 1, 1),
        f"{BACKBONE}.5.0.downsample.1.running_mean": (512,),
        f"{BACKBONE}.6.0.conv1.weight": (256, 512, 1, 1),
        f"{BACKBONE}.6.0.downsample.0.weight": (1024, 512, 1, 1),
        f"{BACKBONE}.6.5.bn3.weight": (1024,),
        "additional_blocks.0.0.weight": (256, 1024, 1, 1),
        "additional_blocks.0.1.num_batches_tracked": (),
        "additional_blocks.0.3.weight": (512, 256, 3, 3),
        "additional_blocks.2.4.running_var": (256,),
        "additional_blocks.4.3.weight": (256, 128, 3, 3),
        "loc.0.weight": (16, 1024, 3, 3),
        "conf.0.weight": (324, 1024, 3, 3),
        "conf.1.bias": (486,),
        "loc.5.weight": (16, 256, 3, 3),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    prefixes = {".".join(k.split(".")[:3]) for k in state if k.startswith(BACKBONE)}
    assert prefixes == {f"{BACKBONE}.{i}" for i in (0, 1, 4, 5, 6)}
    assert {k.split(".")[2] for k in state if k.startswith("additional_blocks.")} == {"0", "1", "3", "4"}
    for i in range(5):  # convs without bias, BN with the full five entries
        assert f"additional_blocks.{i}.0.bias" not in state and f"additional_blocks.{i}.3.bias" not in state
        assert sum(k.startswith((f"additional_blocks.{i}.1.", f"additional_blocks.{i}.4.")) for k in state) == 10
    assert not any(k.startswith(("mbox.", "model.")) or "layer4" in k or "fc." in k for k in state)


def test_layer3_block0_runs_at_stride_one(r50_model):
    block = r50_model.feature_extractor.feature_extractor[6][0]
    assert block.conv1.stride == block.conv2.stride == block.downsample[0].stride == (1, 1)
    x = torch.randn(2, 3, 300, 300)
    sizes = []
    hooks = [b.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
             for b in r50_model.additional_blocks]
    with torch.no_grad():
        features = r50_model.feature_extractor(x)
        ploc, plabel = r50_model(x)
    for h in hooks:
        h.remove()
    assert features.shape == (2, 1024, 38, 38)
    assert sizes == [(512, 19, 19), (512, 10, 10), (256, 5, 5), (256, 3, 3), (256, 1, 1)]
    assert ploc.shape == (2, 4, 8732) and plabel.shape == (2, 81, 8732)
    assert not torch.allclose(plabel.sum(1), torch.ones(2, 8732), atol=1e-2)  # raw logits


@pytest.mark.parametrize("level", [1, 4])
def test_anchor_index_is_d_h_w_plus_y_w_plus_x(r50_model, level):
    """plabel[:, k, off + d*H*W + y*W + x] == conf.level channel k*nd + d at (y, x); same for ploc."""
    captured = {}
    hooks = [r50_model.loc[level].register_forward_hook(lambda m, i, o: captured.setdefault("loc", o)),
             r50_model.conf[level].register_forward_hook(lambda m, i, o: captured.setdefault("conf", o))]
    with torch.no_grad():
        ploc, plabel = r50_model(torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(5)))
    for h in hooks:
        h.remove()
    nd, f, off = NUM_DEFAULTS[level], FEAT[level], LEVEL_OFFSETS[level]
    conf, loc = captured["conf"][0], captured["loc"][0]
    assert conf.shape == (nd * 81, f, f) and loc.shape == (nd * 4, f, f)
    rng = np.random.default_rng(level)
    for d, y, x in zip(rng.integers(0, nd, 20), rng.integers(0, f, 20), rng.integers(0, f, 20)):
        a = off + d * f * f + y * f + x
        for k in (0, 1, 40, 80):
            assert plabel[0, k, a] == conf[k * nd + d, y, x]
        for k in range(4):
            assert ploc[0, k, a] == loc[k * nd + d, y, x]
    # and exhaustively: the level's slice is the plain channel-major reshape, no permute
    assert torch.equal(plabel[0, :, off:off + nd * f * f], conf.reshape(81, nd * f * f))
    assert torch.equal(ploc[0, :, off:off + nd * f * f], loc.reshape(4, nd * f * f))


def reference_default_boxes() -> np.ndarray:
    """The 8732 default boxes written out from the rule of dboxes300_coco (ssd/utils.py), not
    from the product's PriorSpec: sizes outer, rows, then columns; float64 -> float32 -> clamp."""
    from math import sqrt

    feat, steps = (38, 19, 10, 5, 3, 1), (8, 16, 32, 64, 100, 300)
    scales, ratios = (21, 45, 99, 153, 207, 261, 315), ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    boxes = []
    for level in range(6):
        fk, sk, sk1 = 300 / steps[level], scales[level] / 300, scales[level + 1] / 300
        sizes = [(sk, sk), (sqrt(sk * sk1), sqrt(sk * sk1))]
        for a in ratios[level]:
            sizes += [(sk * sqrt(a), sk / sqrt(a)), (sk / sqrt(a), sk * sqrt(a))]
        boxes += [((j + 0.5) / fk, (i + 0.5) / fk, w, h) for w, h in sizes
                  for i in range(feat[level]) for j in range(feat[level])]
    return np.array(boxes, dtype=np.float32)  # not yet clamped


@pytest.mark.parametrize("name", ["ssd-resnet50", "ssd-resnet34"])
def test_same_priors_decoder_inputs_and_transform_as_ssd_resnet34(name):
    """Both families against literal reference values, not against each other: they share one
    constant, so comparing them would pass even if that constant drifted from the reference."""
    spec = get_spec(name)
    boxes = default_boxes(spec.priors)
    unclamped = reference_default_boxes()
    reference = np.clip(unclamped, 0, 1)
    changed = np.argwhere(unclamped != reference)  # the clamp: 122 entries of 116 boxes in 7951..8731
    assert len(changed) == 122 and len(set(changed[:, 0])) == 116 and changed[:, 0].min() >= 7951
    assert boxes.shape == (8732, 4) and spec.priors.num_priors == 8732
    np.testing.assert_allclose(boxes, reference, rtol=0, atol=1e-7)
    counts = [f * f * nd for f, nd in zip(FEAT, NUM_DEFAULTS)]
    assert list(np.cumsum([0] + counts[:-1])) == list(LEVEL_OFFSETS)
    assert spec.priors.boxes_per_location == NUM_DEFAULTS
    # spot checks of dboxes300_coco: index 1, a level-1 aspect-2 box, the clamped level-5 w and h
    np.testing.assert_allclose(boxes[1], [0.04, 0.013333, 0.07, 0.07], atol=1e-6)
    w, h = boxes[5776 + 2 * 361 + 4 * 19 + 7, 2:]
    assert (w, h) == pytest.approx((0.212132, 0.106066), abs=1e-6)
    assert boxes[8728 + 2, 2] == 1.0 and boxes[8728 + 3, 3] == 1.0  # 0.87 * sqrt(2) = 1.2304 clamped
    # decoder (Encoder.scale_back_batch): xy variance 0.1, wh variance 0.2; 81 classes, background 0
    assert (spec.priors.scale_xy, spec.priors.scale_wh) == (0.1, 0.2)
    assert (spec.num_classes, spec.background_index) == (81, 0)
    # SSDTransformer(val=True): PIL bilinear 300x300, aspect not kept, /255, ImageNet mean/std
    t = spec.transform
    assert (t.height, t.width, t.channel_order, t.resize, t.keep_aspect) == (300, 300, "RGB", "pil_bilinear", False)
    assert t.scale == pytest.approx(1 / 255)
    assert t.mean == (0.485, 0.456, 0.406) and t.std == (0.229, 0.224, 0.225)
    assert (spec.input.name, spec.input.shape, spec.input.dtype) == ("image", (3, 300, 300), "float32")
    assert [(o.name, o.shape) for o in spec.outputs] == [("ploc", (4, 8732)), ("plabel", (81, 8732))]
    assert spec.backbone_file == {"ssd-resnet50": "resnet50-19c8e357.pth", "ssd-resnet34": "resnet34-333f7ec4.pth"}[name]


def test_flops_per_image_counts_every_conv(r50_model, r50_spec):
    macs = []

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        macs.append(output.numel() * module.in_channels // module.groups * k)

    hooks = [m.register_forward_hook(hook) for m in r50_model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        r50_model(torch.zeros(1, 3, 300, 300))
    for h in hooks:
        h.remove()
    assert len(macs) == 43 + 10 + 12  # backbone convs (1 + 13 blocks x 3 + 3 downsample), additional-block convs, heads
    assert sum(macs) == 20_150_906_112  # ~20.2 GMAC, ~13.5 G of it in the backbone
    assert r50_spec.flops_per_image == 2 * sum(macs)
    assert r50_spec.describe()["gflops_per_image"] == 40.3
