"""Checkpoint layouts (NV, mlcommons REF, module., fp16, backbone file) and bad-input errors."""

from __future__ import annotations

import argparse
import logging
import re

import pytest
import torch

from ssdconvert.checkpoints import build_model, group_keys
from ssdconvert.errors import CheckpointError

NV_TO_REF = {"model.0.": "model.layer1.0.", "model.1.": "model.layer1.1.", "model.3.": "model.layer1.4.",
             "model.4.": "model.layer1.5.", "model.5.": "model.layer2.0."}
NV_TO_TORCHVISION = {"model.0.": "conv1.", "model.1.": "bn1.", "model.3.": "layer1.", "model.4.": "layer2.",
                     "model.5.": "layer3."}
NUM_DEFAULTS = (4, 6, 6, 6, 4, 4)


def rename(state, table):
    out = {}
    for key, value in state.items():
        for old, new in table.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def to_ref_layout(state):
    """Written independently of the loader: split mbox.i into conf.i (first nd*81) and loc.i."""
    out = rename({k: v for k, v in state.items() if not k.startswith("mbox.")}, NV_TO_REF)
    for i, nd in enumerate(NUM_DEFAULTS):
        for p in ("weight", "bias"):
            fused = state[f"mbox.{i}.{p}"]
            out[f"conf.{i}.{p}"] = fused[: nd * 81].clone()
            out[f"loc.{i}.{p}"] = fused[nd * 81:].clone()
    return out


@pytest.fixture(scope="module")
def reference(spec):
    model, _ = build_model(spec, seed=7)
    x = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        outputs = model(x)
    return model.state_dict(), x, outputs


def assert_same_model(model, state, x, outputs):
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.no_grad():
        got = model(x)
    assert all(torch.equal(a, b) for a, b in zip(got, outputs))


@pytest.mark.parametrize("layout", ["nv_training_dict", "bare_state_dict", "mlcommons_ref", "module_prefix"])
def test_every_layout_loads_into_identical_weights_and_outputs(tmp_path, spec, reference, layout):
    state, x, outputs = reference
    payload = {
        "nv_training_dict": lambda: {"model": state},
        "bare_state_dict": lambda: dict(state),
        "mlcommons_ref": lambda: to_ref_layout(state),
        "module_prefix": lambda: {"model": {f"module.{k}": v for k, v in state.items()}},
    }[layout]()
    path = tmp_path / f"{layout}.pt"
    torch.save(payload, path)
    model, source = build_model(spec, path, seed=99)
    assert not source.is_random and len(source.checkpoint_sha256) == 64
    assert_same_model(model, state, x, outputs)


def test_ref_layout_has_218_tensors(reference):
    assert len(to_ref_layout(reference[0])) == 218


def test_fp16_checkpoint_is_cast_to_float32(tmp_path, spec, reference):
    state = reference[0]
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"model": half}, tmp_path / "amp.pt")
    model, _ = build_model(spec, tmp_path / "amp.pt")
    for key, value in model.state_dict().items():
        assert value.dtype == state[key].dtype
        assert torch.equal(value, half[key].to(value.dtype)), key


def torchvision_backbone(state):
    """A resnet34-333f7ec4.pth-style file: no num_batches_tracked, plus layer4 and fc."""
    backbone = {k: v for k, v in state.items() if k.startswith(tuple(NV_TO_TORCHVISION))
                and not k.endswith("num_batches_tracked")}
    out = rename(backbone, NV_TO_TORCHVISION)
    out["layer4.0.conv1.weight"] = torch.zeros(512, 256, 3, 3)
    out["fc.weight"], out["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    return out


def test_backbone_file_initialises_exactly_the_backbone(tmp_path, spec, reference):
    state = reference[0]
    file_state = torchvision_backbone(state)
    assert len(file_state) == 145 + 3  # 182 - 37 layer4/fc = 145 tensors, + 3 layer4/fc stand-ins
    torch.save(file_state, tmp_path / "resnet34.pth")
    random_only, _ = build_model(spec, seed=1)
    model, source = build_model(spec, backbone=tmp_path / "resnet34.pth", seed=1)
    assert source.is_random and source.backbone.endswith("resnet34.pth")
    random_state = random_only.state_dict()
    for key, value in model.state_dict().items():
        in_backbone = key.startswith(tuple(NV_TO_TORCHVISION)) and not key.endswith("num_batches_tracked")
        assert torch.equal(value, state[key] if in_backbone else random_state[key]), key


def test_backbone_then_checkpoint_gives_the_checkpoint(tmp_path, spec, reference):
    state, x, outputs = reference
    torch.save(torchvision_backbone({k: v * 2 for k, v in state.items()}), tmp_path / "bb.pth")
    torch.save({"model": state}, tmp_path / "ckpt.pt")
    model, _ = build_model(spec, tmp_path / "ckpt.pt", backbone=tmp_path / "bb.pth")
    assert_same_model(model, state, x, outputs)


def test_not_a_checkpoint(tmp_path, spec):
    (tmp_path / "notes.pt").write_text("this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        build_model(spec, tmp_path / "notes.pt")


def test_truncated_file(tmp_path, spec, reference):
    torch.save({"model": reference[0]}, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint, or is truncated"):
        build_model(spec, tmp_path / "cut.pt")


def test_missing_and_empty_files(tmp_path, spec):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        build_model(spec, tmp_path / "absent.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        build_model(spec, tmp_path / "empty.pt")


def test_wrong_shapes_are_named(tmp_path, spec, reference):
    state = dict(reference[0])
    state["mbox.0.weight"] = torch.zeros(324, 256, 3, 3)
    torch.save({"model": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"mbox.0.weight expects \[340, 256, 3, 3\] got \[324, 256, 3, 3\]"):
        build_model(spec, tmp_path / "bad.pt")


def test_missing_keys_are_grouped_not_listed(tmp_path, spec, reference):
    state = {k: v for k, v in reference[0].items() if not k.startswith("model.5.")}
    state["extra.head.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError) as info:
        build_model(spec, tmp_path / "partial.pt")
    message = str(info.value)
    assert "missing 78: model.5.* (78)" in message
    assert "unexpected 1: extra.head.* (1)" in message
    assert "model.5.0.conv1.weight" not in message  # grouped, never a wall of names


@pytest.mark.parametrize("name, dropped, missing", [
    ("ssd-resnet34", ("mbox.5.",), "missing 2: mbox.5.* (2)"),
    ("ssd-resnet50", ("loc.5.", "conf.5."), "missing 4: conf.5.* (2), loc.5.* (2)"),
])
def test_non_strict_load_tolerates_missing_keys(tmp_path, caplog, name, dropped, missing):
    """strict=False loads every tensor the file has, leaves the missing ones at the seeded random
    init (not zeros, not the file's), and says which are missing; strict (the default) refuses."""
    from ssdconvert.zoo import get_spec

    spec = get_spec(name)
    full = build_model(spec, seed=7)[0].state_dict()
    state = {k: v for k, v in full.items() if not k.startswith(dropped)}
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=re.escape(missing)):
        build_model(spec, tmp_path / "partial.pt")
    with caplog.at_level(logging.WARNING, logger="ssdconvert.checkpoints"):
        model, source = build_model(spec, tmp_path / "partial.pt", strict=False, seed=5)
    untouched = build_model(spec, seed=5)[0].state_dict()  # the same seeded init, no checkpoint
    for key, value in model.state_dict().items():
        assert torch.equal(value, untouched[key] if key.startswith(dropped) else state[key]), key
    first_missing = next(k for k in full if k.startswith(dropped))
    assert not torch.equal(untouched[first_missing], full[first_missing])  # seeds 5 and 7 differ
    assert "non-strict load" in caplog.text and missing in caplog.text
    assert not source.is_random


def test_pickled_objects_need_explicit_trust(tmp_path, spec, reference):
    torch.save({"model": reference[0], "args": argparse.Namespace(lr=0.1)}, tmp_path / "train.pt")
    with pytest.raises(CheckpointError, match=r"argparse.Namespace.*--trust-checkpoint"):
        build_model(spec, tmp_path / "train.pt")
    model, _ = build_model(spec, tmp_path / "train.pt", trust=True)
    assert torch.equal(model.state_dict()["mbox.3.bias"], reference[0]["mbox.3.bias"])


def test_backbone_file_given_as_checkpoint_is_explained(tmp_path, spec, reference):
    torch.save(torchvision_backbone(reference[0]), tmp_path / "resnet34.pth")
    with pytest.raises(CheckpointError, match="pass it with --backbone"):
        build_model(spec, tmp_path / "resnet34.pth")


def test_group_keys():
    assert group_keys(["mbox.0.weight", "mbox.0.bias", "model.5.0.conv1.weight", "fc"]) == \
        "fc (1), mbox.0.* (2), model.5.* (1)"
    wrapped = ["feature_extractor.feature_extractor.6.0.conv1.weight", "feature_extractor.feature_extractor.6.1.bn1.bias"]
    assert group_keys(wrapped) == "feature_extractor.feature_extractor.6.* (2)"


class _RunsAShellCommand:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def test_pickled_os_system_is_refused_and_named(tmp_path, spec, reference):
    torch.save({"model": reference[0], "hook": _RunsAShellCommand()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as info:
        build_model(spec, tmp_path / "evil.pt")
    message = str(info.value)
    assert "would call posix.system" in message and "do not load it" in message
    assert "--trust-checkpoint" not in message and "weights_only" not in message


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"hello, this is a text file\n" * 10,
                                     b"\x80\x02random pickle-looking bytes\xff\xfe" * 8],
                         ids=["random bytes", "text", "pickle header, garbage body"])
def test_garbage_files_are_not_checkpoints_and_torch_advice_is_not_repeated(tmp_path, spec, content):
    (tmp_path / "garbage.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a (readable )?PyTorch checkpoint") as info:
        build_model(spec, tmp_path / "garbage.pt")
    message = str(info.value)
    assert "weights_only" not in message and "Weights only load failed" not in message
    assert "trust" not in message
