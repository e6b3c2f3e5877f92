"""maskrcnn-benchmark checkpoint layout: load `e2e_faster_rcnn_R_101_FPN_1x.pth` without trusting it.

Verified in facebookresearch/maskrcnn-benchmark (HEAD 57eec25b): `utils/checkpoint.py`
Checkpointer.save writes {'model': model.state_dict(), 'optimizer': ..., 'scheduler': ...,
**arguments} with arguments = {'iteration': n} (`engine/trainer.py`); training runs under
DistributedDataParallel, so the model keys carry `module.`, which `utils/model_serialization.py`
strip_prefix_if_present removes before suffix-matching the keys (align_and_update_state_dicts).

Measured with torch 2.13 (tests/families/faster_rcnn/test_checkpoint.py): such a file loads with
`torch.load(weights_only=True)` as written by both the zip and the legacy (pre-1.6) serialiser,
optimizer state (SGD momentum buffers, param_groups) and the WarmupMultiStepLR scheduler state
(a milestones tuple, floats, ints, a str, lists; a Counter too) included, so no type needs to be
allowlisted; a pickled callable is refused. ssdconvert.checkpoints does the unwrapping
(['model'], `module.`) and the strict, grouped comparison; this module maps and checks the keys.

The checkpoint also stores the RPN cell anchors (`rpn.anchor_generator.cell_anchors.{0..4}`,
buffers). They must equal the ones generated from the configuration (maskrcnn-benchmark
modeling/rpn/anchor_generator.py); a difference means the file was trained with other ANCHOR_SIZES /
ASPECT_RATIOS / ANCHOR_STRIDE and is refused. A file without them gets the generated ones.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ssdconvert.checkpoints import load_checkpoint
from ssdconvert.errors import CheckpointError
from ssdconvert.zoo.faster_rcnn.config import REFERENCE, RcnnConfig
from ssdconvert.zoo.faster_rcnn.network import generated_cell_anchors

MODEL_NAME = "faster-rcnn-r101-fpn"
CELL_ANCHORS = "rpn.anchor_generator.cell_anchors."
TORCHVISION_KEYS = ("backbone.fpn.inner_blocks.0.0.weight", "roi_heads.box_head.fc6.weight")
DETECTRON2_KEYS = ("backbone.bottom_up.stem.conv1.weight", "roi_heads.box_head.fc1.weight")


def to_native_layout(state: dict, config: RcnnConfig = REFERENCE) -> dict:
    """Check and complete a maskrcnn-benchmark state_dict (already unwrapped, `module.` stripped)."""
    if any(key in state for key in TORCHVISION_KEYS):
        raise CheckpointError("this is a torchvision Faster R-CNN checkpoint (inner_blocks/box_head keys); "
                              f"{MODEL_NAME} takes maskrcnn-benchmark checkpoints (backbone.body.*, fpn_inner*)")
    if any(key in state for key in DETECTRON2_KEYS):
        raise CheckpointError("this is a detectron2 checkpoint (bottom_up/box_head keys); "
                              f"{MODEL_NAME} takes maskrcnn-benchmark checkpoints")
    state = dict(state)
    for index, expected in enumerate(generated_cell_anchors(config)):
        key = f"{CELL_ANCHORS}{index}"
        found = state.setdefault(key, expected.clone())
        if found.shape != expected.shape or not torch.equal(found.float(), expected):
            raise CheckpointError(
                f"{key} in the checkpoint is {found.tolist()} but the reference configuration generates "
                f"{expected.tolist()}: the file was trained with other anchor sizes, aspect ratios or strides")
    return state


def load_maskrcnn_benchmark(model: torch.nn.Module, path: str | Path, *, trust: bool = False) -> int:
    """Load a maskrcnn-benchmark checkpoint into a FasterRCNN, strictly; returns the tensor count."""
    return load_checkpoint(model, path, lambda state: to_native_layout(state, model.config), MODEL_NAME,
                           trust=trust)
