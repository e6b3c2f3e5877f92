"""The mmdetection SSD300 head (SSD300-VGG16) and its decoder, reproducing mmdet's post-processing.

Verified in the source (open-mmlab/mmdetection 3.x unless noted):
- anchors: `SSDAnchorGenerator` (mmdet/models/task_modules/prior_generators/anchor_generator.py;
  2.x mmdet/core/anchor/anchor_generator.py): base sizes from basesize_ratio_range (0.15, 0.9)
  with (21, 45) prepended for 300/COCO; per level scales [1, sqrt(max/min)] and ratios
  [1, 1/r, r, ...] as float32 tensors; ws = (base * scales[:, None] * w_ratios[None, :]) with
  h_ratios = sqrt(ratios), w_ratios = 1 / h_ratios (scale_major False); corners centre -/+ 0.5 * ws
  about (stride/2, stride/2); re-indexed [0, n, 1, 2, ...]; grid shifts x * stride added, rows
  outer: location-major, anchor-minor, pixels of the 300x300 input, not clamped. All float32 with
  correctly rounded ops, so numpy reproduces the torch values bit for bit.
- box coder: `delta2bbox` (mmdet/models/task_modules/coders/delta_xywh_bbox_coder.py): d = delta *
  stds + means; pxy = (p1 + p2) * 0.5, pwh = p2 - p1; dwh clamped to +-|log(16/1000)| (as float32);
  gxy = pxy + pwh * dxy; gwh = pwh * exp(dwh); corners gxy -/+ gwh * 0.5; clamp x to [0, W_in], y to
  [0, H_in] (the 300x300 input). 2.x `onnx_delta2bbox` does the same arithmetic per element.
- mmdet 3.x `BaseDenseHead._predict_by_feat_single` + `filter_scores_and_topk`: per level, softmax
  over 81 then drop the last (background) column; (anchor, class) pairs with score > score_thr,
  sorted by score, the first nms_pre; levels concatenated; decode; `_bbox_post_process`: boxes *
  float32(1 / scale_factor) with scale_factor = 300 / decoded width (height) (mmcv.imresize); drop
  w <= 0 or h <= 0 (min_bbox_size 0); `batched_nms`; keep the first max_per_img.
- mmdet 2.10 `AnchorHead._get_bboxes`: per level with more anchors than nms_pre, the nms_pre
  anchors with the best foreground score (topk); decode; boxes / float32(scale_factor);
  `multiclass_nms`: every (anchor, class) with score > score_thr, `batched_nms`, first max_num.
- mmcv `batched_nms` (mmcv/ops/nms.py, 1.x and 2.x): boxes are shifted by label * (max coordinate
  + 1) in float32 and one NMS runs on the shifted boxes (per class when >= split_thr boxes, same
  result); the IoU is computed on the *shifted* float32 coordinates, so it is done that way here.
- mmcv CPU `nms_cpu` (mmcv/ops/csrc/pytorch/cpu/nms.cpp and the older pytorch/nms.cpp): areas
  (x2 - x1) * (y2 - y1), inter = max(0, min - max) products, ovr = inter / (area_i + area_j -
  inter), suppress when ovr > iou_threshold (a C++ float), no +1 (offset 0).

Ties in score are broken by candidate order (what a stable sort gives); torch's sort does not
promise an order for ties. Softmax and exp come from numpy and may differ from torch's in the
last bit of some scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from math import log, sqrt
from typing import Mapping, Sequence

import numpy as np

from postprocess.errors import PostprocessError
from postprocess.heads.spec import DetectionHead, NmsPolicy, OutputTensor
from postprocess.images import ImageLike, decoded_size

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)

MMDET3 = NmsPolicy(
    name="mmdet3", summary="mmdet >= 2.18 / 3.x: per level the 1000 best (anchor, class) pairs with score > 0.02, "
                           "clip, rescale, drop empty boxes, class-wise NMS suppressing IoU > 0.45, 200 per image",
    score_threshold=0.02, iou_threshold=0.45, suppress_at_equal=False, selection="per-level-pairs",
    pre_nms_top_k=1000, max_per_image=200, drop_empty_boxes=True)
MMDET2 = NmsPolicy(
    name="mmdet2", summary="mmdet 2.10 (Ascend ModelZoo SSD port) without nms_pre: every (anchor, class) with score > "
                           "0.02, class-wise NMS suppressing IoU > 0.45, 200 per image",
    score_threshold=0.02, iou_threshold=0.45, suppress_at_equal=False, selection="per-level-anchors",
    pre_nms_top_k=None, max_per_image=200)
MMDET2_NMS_PRE = NmsPolicy(
    name="mmdet2-nms-pre", summary="mmdet 2.10 with nms_pre 1000: per level the 1000 anchors with the best "
                                   "foreground score, then as mmdet2",
    score_threshold=0.02, iou_threshold=0.45, suppress_at_equal=False, selection="per-level-anchors",
    pre_nms_top_k=1000, max_per_image=200)


@dataclass(frozen=True)
class SsdAnchorSpec:
    """mmdet SSDAnchorGenerator settings (configs/_base_/models/ssd300.py)."""

    input_size: int = 300
    feat_size: tuple[int, ...] = (38, 19, 10, 5, 3, 1)
    strides: tuple[int, ...] = (8, 16, 32, 64, 100, 300)
    ratios: tuple[tuple[int, ...], ...] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    basesize_ratio_range: tuple[float, float] = (0.15, 0.9)

    @property
    def base_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(min_sizes, max_sizes) exactly as SSDAnchorGenerator computes them for input 300, ratio 0.15."""
        lo, hi = int(self.basesize_ratio_range[0] * 100), int(self.basesize_ratio_range[1] * 100)
        step = int(np.floor(hi - lo) / (len(self.strides) - 2))
        mins = [int(self.input_size * r / 100) for r in range(lo, hi + 1, step)]
        maxs = [int(self.input_size * (r + step) / 100) for r in range(lo, hi + 1, step)]
        if self.input_size != 300 or self.basesize_ratio_range[0] != 0.15:
            raise ValueError("only the SSD300 COCO anchor sizes (input 300, ratio range from 0.15) are implemented")
        return (int(self.input_size * 7 / 100), *mins), (int(self.input_size * 15 / 100), *maxs)

    @property
    def boxes_per_location(self) -> tuple[int, ...]:
        return tuple(2 + 2 * len(r) for r in self.ratios)

    @property
    def level_counts(self) -> tuple[int, ...]:
        return tuple(f * f * n for f, n in zip(self.feat_size, self.boxes_per_location))

    @property
    def level_offsets(self) -> tuple[int, ...]:
        return tuple(int(x) for x in np.cumsum((0, *self.level_counts[:-1])))

    @property
    def num_anchors(self) -> int:
        return sum(self.level_counts)


@dataclass(frozen=True)
class DeltaXYWHCoder:
    means: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    stds: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    wh_ratio_clip: float = 16 / 1000
    clip_border: bool = True


@dataclass(frozen=True)
class MmdetSsdHead(DetectionHead):
    anchors: SsdAnchorSpec = field(default_factory=SsdAnchorSpec)
    coder: DeltaXYWHCoder = field(default_factory=DeltaXYWHCoder)
    class_names: tuple[str, ...] = COCO_CLASSES

    kind = "ssd-mmdet"

    @property
    def num_anchors(self) -> int:
        return self.anchors.num_anchors

    def describe(self) -> dict:
        a, c = self.anchors, self.coder
        mins, maxs = a.base_sizes
        return {**super().describe(),
                "anchors": {"count": a.num_anchors, "units": "pixels of the input, not clamped",
                            "order": "per level: location-major (row, column), anchor-minor",
                            "input_size": a.input_size, "feat_size": list(a.feat_size), "strides": list(a.strides),
                            "ratios": [list(r) for r in a.ratios], "min_sizes": list(mins), "max_sizes": list(maxs)},
                "box_coder": {"type": "DeltaXYWH", "means": list(c.means), "stds": list(c.stds),
                              "wh_ratio_clip": c.wh_ratio_clip, "clip": "to the input before rescaling"},
                "scores": f"softmax over all classes, background index {self.background_index} (last)",
                "categories": "label k (0..79) -> k-th category of the annotation file among those named like "
                              "mmdet's CocoDataset classes"}

    def summary(self) -> list[str]:
        a = self.anchors
        mins, maxs = a.base_sizes
        return [f"anchors {a.num_anchors} mmdet SSD anchors (pixels, location-major): feature maps "
                f"{list(a.feat_size)}, strides {list(a.strides)}, min sizes {list(mins)}, max sizes {list(maxs)}; "
                f"DeltaXYWH stds {list(self.coder.stds)}, clipped to the input",
                *super().summary()]

    def category_ids(self, categories: Sequence[Mapping]) -> np.ndarray:
        """inv_map: label k -> id of the k-th file category whose name is a class (COCO API getCatIds)."""
        names = set(self.class_names)
        ids = [int(c["id"]) for c in categories if c.get("name") in names]
        if len(ids) != len(self.class_names):
            raise PostprocessError(f"the annotation file has {len(ids)} categories named like the model's "
                                   f"{len(self.class_names)} classes (mmdet maps labels by class name)")
        inv_map = np.zeros(self.num_classes, dtype=np.int64)
        inv_map[np.arange(self.num_classes) != self.background_index] = ids
        return inv_map


SSD300_MMDET = MmdetSsdHead(
    outputs=(OutputTensor("bbox_deltas", (4, 8732), "DeltaXYWH deltas x anchor (anchors location-major)"),
             OutputTensor("cls_logits", (81, 8732), "class logits x anchor, background last")),
    num_classes=81, background_index=80, policies=(MMDET3, MMDET2, MMDET2_NMS_PRE), evaluated_images="all")


@lru_cache(maxsize=4)
def _anchors(spec: SsdAnchorSpec) -> np.ndarray:
    mins, maxs = spec.base_sizes
    levels = []
    for level, (fsize, stride, ratios) in enumerate(zip(spec.feat_size, spec.strides, spec.ratios)):
        base = np.float32(mins[level])
        scales = np.array([1.0, sqrt(maxs[level] / mins[level])], dtype=np.float32)
        ratio = np.array([1.0, *[v for r in ratios for v in (1 / r, r)]], dtype=np.float32)
        h_ratios = np.sqrt(ratio)
        w_ratios = np.float32(1) / h_ratios
        ws = ((base * scales[:, None]) * w_ratios[None, :]).reshape(-1)
        hs = ((base * scales[:, None]) * h_ratios[None, :]).reshape(-1)
        centre = np.float32(stride / 2)
        half_w, half_h = np.float32(0.5) * ws, np.float32(0.5) * hs
        base_anchors = np.stack([centre - half_w, centre - half_h, centre + half_w, centre + half_h], axis=-1)
        order = list(range(len(ratio)))
        order.insert(1, len(order))  # small square, big square, then the other ratios of scale 1
        base_anchors = base_anchors[order]
        shift = np.arange(fsize, dtype=np.float32) * np.float32(stride)
        sx, sy = np.tile(shift, fsize), np.repeat(shift, fsize)  # rows outer, columns inner
        shifts = np.stack([sx, sy, sx, sy], axis=-1)
        levels.append((base_anchors[None, :, :] + shifts[:, None, :]).reshape(-1, 4))
    anchors = np.concatenate(levels).astype(np.float32)
    anchors.flags.writeable = False
    return anchors


def ssd_anchors(spec: SsdAnchorSpec = SsdAnchorSpec()) -> np.ndarray:
    """(num_anchors, 4) float32 (x1, y1, x2, y2) pixels, in head-output order (cached, read-only)."""
    return _anchors(spec)


def encode_deltas(boxes: np.ndarray, anchors: np.ndarray, coder: DeltaXYWHCoder) -> np.ndarray:
    """Inverse of decode_deltas without clipping (float64): pixel boxes + anchors -> deltas."""
    g, a = np.asarray(boxes, np.float64), np.asarray(anchors, np.float64)
    pxy, pwh = (a[..., :2] + a[..., 2:]) / 2, a[..., 2:] - a[..., :2]
    gxy, gwh = (g[..., :2] + g[..., 2:]) / 2, g[..., 2:] - g[..., :2]
    d = np.concatenate([(gxy - pxy) / pwh, np.log(gwh / pwh)], axis=-1)
    return (d - np.asarray(coder.means)) / np.asarray(coder.stds)


def decode_deltas(deltas: np.ndarray, anchors: np.ndarray, coder: DeltaXYWHCoder,
                  max_shape: tuple[int, int] | None) -> np.ndarray:
    """DeltaXYWH decode (float32, mmdet's op order); clamp to max_shape (h, w) when clip_border."""
    d = np.asarray(deltas, dtype=np.float32) * np.asarray(coder.stds, np.float32) + np.asarray(coder.means, np.float32)
    a = np.asarray(anchors, dtype=np.float32)
    pxy = (a[..., :2] + a[..., 2:]) * np.float32(0.5)
    pwh = a[..., 2:] - a[..., :2]
    limit = np.float32(abs(log(coder.wh_ratio_clip)))
    gxy = pxy + pwh * d[..., :2]
    gwh = pwh * np.exp(np.clip(d[..., 2:], -limit, limit))
    half = gwh * np.float32(0.5)
    boxes = np.concatenate([gxy - half, gxy + half], axis=-1)
    if coder.clip_border and max_shape is not None:
        h, w = max_shape
        np.clip(boxes[..., 0::2], 0, np.float32(w), out=boxes[..., 0::2])
        np.clip(boxes[..., 1::2], 0, np.float32(h), out=boxes[..., 1::2])
    return boxes


class MmdetSsdDecoder:
    """Raw (bbox_deltas, cls_logits) of a batch -> COCO rows with mmdet's post-processing."""

    float32_rows = False  # mmdet writes json from Python floats: w = x2 - x1 in double

    def __init__(self, head: MmdetSsdHead, policy: NmsPolicy):
        if policy.selection not in ("per-level-pairs", "per-level-anchors"):
            raise ValueError(f"NMS policy {policy.name}: selection {policy.selection} is not an mmdet one")
        self.head, self.policy = head, policy
        self.anchors = ssd_anchors(head.anchors)
        self.offsets = np.asarray(head.anchors.level_offsets)
        self.level_counts = np.asarray(head.anchors.level_counts)

    def select(self, arrays: Sequence[np.ndarray]):
        """bbox_deltas (B, 4, A), cls_logits (B, C, A) -> the anchors whose best foreground score may pass
        the threshold, softmaxed (postprocess.detect.select, shared with the NVIDIA head)."""
        from postprocess.detect import select
        from postprocess.nms import NmsParams

        deltas, logits = arrays
        return select(deltas, logits, NmsParams(score_threshold=self.policy.score_threshold),
                      self.head.background_index)

    def rows(self, selected, images: Sequence[ImageLike], inv_map: np.ndarray) -> np.ndarray:
        from postprocess.nms import _nonzero_2d, _runs, _sort_order, greedy_keep_top

        p, head = self.policy, self.head
        cand = selected.candidates
        bg = head.background_index
        fg_labels = np.array([c for c in range(head.num_classes) if c != bg])
        by_class = cand.scores.T  # (C, n) contiguous: the layout candidate_scores computes in
        fg = by_class[:bg] if bg == head.num_classes - 1 else by_class[fg_labels]
        nfg = len(fg_labels)
        level = np.searchsorted(self.offsets, cand.anchor, side="right") - 1
        nlev = len(self.offsets)
        thr = np.float32(p.score_threshold)
        # `tie` orders equal scores as mmdet's candidate list does (a stable sort keeps that order)
        if p.selection == "per-level-pairs":
            # per level, (anchor, class) pairs sorted by score: equal scores stay in (anchor, class)
            # order, and anchor indices grow with the level, so anchor * nfg + k is the candidate order
            k, row = _nonzero_2d(fg > thr)
            score, tie = fg[k, row], cand.anchor[row] * nfg + k
            if p.pre_nms_top_k is not None:  # only levels with more pairs than nms_pre need ranking
                group = cand.image[row] * nlev + level[row]
                over = np.flatnonzero(np.bincount(group)[group] > p.pre_nms_top_k)
                if len(over):
                    ranked = over[_sort_order(group[over], score[over], tie[over])]
                    cut = np.ones(len(row), dtype=bool)
                    cut[ranked] = False
                    cut[ranked[_first_per_run(_runs(group[ranked]), p.pre_nms_top_k)]] = True
                    k, row, score, tie = k[cut], row[cut], score[cut], tie[cut]
        else:
            best = fg.max(axis=0) if nfg else np.zeros(fg.shape[1], np.float32)
            keep = np.flatnonzero(best > thr)  # only these can give a pair above the threshold
            if p.pre_nms_top_k is not None:
                # levels with more anchors than nms_pre are reordered by best score (topk), others kept
                ranked = self.level_counts[level[keep]] > p.pre_nms_top_k
                key = np.where(ranked, best[keep], np.float32(0))
                keep = keep[_sort_order(cand.image[keep] * nlev + level[keep], key, cand.anchor[keep])]
                keep = keep[_first_per_run(_runs(cand.image[keep], level[keep]), p.pre_nms_top_k)]
            k, r = _nonzero_2d(fg[:, keep] > thr)
            row = keep[r]
            score, tie = fg[k, row], r * nfg + k  # candidates: kept anchors in order, then classes
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
        kept = kept[_sort_order(image[kept], score[kept], tie[kept])]
        kept = kept[_first_per_run(_runs(image[kept]), p.max_per_image)]
        return _coco_rows(images, image[kept], boxes[kept], score[kept], inv_map[fg_labels[k[kept]]])


def _first_per_run(runs: tuple[np.ndarray, np.ndarray], limit: int | None) -> np.ndarray:
    """Indices of the first `limit` elements of each run (all when limit is None)."""
    starts, sizes = runs
    n = int(sizes.sum())
    if limit is None:
        return np.arange(n)
    return np.flatnonzero(np.arange(n) - np.repeat(starts, sizes) < limit)


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
