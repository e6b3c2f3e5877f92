"""Shared Faster R-CNN fixtures: one crafted model, one batch of test images, one export (128x160 canvas).

The canvas is small on purpose: the network costs ~290 GMAC per image at 800x1344 and ~20 GMAC
here (the box head's 1000 RoIs dominate). Everything is session-scoped so the export, the ONNX
Runtime sessions and the reference detections are made once.

Seeded random weights alone give degenerate detections (a deep random ResNet saturates, the RPN
objectness is nearly constant, no class scores above 0.05), so the weights are crafted. Starting
from ssdconvert's seeded `randomize` (He-normal convs and linears, random frozen-BN statistics):

- every bottleneck's last FrozenBN scale is damped (x0.2) so 33 residual blocks keep activations
  finite and image-dependent;
- each head layer is rescaled affinely, measured on the test images themselves: RPN objectness
  logits to mean -2 / std 2 (objectness spread over ~0.01..0.99), RPN deltas to std 0.3, fc6 and
  fc7 pre-activations to mean 0 / std 1, class logits to std 1, box deltas to std 0.5 (weights
  (10, 10, 5, 5) make that a few percent of a box);
- 10 fixed random classes get +2.5 on their logit, so they pass the 0.05 threshold on some RoIs
  and not on others, per-class NMS has work to do and each image has more than 100 candidates
  (the "> 100 detections" rule runs).

Images: a flat colour, six coloured rectangles and noise (in the BGR-minus-mean value range),
zero past each image's unpadded size as preprocess pads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ssdconvert.checkpoints import randomize
from ssdconvert.zoo.faster_rcnn import reference
from ssdconvert.zoo.faster_rcnn.network import Bottleneck, FasterRCNN

CANVAS = (128, 160)
SIZES = [(128, 160), (100, 160), (96, 128)]  # unpadded (h, w): clipping differs per image
IMAGE_SEED = 5
BOOSTED_CLASSES, BOOST = 10, 2.5


def images(sizes: list[tuple[int, int]], canvas: tuple[int, int], seed: int) -> torch.Tensor:
    """(N, 3, H, W) padded test images, one per unpadded (h, w) in `sizes`, all different."""
    gen = torch.Generator().manual_seed(seed)
    height, width = canvas
    out = torch.zeros(len(sizes), 3, height, width)
    for i, (h, w) in enumerate(sizes):
        img = torch.randn(3, 1, 1, generator=gen) * 20 + torch.randn(3, h, w, generator=gen) * 5
        for _ in range(6):
            rh, rw = int(torch.randint(8, h // 2, (1,), generator=gen)), int(torch.randint(8, w // 2, (1,), generator=gen))
            y0, x0 = int(torch.randint(0, h - rh, (1,), generator=gen)), int(torch.randint(0, w - rw, (1,), generator=gen))
            img[:, y0:y0 + rh, x0:x0 + rw] += torch.randn(3, 1, 1, generator=gen) * 60
        out[i, :, :h, :w] = img
    return out


def _rescale(layer: torch.nn.Module, output: torch.Tensor, mean: float, std: float) -> None:
    """Make `layer`'s output (measured as `output`) have the given mean and std."""
    factor = std / output.std()
    layer.weight.mul_(factor)
    layer.bias.sub_(output.mean()).mul_(factor).add_(mean)


@torch.no_grad()
def crafted_model(calibration: torch.Tensor, sizes: list[tuple[int, int]], seed: int = 0) -> FasterRCNN:
    """A FasterRCNN (eval) whose detections on images like `calibration` are plentiful and varied."""
    model = FasterRCNN().eval()
    randomize(model, seed)
    for module in model.modules():
        if isinstance(module, Bottleneck):
            module.bn3.weight.mul_(0.2)
    head = model.rpn.head
    features, logits, deltas = model.dense(calibration)
    _rescale(head.cls_logits, torch.cat([t.flatten() for t in logits]), -2.0, 2.0)
    _rescale(head.bbox_pred, torch.cat([t.flatten() for t in deltas]), 0.0, 0.3)
    features, logits, deltas = model.dense(calibration)
    flat = [reference.flatten_level(lg, dl) for lg, dl in zip(logits, deltas)]
    anchors = reference.level_anchors(list(model.rpn.anchor_generator.cell_anchors.buffers()),
                                      model.config.anchor_strides, [tuple(f.shape[-2:]) for f in features])
    proposals = reference.select_proposals([o for o, _ in flat], [d for _, d in flat], anchors, sizes, model.config)
    x = reference.pool(features[:4], proposals, model.config).flatten(1)
    extractor, predictor = model.roi_heads.box.feature_extractor, model.roi_heads.box.predictor
    for fc in (extractor.fc6, extractor.fc7):
        _rescale(fc, fc(x), 0.0, 1.0)
        x = torch.relu(fc(x))
    _rescale(predictor.cls_score, predictor.cls_score(x), 0.0, 1.0)
    _rescale(predictor.bbox_pred, predictor.bbox_pred(x), 0.0, 0.5)
    gen = torch.Generator().manual_seed(seed + 1)
    predictor.cls_score.bias[torch.randperm(80, generator=gen)[:BOOSTED_CLASSES] + 1] += BOOST
    return model


@pytest.fixture(scope="session")
def frcnn_images():
    return images(SIZES, CANVAS, IMAGE_SEED)


@pytest.fixture(scope="session")
def frcnn_model(frcnn_images):
    return crafted_model(frcnn_images, SIZES)


@pytest.fixture(scope="session")
def frcnn_batches(frcnn_images):
    """Validation batches at batch 1 and 3 (different image contents and sizes)."""
    from ssdconvert.zoo.faster_rcnn.export import ValidationBatch

    images = frcnn_images.numpy()
    return {1: ValidationBatch(images[:1], SIZES[:1]), 3: ValidationBatch(images, SIZES)}


@pytest.fixture(scope="session")
def frcnn_reference(frcnn_model, frcnn_batches):
    """reference.detect on each validation batch, as ImageDetections."""
    from ssdconvert.zoo.faster_rcnn.export import reference_detections

    return {n: reference_detections(frcnn_model, batch) for n, batch in frcnn_batches.items()}


@pytest.fixture(scope="session")
def frcnn_export(tmp_path_factory, frcnn_model, frcnn_batches):
    """The fixed-size detector exported at opset 16 and validated in ONNX Runtime at batch 1 and 3."""
    from ssdconvert.zoo.faster_rcnn.export import export_detector

    path = tmp_path_factory.mktemp("frcnn") / "faster_rcnn.onnx"
    return export_detector(frcnn_model, path, canvas=CANVAS, validate_with=[frcnn_batches[1], frcnn_batches[3]])


@pytest.fixture(scope="session")
def run_onnx():
    """run_onnx(path, batch) -> the four fixed-K outputs from ONNX Runtime."""
    import onnxruntime as ort

    from ssdconvert.zoo.faster_rcnn.fixed import INPUT_NAMES

    def run(path: Path, batch) -> list[np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {INPUT_NAMES[0]: batch.images, INPUT_NAMES[1]: batch.im_info})

    return run
