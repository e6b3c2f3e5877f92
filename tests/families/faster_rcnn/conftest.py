"""Shared Faster R-CNN fixtures: one batch of test images, their reference detections (128x160 canvas).

The demo model (`frcnn_model`) and the export (`frcnn_export`) are in tests/conftest.py: the
contract suite uses them too.

The canvas is small on purpose: the network costs ~290 GMAC per image at 800x1344 and ~20 GMAC
here (the box head's 1000 RoIs dominate). Everything is session-scoped so the export, the ONNX
Runtime sessions and the reference detections are made once.

The model is the zoo's demo model (seeded `randomize`, then ssdconvert.zoo.faster_rcnn.demo's
calibration, whose calibration images are these test images): plentiful, varied detections, more
than 100 candidates per image. Images: a flat colour, six coloured rectangles and noise (in the
BGR-minus-mean value range), zero past each image's unpadded size as preprocess pads them.
"""

from __future__ import annotations

import collections
import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssdconvert.zoo.faster_rcnn.demo import CALIBRATION_CANVAS, CALIBRATION_SEED, CALIBRATION_SIZES, synthetic_images

CANVAS = CALIBRATION_CANVAS
SIZES = list(CALIBRATION_SIZES)  # unpadded (h, w): clipping differs per image
IMAGE_SEED = CALIBRATION_SEED


@pytest.fixture(scope="session")
def frcnn_images():
    return synthetic_images(SIZES, CANVAS, IMAGE_SEED)


@pytest.fixture(scope="session")
def frcnn_batches(frcnn_images):
    """Validation batches at batch 1 and 3 (different image contents and sizes)."""
    from ssdconvert.zoo.faster_rcnn.validation import ValidationBatch

    images = frcnn_images.numpy()
    return {1: ValidationBatch(images[:1], SIZES[:1]), 3: ValidationBatch(images, SIZES)}


@pytest.fixture(scope="session")
def frcnn_reference(frcnn_model, frcnn_batches):
    """reference.detect on each validation batch, as ImageDetections."""
    from ssdconvert.zoo.faster_rcnn.validation import reference_detections

    return {n: reference_detections(frcnn_model, batch) for n, batch in frcnn_batches.items()}


@pytest.fixture(scope="session")
def run_onnx():
    """run_onnx(path, batch) -> the four fixed-K outputs from ONNX Runtime."""
    import onnxruntime as ort

    from ssdconvert.zoo.faster_rcnn.fixed import INPUT_NAMES

    def run(path: Path, batch) -> list[np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {INPUT_NAMES[0]: batch.images, INPUT_NAMES[1]: batch.im_info})

    return run


@pytest.fixture(scope="session")
def frcnn_split(tmp_path_factory, frcnn_model, frcnn_spec):
    """The split variant for the small canvas through the family's exporter (validated at batch 1 and 3):
    (dense WrittenGraph, head WrittenGraph, composite descriptor), unsimplified (see frcnn_export)."""
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.export import export_model

    out = tmp_path_factory.mktemp("split") / "faster_rcnn_r101_fpn.onnx"
    result = export_model(frcnn_model, frcnn_spec, out, weights=WeightsSource(random_seed=0, demo=True), batch=3,
                          variant="split", simplify_model=False)
    dense, head = result.graphs
    return dense, head, result.onnx_path


class WarmupMultiStepLR(torch.optim.lr_scheduler.LRScheduler):
    """A stand-in with the attributes of maskrcnn-benchmark's scheduler (solver/lr_scheduler.py)."""

    def __init__(self, optimizer, milestones, gamma=0.1, warmup_factor=1.0 / 3, warmup_iters=500,
                 warmup_method="linear"):
        self.milestones, self.gamma = milestones, gamma
        self.warmup_factor, self.warmup_iters, self.warmup_method = warmup_factor, warmup_iters, warmup_method
        super().__init__(optimizer)

    def get_lr(self):
        return list(self.base_lrs)


def training_state(model) -> tuple:
    """(SGD optimizer with momentum buffers, warm-up scheduler) after one training step of a copy of the model's
    RPN head and box predictor (the model itself is not changed)."""
    heads = copy.deepcopy(torch.nn.ModuleList([model.rpn.head, model.roi_heads.box.predictor]))
    optimizer = torch.optim.SGD(heads.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    scheduler = WarmupMultiStepLR(optimizer, (60000, 80000))
    loss = sum(t.sum() for t in heads[0]([torch.randn(1, 256, 4, 4)])[0]) + heads[1](torch.randn(2, 1024))[0].sum()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return optimizer, scheduler


def write_checkpoint(path, model, *, optimizer=None, scheduler=None, legacy: bool = False, model_state=None,
                     **extra) -> Path:
    """maskrcnn-benchmark's Checkpointer.save layout (utils/checkpoint.py): DDP `module.` keys, the optimizer's and
    scheduler's state, the iteration (engine/trainer.py arguments)."""
    if optimizer is None:
        optimizer, scheduler = training_state(model)
    state = model_state if model_state is not None else model.state_dict()
    payload = {"model": collections.OrderedDict((f"module.{k}", v) for k, v in state.items()),
               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "iteration": 90000, **extra}
    assert payload["optimizer"]["state"]  # momentum buffers are present
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return Path(path)


@pytest.fixture(scope="session")
def maskrcnn_checkpoint():
    """.write(path, model, ...) a checkpoint as maskrcnn-benchmark saves one; .training_state(model)."""
    return SimpleNamespace(write=write_checkpoint, training_state=training_state)
