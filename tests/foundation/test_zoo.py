"""The SSD-ResNet34 network matches the NVIDIA v0.7 layout (training_results_v0.7 NVIDIA SSD ssd300.py)."""

from __future__ import annotations

import pytest
import torch

from ssdconvert.errors import UnknownModelError
from ssdconvert.zoo import get_spec, model_names


def test_registry_lists_ssd_resnet34_and_rejects_unknown_names():
    assert "ssd-resnet34" in model_names()
    with pytest.raises(UnknownModelError, match="known models: .*ssd-resnet34"):
        get_spec("ssd-resnet99")


def test_state_dict_has_the_nvidia_layout(torch_model):
    state = torch_model.state_dict()
    assert len(state) == 206
    assert sum(p.numel() for p in torch_model.parameters()) == 19_972_534
    expected_shapes = {
        "model.0.weight": (64, 3, 7, 7),
        "model.1.running_var": (64,),
        "model.4.0.downsample.0.weight": (128, 64, 1, 1),
        "model.5.0.conv1.weight": (256, 128, 3, 3),
        "model.5.0.downsample.0.weight": (256, 128, 1, 1),
        "additional_blocks.3.2.weight": (256, 128, 3, 3),
        "mbox.0.weight": (340, 256, 3, 3),
        "mbox.1.bias": (510,),
        "mbox.5.weight": (340, 256, 3, 3),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith(("model.2.", "model.6.", "loc.", "conf.")) for k in state)


def test_layer3_runs_at_stride_one_and_outputs_are_raw(torch_model):
    x = torch.randn(2, 3, 300, 300)
    with torch.no_grad():
        features = torch_model.model(x)
        ploc, plabel = torch_model(x)
    assert features.shape == (2, 256, 38, 38)
    assert ploc.shape == (2, 4, 8732) and plabel.shape == (2, 81, 8732)
    # raw logits: a softmax output would sum to 1 over classes
    assert not torch.allclose(plabel.sum(1), torch.ones(2, 8732), atol=1e-2)


def test_fused_head_puts_class_logits_first(torch_model):
    """Level 5 (1x1 map, nd=4): plabel[:, k, 8728 + d] is mbox.5 channel k*4 + d; ploc follows after 324."""
    captured = {}
    hook = torch_model.mbox[5].register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    with torch.no_grad():
        ploc, plabel = torch_model(torch.randn(1, 3, 300, 300))
    hook.remove()
    raw = captured["out"][0, :, 0, 0]
    assert torch.equal(plabel[0, :, 8728:].reshape(-1), raw[:324])
    assert torch.equal(ploc[0, :, 8728:].reshape(-1), raw[324:])


def test_spec_describes_the_io_contract(spec):
    d = spec.describe()
    assert d["input"]["name"] == "image" and d["input"]["shape"] == ["N", 3, 300, 300]
    assert [o["name"] for o in d["outputs"]] == ["ploc", "plabel"]
    assert d["head"]["anchors"]["count"] == 8732
    assert d["input"]["mean"] == [0.485, 0.456, 0.406]


def test_flops_per_image_matches_the_analytic_conv_count(torch_model, spec):
    """MACs of every Conv2d at 300x300, batch 1, counted here with forward hooks (output elements x
    input channels per group x kernel area), against an analytic count from the layer list
    (backbone 12.907, additional blocks 0.704, heads 2.252, total 15.862 GMAC = 31.72 GFLOPs)."""
    macs: dict[str, int] = {}

    def hook(name):
        def count(module, inputs, output):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            macs[name] = output.numel() * per_output
        return count

    hooks = [m.register_forward_hook(hook(name)) for name, m in torch_model.named_modules()
             if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        torch_model(torch.zeros(1, 3, 300, 300))
    for h in hooks:
        h.remove()
    part = {prefix: sum(v for k, v in macs.items() if k.startswith(prefix)) / 1e9
            for prefix in ("model.", "additional_blocks.", "mbox.")}
    assert len(macs) == 1 + 2 * (3 + 4 + 6) + 2 + 2 * 5 + 6  # conv1, basic blocks, downsamples, extras, heads
    assert part == pytest.approx({"model.": 12.907, "additional_blocks.": 0.704, "mbox.": 2.252}, abs=5e-4)
    total = sum(macs.values())
    assert total / 1e9 == pytest.approx(15.862, abs=5e-4)
    assert spec.flops_per_image == pytest.approx(2 * total, rel=2e-4)  # the zoo's figure, rounded to 31.72 G
    assert spec.describe()["gflops_per_image"] == round(2 * total / 1e9, 2)
