"""The mmdet SSD head's decoder: mmdet's post-processing (candidates per level, decode, rescale, mmcv
batched_nms), as postprocess.heads.mmdet_ssd describes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from postprocess.candidates import Selected, select
from postprocess.heads.mmdet_ssd.anchors import ssd_anchors
from postprocess.heads.mmdet_ssd.coder import decode_deltas
from postprocess.heads.spec import NmsPolicy
from postprocess.images import ImageLike, decoded_size
from postprocess.nms import first_per_run, greedy_keep_top, nonzero_2d, runs, sort_order

if TYPE_CHECKING:
    from postprocess.heads.mmdet_ssd import MmdetSsdHead


class MmdetSsdDecoder:
    """Raw (bbox_deltas, cls_logits) of a batch -> COCO rows with mmdet's post-processing."""

    float32_rows = False  # mmdet writes json from Python floats: w = x2 - x1 in double

    def __init__(self, head: "MmdetSsdHead", policy: NmsPolicy):
        if policy.selection not in ("per-level-pairs", "per-level-anchors"):
            raise ValueError(f"NMS policy {policy.name}: selection {policy.selection} is not an mmdet one")
        self.head, self.policy = head, policy
        self.anchors = ssd_anchors(head.anchors)
        self.offsets = np.asarray(head.anchors.level_offsets)
        self.level_counts = np.asarray(head.anchors.level_counts)
        bg = head.background_index
        self.fg_labels = np.array([c for c in range(head.num_classes) if c != bg])

    def select(self, arrays: Sequence[np.ndarray]) -> Selected:
        """bbox_deltas (B, 4, A), cls_logits (B, C, A) -> the anchors whose best foreground score may pass
        the threshold, softmaxed (postprocess.candidates.select, shared with the NVIDIA head)."""
        deltas, logits = arrays
        return select(deltas, logits, self.policy.score_threshold, self.head.background_index)

    def rows(self, selected: Selected, images: Sequence[ImageLike], inv_map: np.ndarray) -> np.ndarray:
        p, head = self.policy, self.head
        cand = selected.candidates
        k, row, score, tie = self._pairs(selected)
        image = cand.image[row]
        # decode, clip to the input, rescale to the decoded image
        size = np.array([decoded_size(im) for im in images], dtype=np.float64).reshape(-1, 2)
        boxes = decode_deltas(selected.loc[row], self.anchors[cand.anchor[row]], head.coder,
                              (head.anchors.input_size, head.anchors.input_size))
        ratio = head.anchors.input_size / size[image]  # mmcv.imresize: w_scale = 300 / w (Python floats)
        if p.drop_empty_boxes:  # mmdet 3.x: boxes * float32(1 / scale_factor)
            boxes *= np.tile((1.0 / ratio).astype(np.float32), 2)
        else:  # mmdet 2.x: boxes / float32(scale_factor)
            boxes /= np.tile(ratio.astype(np.float32), 2)
        if p.drop_empty_boxes:
            valid = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
            image, k, score, tie, boxes = image[valid], k[valid], score[valid], tie[valid], boxes[valid]
        # mmcv batched_nms: shift each class by label * (max coordinate of the image + 1), in float32
        top = np.zeros(len(images), np.float32)
        if len(boxes):
            np.maximum.at(top, image, boxes.max(axis=1))
        shifted = boxes + (k.astype(np.float32) * (top[image] + np.float32(1)))[:, None]
        keep = greedy_keep_top(image, k, score, tie, shifted, p.iou_threshold, not p.suppress_at_equal,
                               p.max_per_image)
        kept = np.flatnonzero(keep)
        kept = kept[sort_order(image[kept], score[kept], tie[kept])]
        kept = kept[first_per_run(runs(image[kept]), p.max_per_image)]
        return _coco_rows(images, image[kept], boxes[kept], score[kept], inv_map[self.fg_labels[k[kept]]])

    def _pairs(self, selected: Selected) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The (anchor, class) pairs the policy hands to decoding: foreground class k, candidate row, score,
        and `tie`, which orders equal scores as mmdet's candidate list does (a stable sort keeps that order)."""
        p, cand = self.policy, selected.candidates
        bg, nfg = self.head.background_index, len(self.fg_labels)
        by_class = cand.scores.T  # (C, n) contiguous: the layout candidate_scores computes in
        fg = by_class[:bg] if bg == self.head.num_classes - 1 else by_class[self.fg_labels]
        level = np.searchsorted(self.offsets, cand.anchor, side="right") - 1
        nlev = len(self.offsets)
        thr = np.float32(p.score_threshold)
        if p.selection == "per-level-pairs":
            # per level, (anchor, class) pairs sorted by score: equal scores stay in (anchor, class)
            # order, and anchor indices grow with the level, so anchor * nfg + k is the candidate order
            k, row = nonzero_2d(fg > thr)
            score, tie = fg[k, row], cand.anchor[row] * nfg + k
            if p.pre_nms_top_k is not None:  # only levels with more pairs than nms_pre need ranking
                group = cand.image[row] * nlev + level[row]
                over = np.flatnonzero(np.bincount(group)[group] > p.pre_nms_top_k)
                if len(over):
                    ranked = over[sort_order(group[over], score[over], tie[over])]
                    cut = np.ones(len(row), dtype=bool)
                    cut[ranked] = False
                    cut[ranked[first_per_run(runs(group[ranked]), p.pre_nms_top_k)]] = True
                    k, row, score, tie = k[cut], row[cut], score[cut], tie[cut]
            return k, row, score, tie
        best = fg.max(axis=0) if nfg else np.zeros(fg.shape[1], np.float32)
        keep = np.flatnonzero(best > thr)  # only these can give a pair above the threshold
        if p.pre_nms_top_k is not None:
            # levels with more anchors than nms_pre are reordered by best score (topk), others kept
            ranked = self.level_counts[level[keep]] > p.pre_nms_top_k
            key = np.where(ranked, best[keep], np.float32(0))
            keep = keep[sort_order(cand.image[keep] * nlev + level[keep], key, cand.anchor[keep])]
            keep = keep[first_per_run(runs(cand.image[keep], level[keep]), p.pre_nms_top_k)]
        k, r = nonzero_2d(fg[:, keep] > thr)
        row = keep[r]
        return k, row, fg[k, row], r * nfg + k  # candidates: kept anchors in order, then classes


def _coco_rows(images: Sequence[ImageLike], image: np.ndarray, boxes: np.ndarray, score: np.ndarray,
               category: np.ndarray) -> np.ndarray:
    """[image_id, x1, y1, x2 - x1, y2 - y1, score, category_id] in float64 (mmdet xyxy2xywh on bbox.tolist())."""
    rows = np.empty((len(score), 7), dtype=np.float64)
    b = boxes.astype(np.float64)
    rows[:, 0] = np.array([im.id for im in images], dtype=np.int64)[image] if len(images) else 0
    rows[:, 1:3] = b[:, :2]
    rows[:, 3:5] = b[:, 2:] - b[:, :2]
    rows[:, 5] = score
    rows[:, 6] = category
    return rows
