"""Demo weights and test images for Faster R-CNN: seeded random weights that give plentiful, varied detections.

Seeded random weights alone give degenerate detections (a deep random ResNet saturates, the RPN
objectness is nearly constant, no class scores above 0.05), so a run without a checkpoint would
test nothing past the RPN. `demo_weights`, applied after ssdconvert's seeded `randomize`
(He-normal convs and linears, random frozen-BN statistics):

- damps every bottleneck's last FrozenBN scale (x0.2) so 33 residual blocks keep activations
  finite and image-dependent;
- rescales each head layer affinely, measured on `synthetic_images`: RPN objectness logits to mean
  -2 / std 2 (objectness spread over ~0.01..0.99), RPN deltas to std 0.3, fc6 and fc7
  pre-activations to mean 0 / std 1, class logits to std 1, box deltas to std 0.5 (weights
  (10, 10, 5, 5) make that a few percent of a box);
- adds +2.5 to the logit of 10 seeded classes, so they pass the 0.05 threshold on some RoIs and not
  on others, per-class NMS has work to do and an image has more than 100 candidates (the
  reference's "> 100 detections" rule runs).

The accuracy of such weights is meaningless; they exist so that every stage (export validation,
NMS, ties past 100, eval) runs on real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssdconvert.zoo.faster_rcnn import reference
from ssdconvert.zoo.faster_rcnn.network import Bottleneck, FasterRCNN

CALIBRATION_CANVAS = (128, 160)
CALIBRATION_SIZES = ((128, 160), (100, 160), (96, 128))  # unpadded (h, w) of the calibration images
CALIBRATION_SEED = 5
RESIDUAL_DAMPING = 0.2
BOOSTED_CLASSES, BOOST = 10, 2.5


def synthetic_images(sizes, canvas: tuple[int, int], seed: int) -> torch.Tensor:
    """(N, 3, H, W) padded images in the BGR-minus-mean value range, one per unpadded (h, w) in `sizes`:
    a flat colour, six coloured rectangles and noise, zero past each image's size as preprocess pads."""
    gen = torch.Generator().manual_seed(seed)
    height, width = canvas
    out = torch.zeros(len(sizes), 3, height, width)
    for i, (h, w) in enumerate(sizes):
        img = torch.randn(3, 1, 1, generator=gen) * 20 + torch.randn(3, h, w, generator=gen) * 5
        for _ in range(6):
            rh = int(torch.randint(8, max(9, h // 2), (1,), generator=gen))
            rw = int(torch.randint(8, max(9, w // 2), (1,), generator=gen))
            y0 = int(torch.randint(0, max(1, h - rh), (1,), generator=gen))
            x0 = int(torch.randint(0, max(1, w - rw), (1,), generator=gen))
            img[:, y0:y0 + rh, x0:x0 + rw] += torch.randn(3, 1, 1, generator=gen) * 60
        out[i, :, :h, :w] = img
    return out


@dataclass(frozen=True)
class HeadScales:
    """What calibrate_heads makes the heads' outputs on the calibration images: (mean, std) of the RPN
    objectness logits, std of the RPN deltas, of the class logits and of the box deltas."""

    objectness: tuple[float, float] = (-2.0, 2.0)
    rpn_deltas: float = 0.3
    class_logits: float = 1.0
    box_deltas: float = 0.5


def rescale(layer: torch.nn.Module, output: torch.Tensor, mean: float, std: float) -> None:
    """Make `layer`'s output (measured as `output`) have the given mean and std."""
    factor = std / output.std()
    layer.weight.mul_(factor)
    layer.bias.sub_(output.mean()).mul_(factor).add_(mean)


@torch.no_grad()
def calibrate_heads(model: FasterRCNN, images: torch.Tensor, sizes, scales: HeadScales = HeadScales()) -> None:
    """Rescale the RPN head, fc6, fc7 and the predictor of `model` so that their outputs on `images` have the
    `scales` (fc6 and fc7 pre-activations mean 0 / std 1), in place."""
    head = model.rpn.head
    features, logits, deltas = model.dense(images)
    rescale(head.cls_logits, torch.cat([t.flatten() for t in logits]), *scales.objectness)
    rescale(head.bbox_pred, torch.cat([t.flatten() for t in deltas]), 0.0, scales.rpn_deltas)
    features, logits, deltas = model.dense(images)
    flat = [reference.flatten_level(lg, dl) for lg, dl in zip(logits, deltas)]
    anchors = reference.level_anchors(list(model.rpn.anchor_generator.cell_anchors.buffers()),
                                      model.config.anchor_strides, [tuple(f.shape[-2:]) for f in features])
    proposals = reference.select_proposals([o for o, _ in flat], [d for _, d in flat], anchors, list(sizes),
                                           model.config)
    x = reference.pool(features[:len(model.config.pooler_scales)], proposals, model.config).flatten(1)
    extractor, predictor = model.roi_heads.box.feature_extractor, model.roi_heads.box.predictor
    for fc in (extractor.fc6, extractor.fc7):
        rescale(fc, fc(x), 0.0, 1.0)
        x = torch.relu(fc(x))
    rescale(predictor.cls_score, predictor.cls_score(x), 0.0, scales.class_logits)
    rescale(predictor.bbox_pred, predictor.bbox_pred(x), 0.0, scales.box_deltas)


@torch.no_grad()
def calibrate(model: FasterRCNN, images: torch.Tensor, sizes, seed: int = 0) -> FasterRCNN:
    """Damp the residual blocks and rescale the heads of a randomized `model` on `images` (in place)."""
    for module in model.modules():
        if isinstance(module, Bottleneck):
            module.bn3.weight.mul_(RESIDUAL_DAMPING)
    calibrate_heads(model, images, sizes)
    predictor = model.roi_heads.box.predictor
    gen = torch.Generator().manual_seed(seed + 1)
    predictor.cls_score.bias[torch.randperm(model.config.num_classes - 1, generator=gen)[:BOOSTED_CLASSES] + 1] += BOOST
    return model


def demo_weights(model: FasterRCNN, seed: int = 0) -> None:
    """ModelSpec.demo_weights: calibrate the seeded random `model` on the calibration images (in place)."""
    images = synthetic_images(CALIBRATION_SIZES, CALIBRATION_CANVAS, CALIBRATION_SEED)
    calibrate(model.eval(), images, CALIBRATION_SIZES, seed)
