"""maskrcnn-benchmark's test path, per image and data-dependent, in plain torch: the ground truth.

Follows facebookresearch/maskrcnn-benchmark (HEAD 57eec25b) step by step:

1. `rpn/inference.py` RPNPostProcessor.forward_for_single_feature_map, per level: objectness
   (N, A, H, W) and deltas (N, 4A, H, W) permuted to (N, H*W*A[, 4]) (`rpn/utils.py`
   permute_and_flatten), sigmoid, top-k with k = min(PRE_NMS_TOP_N_TEST, H*W*A), BoxCoder(1,1,1,1)
   decode of the selected anchors, then per image: clip to the image's **unpadded** size
   (ImageList.image_sizes), remove_small_boxes(MIN_SIZE 0), NMS 0.7 keeping POST_NMS_TOP_N_TEST.
2. `select_over_all_levels` at test time: per image, the top FPN_POST_NMS_TOP_N_TEST by
   objectness over the concatenated levels (no NMS across levels).
3. `poolers.py` Pooler: LevelMapper over the proposals, ROIAlign 7x7 per level on P2..P5.
4. `roi_heads/box_head/inference.py` PostProcessor: softmax, BoxCoder(10,10,5,5) per class,
   clip (remove_empty=False), per class j >= 1: score > 0.05, NMS 0.5, label j; concatenated
   class by class; if more than DETECTIONS_PER_IMG remain, keep score >= the k-th smallest with
   k = n - 100 + 1 (`torch.kthvalue`), so ties can leave more than 100.

Detections are in the coordinates of the resized (unpadded) image; the COCO conversion lives in
postprocess/heads/final_detections/rows.py. Ties in every sort go to the lower index (see boxes.py).

Objectness order: the reference ranks proposals by sigmoid(logit) with torch.topk, whose order of
equal values is unspecified. In float32 the sigmoid saturates near 1 (its spacing there is 6e-8), so
confident anchors tie: on a 1344x1344 canvas 16 anchors of one level shared the 1000th value on a
synthetic image, and which of them make the cut then depended on the last bit of each runtime's
sigmoid. Here (and in fixed.py) proposals are ranked by the logit instead: the sigmoid is monotonic,
so this is the reference's order with its ties broken by the logit, a property of the network's
output rather than of a runtime's sort or sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ssdconvert.zoo.faster_rcnn import boxes as B
from ssdconvert.zoo.faster_rcnn.config import RcnnConfig

ImageSize = tuple[int, int]  # (height, width) of the resized image before padding


@dataclass
class Proposals:
    """RPN output of one image: boxes (n, 4) legacy xyxy, their objectness (sigmoid) and its logit, descending."""

    boxes: torch.Tensor
    objectness: torch.Tensor
    logits: torch.Tensor | None = None  # the ranking key (see the module docstring)


@dataclass
class Detections:
    """Final detections of one image, class by class as the reference concatenates them."""

    boxes: torch.Tensor  # (n, 4) float32 x1 y1 x2 y2, resized-image pixels
    scores: torch.Tensor  # (n,) float32
    labels: torch.Tensor  # (n,) int64, 1..80

    def __len__(self) -> int:
        return len(self.scores)


def flatten_level(logits: torch.Tensor, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, A, H, W), (N, 4A, H, W) -> (N, H*W*A), (N, H*W*A, 4): location-major, anchor-minor."""
    n, a, h, w = logits.shape
    objectness = logits.reshape(n, a, 1, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1)
    regression = deltas.reshape(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
    return objectness, regression


def level_anchors(cell_anchors: Sequence[torch.Tensor], strides: Sequence[int],
                  shapes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Anchors (H*W*A, 4) of each level for feature maps of the given (H, W) shapes."""
    return [B.grid_anchors(cell, stride, h, w) for cell, stride, (h, w) in zip(cell_anchors, strides, shapes)]


def select_proposals(objectness: Sequence[torch.Tensor], deltas: Sequence[torch.Tensor],
                     anchors: Sequence[torch.Tensor], image_sizes: Sequence[ImageSize],
                     config: RcnnConfig) -> list[Proposals]:
    """RPN test post-processing: per-level objectness (N, n_l) and deltas (N, n_l, 4) -> per image."""
    per_image: list[list[Proposals]] = [[] for _ in image_sizes]
    for obj, reg, anc in zip(objectness, deltas, anchors):
        prob = obj.sigmoid()
        k = min(config.pre_nms_top_n, prob.shape[1])
        idx = B.score_order(obj)[:, :k]  # by logit: sigmoid order, saturated ties broken by the logit
        top = torch.gather(prob, 1, idx)
        top_logits = torch.gather(obj, 1, idx)
        decoded = B.decode(torch.gather(reg, 1, idx[..., None].expand(-1, -1, 4)), anc[idx],
                           config.rpn_box_weights, config.bbox_xform_clip)
        for i, (h, w) in enumerate(image_sizes):
            boxes = B.clip_to_image(decoded[i], torch.tensor(float(h)), torch.tensor(float(w)))
            keep = B.keeps_min_size(boxes, config.rpn_min_size)
            boxes, scores, logits = boxes[keep], top[i][keep], top_logits[i][keep]
            keep = B.nms(boxes, logits, config.rpn_nms_thresh, config.nms_compare)[:config.post_nms_top_n]
            per_image[i].append(Proposals(boxes[keep], scores[keep], logits[keep]))
    result = []
    for levels in per_image:
        boxes = torch.cat([p.boxes for p in levels])
        scores = torch.cat([p.objectness for p in levels])
        logits = torch.cat([p.logits for p in levels])
        if len(levels) > 1:
            order = B.score_order(logits)[:config.fpn_post_nms_top_n]
            boxes, scores, logits = boxes[order], scores[order], logits[order]
        result.append(Proposals(boxes, scores, logits))
    return result


def pool(features: Sequence[torch.Tensor], proposals: Sequence[Proposals], config: RcnnConfig) -> torch.Tensor:
    """Pooler.forward: (sum n_i, C, 7, 7) RoI features of every image's proposals, from P2..P5."""
    rois = torch.cat([p.boxes for p in proposals])
    batch_index = torch.cat([torch.full((len(p.boxes),), i, dtype=torch.int64) for i, p in enumerate(proposals)])
    levels = B.fpn_level(rois, config.k_min, config.k_max, config.canonical_scale, config.canonical_level,
                         config.level_eps)
    size = config.pooler_resolution
    out = features[0].new_zeros((len(rois), features[0].shape[1], size, size))
    for level, (feature, scale) in enumerate(zip(features, config.pooler_scales)):
        idx = torch.nonzero(levels == level).squeeze(1)
        out[idx] = B.roi_align(feature, rois[idx], batch_index[idx], scale, size, config.pooler_sampling_ratio)
    return out


def filter_detections(class_logits: torch.Tensor, box_deltas: torch.Tensor, proposals: Sequence[Proposals],
                      image_sizes: Sequence[ImageSize], config: RcnnConfig) -> list[Detections]:
    """PostProcessor.forward: box-head outputs of every proposal (images concatenated) -> detections."""
    probs = torch.softmax(class_logits, -1)
    rois = torch.cat([p.boxes for p in proposals])
    decoded = B.decode(box_deltas, rois, config.box_weights, config.bbox_xform_clip)
    counts = [len(p.boxes) for p in proposals]
    results = []
    for prob, boxes, (h, w) in zip(probs.split(counts), decoded.split(counts), image_sizes):
        boxes = B.clip_to_image(boxes.reshape(len(prob), -1, 4), torch.tensor(float(h)), torch.tensor(float(w)))
        results.append(_filter_results(boxes, prob, config))
    return results


def _filter_results(boxes: torch.Tensor, scores: torch.Tensor, config: RcnnConfig) -> Detections:
    """Per class: score > thresh, NMS; then the reference's "> detections_per_img" rule (ties kept)."""
    passed = scores > config.score_thresh
    kept_boxes, kept_scores, kept_labels = [], [], []
    for j in range(1, config.num_classes):
        inds = torch.nonzero(passed[:, j]).squeeze(1)
        boxes_j, scores_j = boxes[inds, j], scores[inds, j]
        keep = B.nms(boxes_j, scores_j, config.nms_thresh, config.nms_compare)
        kept_boxes.append(boxes_j[keep])
        kept_scores.append(scores_j[keep])
        kept_labels.append(torch.full((len(keep),), j, dtype=torch.int64))
    result = Detections(torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels))
    n, limit = len(result), config.detections_per_img
    if n > limit > 0:
        threshold, _ = torch.kthvalue(result.scores, n - limit + 1)
        keep = torch.nonzero(result.scores >= threshold.item()).squeeze(1)
        result = Detections(result.boxes[keep], result.scores[keep], result.labels[keep])
    return result


@torch.no_grad()
def detect(model, images: torch.Tensor, image_sizes: Sequence[ImageSize], config: RcnnConfig | None = None,
           check: Callable[[str, torch.Tensor], None] | None = None) -> list[Detections]:
    """The reference test forward of `model` (a FasterRCNN) on a zero-padded batch.

    images (N, 3, H, W) with H, W multiples of 32; image_sizes the unpadded (h, w) of each image.
    `check(name, tensor)` sees the network's outputs as they are made (the split models' names:
    objectness, rpn_deltas, class_logits, box_deltas) and may raise.
    """
    config = config or model.config
    check = check or (lambda name, tensor: None)
    features, logits, deltas = model.dense(images)
    flat = [flatten_level(lg, dl) for lg, dl in zip(logits, deltas)]
    check("objectness", torch.cat([o for o, _ in flat], 1))
    check("rpn_deltas", torch.cat([d for _, d in flat], 1))
    anchors = level_anchors(list(model.rpn.anchor_generator.cell_anchors.buffers()), config.anchor_strides,
                            [tuple(f.shape[-2:]) for f in features])
    proposals = select_proposals([o for o, _ in flat], [d for _, d in flat], anchors, image_sizes, config)
    pooled = pool(features[:len(config.pooler_scales)], proposals, config)
    class_logits, box_deltas = model.roi_heads.box(pooled)
    check("class_logits", class_logits)
    check("box_deltas", box_deltas)
    return filter_detections(class_logits, box_deltas, proposals, image_sizes, config)
