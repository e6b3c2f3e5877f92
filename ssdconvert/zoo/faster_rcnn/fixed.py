"""The exportable Faster R-CNN: dynamic batch, fixed-size tensors everywhere, the reference's results.

Inputs: `images` (N, 3, H, W) zero-padded to a fixed canvas (H, W multiples of 32) and `im_info`
(N, 2) = each image's unpadded (height, width) as float32: the RPN and the box head clip to it.
Outputs: `boxes` (N, K, 4) float32 x1 y1 x2 y2 in resized-image pixels, `scores` (N, K), `labels`
(N, K) int64 (1..80, 0 in empty slots) and `num_detections` (N,) int64, K = 100 by default;
detections are sorted by score and slots past num_detections are zero.

Each data-dependent step of reference.py has a fixed-size stand-in:

- per level: top-k (k = min(1000, H*W*A), a static number for a fixed canvas) of the objectness logit
  (the sigmoid's order, its saturated float32 ties broken by the logit, as reference.py ranks them),
  decode, clip to im_info, remove_small_boxes as a validity mask;
- per-level NMS 0.7 as ONE NonMaxSuppression whose "classes" are the levels (scores (N, 5, T)
  with -1 outside each level's segment), boxes fed as (x1, y1, x2 + 1, y2 + 1) so the continuous
  IoU equals the legacy +1 IoU, and scores replaced by distinct rank scores (the order is already
  the top-k order) so that no runtime's tie-breaking can differ;
- the top 1000 proposals per image by logit over the kept boxes (suppressed ones score -inf; if fewer
  than 1000 survive, the padding slots are marked invalid and can never become detections);
- LevelMapper per proposal and RoiAlign on each of P2..P5 for all proposals, selected by level
  (static shapes; 4x the RoIAlign work, well under 1% of the model's compute);
- per-class NMS 0.5 with the classes folded into the NMS batch axis ((N*80, 1000, 4) class-specific
  boxes, no coordinate-offset trick, so no precision is lost), candidates sorted per class first
  (stable) and fed rank scores, then the top K over (class, rank) of the kept ones.

With `dynamic_canvas` (the exact mode: batch 1, each image at its own padded size, H and W dynamic
axes of the export) every count that depends on the canvas is computed in the graph from the traced
shape instead of being fixed at the traced canvas: the per-level top-k size min(1000, H*W*A), and
with it the rank scores and the level membership, the number of proposals and of final candidates.
The tracer gives shapes as tensors, and Python's `min` of a tensor and an int would keep whichever
won at the traced canvas; `at_most` keeps the comparison in the graph. Without it the fixed graph is
traced exactly as before (its sizes are constants of its canvas).

Where the result can differ from the reference (measured in tests/families/faster_rcnn):

- the reference keeps every detection scoring >= the 100th best, so exact ties can leave more than
  100; this graph keeps exactly K, ties resolved by lower class, then lower proposal rank;
- the +1 shift is applied before the IoU instead of inside it: the IoU can differ in the last bit
  and flip a decision only if it equals the threshold to within ~1e-7;
- ONNX Runtime suppresses at IoU > thr (the reference's CUDA kernel, the default here); OpenVINO's
  NonMaxSuppression at IoU >= thr (the reference's CPU kernel);
- ties in sort order go to the lower index everywhere (the reference's sorts are not stable).
"""

from __future__ import annotations

import torch
from torch import nn

from ssdconvert.zoo.faster_rcnn import boxes as B
from ssdconvert.zoo.faster_rcnn.config import RcnnConfig
from ssdconvert.zoo.faster_rcnn.network import FasterRCNN
from ssdconvert.zoo.faster_rcnn.onnx_ops import nms_keep_mask, roi_align
from ssdconvert.zoo.faster_rcnn.reference import flatten_level, level_anchors

INPUT_NAMES = ("images", "im_info")
OUTPUT_NAMES = ("boxes", "scores", "labels", "num_detections")
DETECTIONS = 100
INVALID = -1.0  # score of a masked slot: below every probability
MASKED_LOGIT = float("-inf")  # a masked proposal's ranking key: below every logit


def topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top k along the last axis, sorted, ties to the lower index (ONNX TopK's rule).

    Exported as TopK; in eager mode a stable sort, because torch.topk does not order ties.
    """
    if torch.onnx.is_in_onnx_export():
        return torch.topk(scores, k, dim=-1)
    order = B.score_order(scores)[..., :k]
    return torch.gather(scores, -1, order), order


def plus_one(boxes: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2 + 1, y2 + 1): the continuous-geometry box with the legacy box's area."""
    return boxes + torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=boxes.dtype)


def gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (N, n, D), index (N, k) -> (N, k, D)."""
    return torch.gather(values, 1, index[..., None].expand(-1, -1, values.shape[-1]))


def at_most(limit: int, size, in_graph: bool):
    """min(limit, size); with `in_graph` and a traced size (a tensor) the minimum is a graph operation."""
    if in_graph and isinstance(size, torch.Tensor):
        return torch.clamp(size, max=limit)
    return min(limit, size)


class FixedSizeDetector(nn.Module):
    """(images, im_info) -> (boxes, scores, labels, num_detections); see the module docstring."""

    def __init__(self, net: FasterRCNN, detections: int = DETECTIONS, dynamic_canvas: bool = False) -> None:
        super().__init__()
        self.net = net
        self.config: RcnnConfig = net.config
        self.detections = detections
        self.dynamic_canvas = dynamic_canvas

    def _at_most(self, limit: int, size):
        return at_most(limit, size, self.dynamic_canvas)

    def forward(self, images: torch.Tensor, im_info: torch.Tensor):
        features, logits, deltas = self.net.dense(images)
        height, width = im_info[:, 0:1], im_info[:, 1:2]
        proposals, valid = self.proposals(features, logits, deltas, height, width)
        pooled = self.pool(features, proposals)
        class_logits, box_deltas = self.net.roi_heads.box(pooled)
        return self.detect(class_logits, box_deltas, proposals, valid, height, width)

    def proposals(self, features, logits, deltas, height, width) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, R, 4) proposals in descending objectness and their validity (N, R), R = 1000."""
        cfg = self.config
        cells = list(self.net.rpn.anchor_generator.cell_anchors.buffers())
        anchors = level_anchors(cells, cfg.anchor_strides, [tuple(f.shape[-2:]) for f in features])
        flat = [flatten_level(lg, dl) for lg, dl in zip(logits, deltas)]
        return self.level_proposals([o for o, _ in flat], [r for _, r in flat], anchors, height, width)

    def level_proposals(self, objectness_levels, regression_levels, anchors, height, width):
        """Per level objectness logits (N, n_l), deltas (N, n_l, 4), anchors (n_l, 4) -> proposals, validity."""
        cfg = self.config
        level_boxes, level_logits, level_ranks = [], [], []
        for objectness, regression, anc in zip(objectness_levels, regression_levels, anchors):
            k = self._at_most(cfg.pre_nms_top_n, objectness.shape[1])
            logit, idx = topk(objectness, k)  # by logit: see reference.py on saturated sigmoid ties
            boxes = B.decode(gather_rows(regression, idx), anc[idx], cfg.rpn_box_weights, cfg.bbox_xform_clip)
            boxes = B.clip_to_image(boxes, height, width)
            ok = B.keeps_min_size(boxes, cfg.rpn_min_size)
            rank = (k - torch.arange(k, dtype=logit.dtype)) / k  # distinct, descending: the top-k order
            level_boxes.append(boxes)
            level_logits.append(torch.where(ok, logit, torch.full_like(logit, MASKED_LOGIT)))
            level_ranks.append(torch.where(ok, rank.expand_as(logit), torch.full_like(logit, INVALID)))
        boxes, logits, ranks = torch.cat(level_boxes, 1), torch.cat(level_logits, 1), torch.cat(level_ranks, 1)
        level_of = torch.cat([torch.full((p.shape[1],), i) for i, p in enumerate(level_logits)])
        nms_scores = torch.stack([torch.where(level_of == i, ranks, torch.full_like(ranks, INVALID))
                                  for i in range(len(level_logits))], 1)
        keep = nms_keep_mask(plus_one(boxes), nms_scores, cfg.rpn_nms_thresh, cfg.post_nms_top_n).amax(1) > 0
        objectness = torch.where(keep, logits, torch.full_like(logits, MASKED_LOGIT))
        top, idx = topk(objectness, self._at_most(cfg.fpn_post_nms_top_n, objectness.shape[1]))
        return gather_rows(boxes, idx), top > MASKED_LOGIT

    def pool(self, features, proposals: torch.Tensor) -> torch.Tensor:
        """(N*R, C, 7, 7): RoiAlign of every proposal on its LevelMapper level."""
        cfg = self.config
        n, r = proposals.shape[0], proposals.shape[1]
        rois = proposals.reshape(-1, 4)
        batch_index = torch.arange(n)[:, None].expand(n, r).reshape(-1)
        levels = B.fpn_level(rois, cfg.k_min, cfg.k_max, cfg.canonical_scale, cfg.canonical_level, cfg.level_eps)
        pooled = None
        for level, scale in enumerate(cfg.pooler_scales):
            out = roi_align(features[level], rois, batch_index, scale, cfg.pooler_resolution,
                            cfg.pooler_sampling_ratio)
            pooled = out if pooled is None else torch.where((levels == level)[:, None, None, None], out, pooled)
        return pooled

    def detect(self, class_logits, box_deltas, proposals, valid, height, width):
        """Softmax, per-class decode and clip, per-class NMS, top K."""
        cfg = self.config
        n, r = proposals.shape[0], proposals.shape[1]
        classes = cfg.num_classes - 1
        probs = torch.softmax(class_logits, -1).reshape(n, r, cfg.num_classes)[:, :, 1:]
        boxes = B.decode(box_deltas, proposals.reshape(-1, 4), cfg.box_weights, cfg.bbox_xform_clip)
        boxes = B.clip_to_image(boxes.reshape(n, r, cfg.num_classes, 4)[:, :, 1:],
                                height[:, :, None], width[:, :, None])
        candidate = (probs > cfg.score_thresh) & valid[:, :, None]
        scores = torch.where(candidate, probs, torch.full_like(probs, INVALID))
        # classes folded into the batch axis: (N*80, R) scores, (N*80, R, 4) boxes
        scores = scores.permute(0, 2, 1).reshape(-1, r)
        boxes = boxes.permute(0, 2, 1, 3).reshape(-1, r, 4)
        sorted_scores, order = topk(scores, r)
        sorted_boxes = gather_rows(boxes, order)
        rank = (r - torch.arange(r, dtype=scores.dtype)) / r
        rank_scores = torch.where(sorted_scores >= 0, rank.expand_as(sorted_scores),
                                  torch.full_like(sorted_scores, INVALID))
        keep = nms_keep_mask(plus_one(sorted_boxes), rank_scores[:, None, :], cfg.nms_thresh, r)[:, 0] > 0
        final = torch.where(keep, sorted_scores, torch.full_like(sorted_scores, INVALID)).reshape(n, classes * r)
        top, idx = topk(final, self._at_most(self.detections, classes * r))
        found = top >= 0
        det_boxes = gather_rows(sorted_boxes.reshape(n, classes * r, 4), idx)
        zero = torch.zeros((), dtype=top.dtype)
        labels = torch.div(idx, r, rounding_mode="floor") + 1
        return (torch.where(found[..., None], det_boxes, zero), torch.where(found, top, zero),
                torch.where(found, labels, torch.zeros_like(labels)), found.sum(1))
