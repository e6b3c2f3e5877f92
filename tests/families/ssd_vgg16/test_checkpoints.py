"""mmdet SSD300 checkpoints: both key layouts, mmcv's {"meta", "state_dict"} container, module.,
fp16; weights-only loading; other families' checkpoints name the right --model."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

from ssdconvert.checkpoints import build_model
from ssdconvert.errors import CheckpointError
from ssdconvert.zoo import get_spec
from postprocess.heads.mmdet_ssd import COCO_CLASSES

SPEC = get_spec("ssd-vgg16")


def to_old_layout(state: dict) -> dict:
    """mmdet <= 2.13 keys (mmdet 2.x SSDVGG owns extra and l2_norm), written independently of the loader."""
    out = {}
    for key, value in state.items():
        if m := re.match(r"neck\.extra_layers\.(\d)\.(\d)\.conv\.(weight|bias)$", key):
            key = f"backbone.extra.{2 * int(m.group(1)) + int(m.group(2))}.{m.group(3)}"
        elif key == "neck.l2_norm.weight":
            key = "backbone.l2_norm.weight"
        elif m := re.match(r"bbox_head\.(cls|reg)_convs\.(\d)\.0\.(weight|bias)$", key):
            key = f"bbox_head.{m.group(1)}_convs.{m.group(2)}.{m.group(3)}"
        out[key] = value
    return out


def mmcv_meta(version: str) -> dict:
    """What mmcv's save_checkpoint and mmdet's train script put in `meta` (plain Python types only)."""
    return {"mmcv_version": "1.3.8", "time": time.asctime(), "mmdet_version": version,
            "config": "model = dict(type='SingleStageDetector', backbone=dict(type='SSDVGG', depth=16))\n",
            "CLASSES": COCO_CLASSES, "env_info": "sys.platform: linux\nPyTorch: 1.8.1", "seed": 0,
            "exp_name": "ssd300_coco.py", "epoch": 120, "iter": 879480, "hook_msgs": {"last_ckpt": "epoch_120.pth"}}


@pytest.fixture(scope="module")
def reference():
    model, _ = build_model(SPEC, seed=7)
    x = torch.randn(1, 3, 300, 300, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        outputs = model(x)
    return model.state_dict(), x, outputs


def test_old_layout_has_the_pre_2_14_names(reference):
    old = to_old_layout(reference[0])
    assert len(old) == 71 and "backbone.extra.7.bias" in old and "backbone.l2_norm.weight" in old
    assert "bbox_head.cls_convs.5.weight" in old and not any(k.startswith("neck.") for k in old)


@pytest.mark.parametrize("layout", ["new", "old"])
@pytest.mark.parametrize("wrapper", ["mmcv", "module_prefix_fp16"])
def test_both_layouts_load_to_identical_weights_and_outputs(tmp_path, reference, layout, wrapper):
    """Each layout gives exactly the reference weights, so the two layouts give the same model."""
    state, x, outputs = reference
    keys = state if layout == "new" else to_old_layout(state)
    if wrapper == "mmcv":  # what mmcv's save_checkpoint writes (publish_model.py drops the optimizer)
        payload = {"meta": mmcv_meta("2.15.0" if layout == "new" else "2.0.0"), "state_dict": dict(keys)}
    else:  # a DataParallel-wrapped AMP model
        payload = {"state_dict": {f"module.{k}": v.half() for k, v in keys.items()}}
    torch.save(payload, tmp_path / "ssd300_coco.pth")
    model, source = build_model(SPEC, tmp_path / "ssd300_coco.pth", seed=99)  # weights_only, no trust
    assert not source.is_random
    loaded = model.state_dict()
    for key, value in state.items():
        expected = value.half().float() if wrapper != "mmcv" else value
        assert torch.equal(loaded[key], expected), key
    if wrapper == "mmcv":
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(model(x), outputs))


def test_meta_with_pickled_objects_is_still_refused(tmp_path, reference):
    """The real mmcv meta needs no allowlist; anything beyond plain types keeps the usual message."""
    meta = dict(mmcv_meta("2.15.0"), seed=np.int64(5))
    torch.save({"meta": meta, "state_dict": reference[0]}, tmp_path / "np.pth")
    with pytest.raises(CheckpointError, match=r"numpy.*scalar.*--trust-checkpoint"):
        build_model(SPEC, tmp_path / "np.pth")
    model, _ = build_model(SPEC, tmp_path / "np.pth", trust=True)
    assert torch.equal(model.state_dict()["neck.l2_norm.weight"], reference[0]["neck.l2_norm.weight"])


@pytest.mark.parametrize("other, model_flag", [("ssd-resnet34", "ssd-resnet34"), ("ssd-resnet50", "ssd-resnet50")])
def test_checkpoints_of_other_families_name_the_right_model(tmp_path, reference, other, model_flag):
    other_state, _ = build_model(get_spec(other))
    torch.save({"model": other_state.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=f"is a checkpoint of {model_flag} .*: pass --model {model_flag}$"):
        build_model(SPEC, tmp_path / "other.pt")
    torch.save({"meta": mmcv_meta("2.15.0"), "state_dict": reference[0]}, tmp_path / "vgg.pth")
    with pytest.raises(CheckpointError, match="is a checkpoint of ssd-vgg16 .*: pass --model ssd-vgg16$"):
        build_model(get_spec(other), tmp_path / "vgg.pth")
