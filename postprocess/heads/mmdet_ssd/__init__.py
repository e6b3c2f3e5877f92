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

    anchors    SsdAnchorSpec, ssd_anchors           coder      DeltaXYWHCoder, decode/encode_deltas
    decoder    MmdetSsdDecoder                      synthetic  outputs from known boxes (tests, benchmarks)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from postprocess.errors import PostprocessError
from postprocess.heads.mmdet_ssd.anchors import SsdAnchorSpec
from postprocess.heads.mmdet_ssd.coder import DeltaXYWHCoder
from postprocess.heads.mmdet_ssd.decoder import MmdetSsdDecoder
from postprocess.heads.mmdet_ssd.synthetic import outputs_from_boxes
from postprocess.heads.spec import DetectionHead, HeadKind, NmsPolicy
from stageio.tensor import TensorSpec

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
MMDET2_NMS_PRE = replace(
    MMDET2, name="mmdet2-nms-pre", summary="mmdet 2.10 with nms_pre 1000: per level the 1000 anchors with the best "
                                           "foreground score, then as mmdet2", pre_nms_top_k=1000)


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
    outputs=(TensorSpec("bbox_deltas", (4, 8732), meaning="DeltaXYWH deltas x anchor (anchors location-major)"),
             TensorSpec("cls_logits", (81, 8732), meaning="class logits x anchor, background last")),
    num_classes=81, background_index=80, policies=(MMDET3, MMDET2, MMDET2_NMS_PRE), evaluated_images="all")

KIND = HeadKind(MmdetSsdHead, MmdetSsdDecoder, outputs_from_boxes)
