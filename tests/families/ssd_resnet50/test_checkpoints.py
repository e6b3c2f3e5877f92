"""SSD-ResNet50 checkpoint layouts (NVIDIA training dict, module./module.1., fp16, torchvision
resnet50 backbone file) and bad-input errors, with the same safe-loading rules as ssd-resnet34."""

from __future__ import annotations

import argparse
import copy
from collections import Counter

import pytest
import torch

from ssdconvert.checkpoints import build_model, read_checkpoint
from ssdconvert.errors import CheckpointError

BACKBONE = "feature_extractor.feature_extractor."
# written independently of the loader, from the module layout of NVIDIA DeepLearningExamples ssd/model.py
NATIVE_TO_TORCHVISION = {BACKBONE + "0.": "conv1.", BACKBONE + "1.": "bn1.", BACKBONE + "4.": "layer1.",
                         BACKBONE + "5.": "layer2.", BACKBONE + "6.": "layer3."}
COCO_LABELS = {0: "background", 1: "person", 2: "bicycle"}  # shortened label_map


def rename(state, table):
    out = {}
    for key, value in state.items():
        for old, new in table.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


@pytest.fixture(scope="module")
def reference(r50_spec):
    model, _ = build_model(r50_spec, seed=7)
    x = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        outputs = model(x)
    return model, model.state_dict(), x, outputs


def nvidia_training_checkpoint(model):
    """What NVIDIA main.py saves: epoch, iteration, optimizer, scheduler (MultiStepLR), label_map, model.

    Real optimizer and scheduler objects, so the pickle holds exactly what theirs does, including the
    collections.Counter of MultiStepLR.milestones and one SGD momentum buffer.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=2.6e-3, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[43, 54], gamma=0.1)
    bias = model.loc[5].bias
    before = bias.detach().clone()
    bias.grad = torch.ones_like(bias)
    optimizer.step()
    scheduler.step()
    bias.grad = None
    with torch.no_grad():  # keep the weights of the seeded reference; the momentum buffer stays
        bias.copy_(before)
    saved = {"epoch": 65, "iteration": 120_000, "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "label_map": COCO_LABELS,
             "model": {k: v.clone() for k, v in model.state_dict().items()}}
    assert isinstance(saved["scheduler"]["milestones"], Counter)
    assert any("momentum_buffer" in s for s in saved["optimizer"]["state"].values())
    return saved


@pytest.fixture(scope="module")
def training_checkpoint(tmp_path_factory, reference):
    """The NVIDIA training dict of the reference weights, written once."""
    path = tmp_path_factory.mktemp("nvidia") / "epoch_64.pt"
    torch.save(nvidia_training_checkpoint(copy.deepcopy(reference[0]).train()), path)
    return path


def assert_same_model(model, state, x, outputs):
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.no_grad():
        got = model(x)
    assert all(torch.equal(a, b) for a, b in zip(got, outputs))


@pytest.mark.parametrize("layout", ["nvidia_training_dict", "bare_state_dict", "module_prefix", "module_1_prefix"])
def test_every_layout_loads_into_identical_weights_and_outputs(tmp_path, r50_spec, reference, training_checkpoint,
                                                              layout):
    model, state, x, outputs = reference
    path = tmp_path / f"{layout}.pt"
    if layout == "nvidia_training_dict":
        path = training_checkpoint
    else:
        payload = {
            "bare_state_dict": lambda: dict(state),
            "module_prefix": lambda: {"model": {f"module.{k}": v for k, v in state.items()}},
            # DDP around the old nn.Sequential(tofp16(), model) AMP wrapper; NVIDIA's hub strips it
            "module_1_prefix": lambda: {"model": {f"module.1.{k}": v for k, v in state.items()}},
        }[layout]()
        torch.save(payload, path)
    loaded, source = build_model(r50_spec, path, seed=99)  # no --trust-checkpoint
    assert not source.is_random and len(source.checkpoint_sha256) == 64
    assert_same_model(loaded, state, x, outputs)


def test_nvidia_training_dict_is_safe_to_read_without_trust(training_checkpoint):
    """torch's weights-only unpickler allows collections.Counter, so the full dict loads with
    weights_only=True: no --trust-checkpoint is needed."""
    obj = read_checkpoint(training_checkpoint, trust=False)
    assert set(obj) == {"epoch", "iteration", "optimizer", "scheduler", "label_map", "model"}
    assert obj["scheduler"]["milestones"] == Counter({43: 1, 54: 1})
    assert obj["label_map"] == COCO_LABELS


def test_pickled_objects_beyond_that_need_explicit_trust(tmp_path, r50_spec, reference):
    saved = nvidia_training_checkpoint(copy.deepcopy(reference[0]).train())
    saved["args"] = argparse.Namespace(backbone="resnet50", amp=True)  # scripts that also save their args
    torch.save(saved, tmp_path / "with_args.pt")
    with pytest.raises(CheckpointError, match=r"argparse.Namespace.*--trust-checkpoint"):
        build_model(r50_spec, tmp_path / "with_args.pt")
    model, _ = build_model(r50_spec, tmp_path / "with_args.pt", trust=True)
    assert torch.equal(model.state_dict()["conf.3.bias"], reference[1]["conf.3.bias"])


def test_amp_checkpoint_is_cast_to_float32(tmp_path, r50_spec, reference):
    """model_math fp16: convs in half, BatchNorm kept in float32 (as NVIDIA's hub loader does)."""
    model, state = reference[0], reference[1]
    bn_keys = {f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
               for p in ("weight", "bias", "running_mean", "running_var")}
    amp = {k: v.half() if v.is_floating_point() and k not in bn_keys else v for k, v in state.items()}
    assert amp["conf.0.weight"].dtype == torch.float16 and amp[BACKBONE + "1.weight"].dtype == torch.float32
    torch.save({"model": amp}, tmp_path / "nvidia_ssdpyt_amp.pt")
    loaded, _ = build_model(r50_spec, tmp_path / "nvidia_ssdpyt_amp.pt")
    for key, value in loaded.state_dict().items():
        assert value.dtype == state[key].dtype, key
        assert torch.equal(value, amp[key].to(value.dtype)), key


def torchvision_resnet50(state, with_num_batches_tracked=False):
    """A resnet50-19c8e357.pth-style file: conv1/bn1/layer1..3 (+ layer4/fc stand-ins), no num_batches_tracked."""
    backbone = {k: v for k, v in state.items() if k.startswith(BACKBONE)
                and (with_num_batches_tracked or not k.endswith("num_batches_tracked"))}
    out = rename(backbone, NATIVE_TO_TORCHVISION)
    out["layer4.0.conv1.weight"] = torch.zeros(512, 1024, 1, 1)
    out["layer4.2.bn3.running_var"] = torch.ones(2048)
    out["fc.weight"], out["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    return out


def test_torchvision_resnet50_file_has_the_documented_size(reference):
    file_state = torchvision_resnet50(reference[1])
    # conv1..layer3 of torchvision resnet50 without num_batches_tracked: 43 convs + 43 BN x 4
    assert len(file_state) - 4 == 43 + 43 * 4 == 215
    assert "layer1.0.conv3.weight" in file_state and "layer3.5.bn3.running_mean" in file_state


@pytest.mark.parametrize("with_nbt", [False, True], ids=["v1_file_without_nbt", "with_num_batches_tracked"])
def test_backbone_file_initialises_exactly_the_backbone(tmp_path, r50_spec, reference, with_nbt):
    state = reference[1]
    torch.save(torchvision_resnet50(state, with_nbt), tmp_path / "resnet50-19c8e357.pth")
    random_only, _ = build_model(r50_spec, seed=1)
    model, source = build_model(r50_spec, backbone=tmp_path / "resnet50-19c8e357.pth", seed=1)
    assert source.is_random and source.backbone.endswith("resnet50-19c8e357.pth")
    random_state = random_only.state_dict()
    for key, value in model.state_dict().items():
        in_file = key.startswith(BACKBONE) and (with_nbt or not key.endswith("num_batches_tracked"))
        assert torch.equal(value, state[key] if in_file else random_state[key]), key


def test_backbone_then_checkpoint_gives_the_checkpoint(tmp_path, r50_spec, reference):
    _, state, x, outputs = reference
    torch.save(torchvision_resnet50({k: v * 2 for k, v in state.items()}), tmp_path / "bb.pth")
    torch.save({"model": state}, tmp_path / "ckpt.pt")
    model, _ = build_model(r50_spec, tmp_path / "ckpt.pt", backbone=tmp_path / "bb.pth")
    assert_same_model(model, state, x, outputs)


def test_resnet34_backbone_file_is_refused_by_name(tmp_path, r50_spec):
    from ssdconvert.zoo import get_spec

    r34, _ = build_model(get_spec("ssd-resnet34"))
    basic = {k.replace("model.0.", "conv1.").replace("model.1.", "bn1.").replace("model.3.", "layer1."): v
             for k, v in r34.state_dict().items() if k.startswith(("model.0.", "model.1.", "model.3."))}
    torch.save(basic, tmp_path / "resnet34-333f7ec4.pth")
    with pytest.raises(CheckpointError, match="basic blocks.*needs a torchvision resnet50 file"):
        build_model(r50_spec, backbone=tmp_path / "resnet34-333f7ec4.pth")


def test_ssd_resnet34_checkpoint_points_to_the_right_model(tmp_path, r50_spec):
    from ssdconvert.zoo import get_spec

    r34, _ = build_model(get_spec("ssd-resnet34"))
    torch.save({"model": r34.state_dict()}, tmp_path / "iter_183250.pt")
    with pytest.raises(CheckpointError, match="checkpoint of ssd-resnet34 .*pass --model ssd-resnet34"):
        build_model(r50_spec, tmp_path / "iter_183250.pt")


def test_backbone_file_given_as_checkpoint_is_explained(tmp_path, r50_spec, reference):
    torch.save(torchvision_resnet50(reference[1]), tmp_path / "resnet50.pth")
    with pytest.raises(CheckpointError, match="pass it with --backbone"):
        build_model(r50_spec, tmp_path / "resnet50.pth")


def test_full_training_checkpoint_given_to_the_default_model_names_ssd_resnet50(training_checkpoint):
    """The real NVIDIA layout (separate loc./conf. heads look like mlcommons REF keys to the R34 mapper)
    gets one line naming the right model, not a dump of every key group."""
    from ssdconvert.zoo import get_spec

    with pytest.raises(CheckpointError) as info:
        build_model(get_spec("ssd-resnet34"), training_checkpoint)
    message = str(info.value)
    assert message == (f"{training_checkpoint} is a checkpoint of ssd-resnet50 (every tensor fits it), "
                       "not of ssd-resnet34: pass --model ssd-resnet50")
