"""The split variant: two static-shape device models with proposal selection and RoIAlign on the host.

maskrcnn-benchmark has no ONNX export (its issue #116), so the device runs only dense, static-shape
work and the host runs the data-dependent steps in the reference's own terms.

- `DenseModel`: images (N, 3, H, W) -> P2, P3, P4, P5 (the pooling levels) and the RPN outputs of
  all five levels, flattened like the reference (location-major, anchor-minor) and concatenated:
  objectness (N, T) logits and rpn_deltas (N, T, 4).
- `BoxHeadModel`: pooled RoI features (M, 256, 7, 7) -> class_logits (M, 81), box_deltas (M, 324);
  exported with M = N * 1000 rows (the host pads with zeros and ignores the padding rows).
- `SplitDetector`: the host stage between and after them. It runs reference.py's
  select_proposals, pool and filter_detections on the runtime's outputs, so its detections are
  the reference's (NMS with the configured `>`/`>=`, ties past 100 kept) up to the runtime's
  floating-point differences in the two models.
- `SplitStage`: the host stage as ssdconvert.backends.composite runs it from the variant's
  descriptor (no weights needed: the cell anchors are generated from the configuration): model
  inputs in, the fixed detector's four outputs out (K slots by descending score, ties to the lower
  class, then the earlier detection, as fixed.py orders them).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ssdconvert.zoo.faster_rcnn import boxes as B
from ssdconvert.zoo.faster_rcnn.config import REFERENCE, RcnnConfig
from ssdconvert.zoo.faster_rcnn.network import FasterRCNN, generated_cell_anchors
from ssdconvert.zoo.faster_rcnn.reference import (Detections, ImageSize, filter_detections, flatten_level,
                                                  level_anchors, pool, select_proposals)

DENSE_INPUTS = ("images",)
DENSE_OUTPUTS = ("p2", "p3", "p4", "p5", "objectness", "rpn_deltas")
HEAD_INPUTS = ("roi_features",)
HEAD_OUTPUTS = ("class_logits", "box_deltas")
ROIS_PER_IMAGE = 1000  # FPN_POST_NMS_TOP_N_TEST: the head model's rows per image

Runner = Callable[[np.ndarray], Sequence[np.ndarray]]  # one model input -> its outputs, in order


class DenseModel(nn.Module):
    """Backbone + FPN + RPN head of `net`: see the module docstring for the outputs."""

    def __init__(self, net: FasterRCNN) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor):
        features, logits, deltas = self.net.dense(images)
        flat = [flatten_level(lg, dl) for lg, dl in zip(logits, deltas)]
        pooled_levels = features[:len(self.net.config.pooler_scales)]
        return (*pooled_levels, torch.cat([o for o, _ in flat], 1), torch.cat([d for _, d in flat], 1))


class BoxHeadModel(nn.Module):
    """fc6, fc7, cls_score and bbox_pred of `net` over pooled RoI features."""

    def __init__(self, net: FasterRCNN) -> None:
        super().__init__()
        self.box = net.roi_heads.box

    def forward(self, roi_features: torch.Tensor):
        return self.box(roi_features)


def level_shapes(canvas: tuple[int, int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """Feature map (H, W) per RPN level for a canvas whose sides are multiples of 32.

    P2..P5 are canvas / stride; P6 = max_pool2d(P5, 1, 2) has ceil(P5 / 2) rows and columns.
    """
    height, width = canvas
    shapes = [(height // s, width // s) for s in strides[:-1]]
    h5, w5 = shapes[-1]
    return shapes + [(math.ceil(h5 / 2), math.ceil(w5 / 2))]


class SplitDetector:
    """Host stage of the split variant around two runtimes (callables taking one array)."""

    def __init__(self, config: RcnnConfig, cell_anchors: Sequence[torch.Tensor], canvas: tuple[int, int],
                 run_dense: Runner, run_head: Runner) -> None:
        self.config = config
        self.run_dense, self.run_head = run_dense, run_head
        shapes = level_shapes(canvas, self.config.anchor_strides)
        self.anchors = level_anchors(list(cell_anchors), self.config.anchor_strides, shapes)
        self.level_sizes = [len(a) for a in self.anchors]

    @classmethod
    def of(cls, net: FasterRCNN, canvas: tuple[int, int], run_dense: Runner, run_head: Runner) -> "SplitDetector":
        """The host stage for `net`'s configuration and cell anchors."""
        return cls(net.config, list(net.rpn.anchor_generator.cell_anchors.buffers()), canvas, run_dense, run_head)

    @torch.no_grad()
    def __call__(self, images: np.ndarray, image_sizes: Sequence[ImageSize]) -> list[Detections]:
        *features, objectness, deltas = (torch.from_numpy(np.asarray(o)) for o in self.run_dense(images))
        proposals, roi_features = self.roi_stage(features, objectness, deltas, image_sizes)
        class_logits, box_deltas = (torch.from_numpy(np.asarray(o)) for o in self.run_head(roi_features))
        return self.detection_stage(class_logits, box_deltas, proposals, image_sizes)

    def roi_stage(self, features, objectness: torch.Tensor, deltas: torch.Tensor,
                  image_sizes: Sequence[ImageSize]) -> tuple[list, np.ndarray]:
        """Host work before the head: proposals per image and the head's (N*1000, 256, 7, 7) input."""
        proposals = select_proposals(objectness.split(self.level_sizes, 1), deltas.split(self.level_sizes, 1),
                                     self.anchors, image_sizes, self.config)
        pooled = pool(features, proposals, self.config)
        size = self.config.pooler_resolution
        roi_features = np.zeros((len(image_sizes) * ROIS_PER_IMAGE, pooled.shape[1], size, size), np.float32)
        start = 0
        for i, p in enumerate(proposals):
            roi_features[i * ROIS_PER_IMAGE:i * ROIS_PER_IMAGE + len(p.boxes)] = pooled[start:start + len(p.boxes)]
            start += len(p.boxes)
        return proposals, roi_features

    def detection_stage(self, class_logits: torch.Tensor, box_deltas: torch.Tensor, proposals,
                        image_sizes: Sequence[ImageSize]) -> list[Detections]:
        """Host work after the head: drop the padding rows, then the reference's PostProcessor."""
        rows = torch.cat([torch.arange(len(p.boxes)) + i * ROIS_PER_IMAGE for i, p in enumerate(proposals)])
        return filter_detections(class_logits[rows], box_deltas[rows], proposals, image_sizes, self.config)


def fixed_slots(detections: Sequence[Detections], k: int) -> list[np.ndarray]:
    """Reference detections (any number per image) -> boxes (N, k, 4), scores (N, k), labels (N, k) int64,
    num_detections (N,) int64: the best k by score, ties to the lower class, then the earlier detection."""
    n = len(detections)
    boxes, scores = np.zeros((n, k, 4), np.float32), np.zeros((n, k), np.float32)
    labels, counts = np.zeros((n, k), np.int64), np.zeros(n, np.int64)
    for i, d in enumerate(detections):
        order = B.score_order(d.scores[None])[0][:k].numpy() if len(d) else np.zeros(0, np.int64)
        m = len(order)
        boxes[i, :m], scores[i, :m] = d.boxes.numpy()[order], d.scores.numpy()[order]
        labels[i, :m], counts[i] = d.labels.numpy()[order], m
    return [boxes, scores, labels, counts]


class SplitStage:
    """The split variant's host stage for ssdconvert.backends.composite: feeds + part runners -> outputs."""

    def __init__(self, descriptor: dict) -> None:
        stage = descriptor["stage"]
        self.config = RcnnConfig(nms_compare=stage.get("nms_compare", REFERENCE.nms_compare))
        self.canvas = tuple(stage["canvas"])
        self.detections = int(stage["detections"])
        self.cell_anchors = generated_cell_anchors(self.config)

    def __call__(self, feeds: dict[str, np.ndarray], parts: dict[str, Runner]) -> list[np.ndarray]:
        images, im_info = feeds["images"], feeds["im_info"]
        sizes = [(int(h), int(w)) for h, w in np.asarray(im_info).reshape(-1, 2)]
        detector = SplitDetector(self.config, self.cell_anchors, self.canvas, parts["dense"], parts["head"])
        return fixed_slots(detector(images, sizes), self.detections)
