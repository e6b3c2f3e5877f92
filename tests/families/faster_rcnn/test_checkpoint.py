"""A maskrcnn-benchmark training checkpoint loads without trusting it; anything else gets a clear error."""

from __future__ import annotations

import collections
import os

import pytest
import torch

from ssdconvert.checkpoints import randomize
from ssdconvert.errors import CheckpointError
from ssdconvert.zoo.faster_rcnn.layouts import load_maskrcnn_benchmark
from ssdconvert.zoo.faster_rcnn.network import FasterRCNN


@pytest.fixture(scope="module")
def trained(maskrcnn_checkpoint):
    """A seeded model and the training-time extras Checkpointer.save writes next to it."""
    model = FasterRCNN()
    randomize(model, 3)
    return (model, *maskrcnn_checkpoint.training_state(model))


@pytest.fixture(scope="module")
def checkpoint_file(maskrcnn_checkpoint):
    """checkpoint_file(path, trained, **options): the trained model in Checkpointer.save's layout."""

    def write(path, trained, **options):
        model, optimizer, scheduler = trained
        return maskrcnn_checkpoint.write(path, model, optimizer=optimizer, scheduler=scheduler, **options)

    return write


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy_pre_1_6_format"])
def test_training_checkpoint_loads_without_trust(tmp_path, trained, legacy, checkpoint_file):
    path = tmp_path / "model_final.pth"
    checkpoint_file(path, trained, legacy=legacy)
    model = FasterRCNN()
    assert load_maskrcnn_benchmark(model, path) == len(model.state_dict()) == 555
    for key, value in trained[0].state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_scheduler_with_a_counter_also_loads(tmp_path, trained):
    model, optimizer, scheduler = trained
    state = scheduler.state_dict()
    state["milestones"] = collections.Counter([60000, 80000])  # torch's own MultiStepLR keeps a Counter
    path = tmp_path / "counter.pth"
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "scheduler": state}, path)
    assert load_maskrcnn_benchmark(FasterRCNN(), path) == 555


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickled_callable_is_refused_and_not_run(tmp_path, trained, checkpoint_file):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    checkpoint_file(path, trained, arguments=Exploit(marker))
    with pytest.raises(CheckpointError, match=r"refused: loading it would call (posix|os|nt)\.system"):
        load_maskrcnn_benchmark(FasterRCNN(), path)
    assert not marker.exists()


def test_cell_anchors_of_another_configuration_are_refused(tmp_path, trained, checkpoint_file):
    state = trained[0].state_dict()
    state["rpn.anchor_generator.cell_anchors.0"] = state["rpn.anchor_generator.cell_anchors.0"] * 2
    checkpoint_file(tmp_path / "other.pth", trained, model_state=state)
    with pytest.raises(CheckpointError, match=r"cell_anchors\.0 .*other anchor sizes"):
        load_maskrcnn_benchmark(FasterRCNN(), tmp_path / "other.pth")


def test_missing_cell_anchors_are_generated_but_missing_weights_are_not(tmp_path, trained, checkpoint_file):
    state = {k: v for k, v in trained[0].state_dict().items() if "cell_anchors" not in k}
    checkpoint_file(tmp_path / "no_anchors.pth", trained, model_state=state)
    assert load_maskrcnn_benchmark(FasterRCNN(), tmp_path / "no_anchors.pth") == 555
    del state["roi_heads.box.predictor.cls_score.bias"]
    checkpoint_file(tmp_path / "partial.pth", trained, model_state=state)
    with pytest.raises(CheckpointError, match=r"missing 1: roi_heads\.box\.\*"):
        load_maskrcnn_benchmark(FasterRCNN(), tmp_path / "partial.pth")


def test_a_torchvision_faster_rcnn_gets_a_clear_message(tmp_path):
    torch.save({"backbone.fpn.inner_blocks.0.0.weight": torch.zeros(1),
                "roi_heads.box_head.fc6.weight": torch.zeros(1)}, tmp_path / "tv.pth")
    with pytest.raises(CheckpointError, match="torchvision Faster R-CNN"):
        load_maskrcnn_benchmark(FasterRCNN(), tmp_path / "tv.pth")
