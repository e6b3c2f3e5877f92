"""The NVIDIA/MLPerf SSD300 head (SSD-ResNet34, SSD-ResNet50) and its decoder.

Sources: NV = mlcommons/training_results_v0.7 NVIDIA/benchmarks/ssd/implementations/pytorch/
(ssd300.py, box_coder.py, eval.py); REF = mlcommons/training single_stage_detector/ssd/utils.py at
b06269d9 (the v0.7-era SSD); Ascend/ModelZoo-PyTorch ACL_PyTorch/contrib/cv/detection/SSD-Resnet34/
ssd_postprocess.py.

Outputs ploc (4, 8732) and plabel (81, 8732), class-major channels, size-major anchors
(SSD300.bbox_view); normalised clamped default boxes (DefaultBoxes, dboxes300_coco); xywh coder
0.1/0.2, no clipping (Encoder.scale_back_batch); softmax over 81 with background 0. Two NMS
policies: the MLPerf/NVIDIA reference (REF decode_single, NV eval.py coco_eval) and the Ascend
ssd_postprocess.py variant. Category ids in json order (NV eval.py coco_eval); the reference
evaluates the images that have annotations (4952 of val2017). The work is done by
postprocess.detect (select/finish) and postprocess.nms, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from postprocess.heads.spec import DetectionHead, NmsPolicy, OutputTensor
from postprocess.images import ImageLike
from postprocess.priors import PriorSpec

REFERENCE = NmsPolicy(
    name="reference", summary="MLPerf/NVIDIA: per class score > 0.05, top 200 per class, suppress IoU >= 0.5, "
                              "200 per image",
    score_threshold=0.05, iou_threshold=0.5, suppress_at_equal=True, selection="per-class-top-k",
    pre_nms_top_k=200, max_per_image=200)
ASCEND = NmsPolicy(
    name="ascend", summary="Ascend ssd_postprocess.py: best-class score > 0.05, top 200 boxes, every class of "
                           "each, suppress IoU > 0.5, 200 per image",
    score_threshold=0.05, iou_threshold=0.5, suppress_at_equal=False, selection="best-class-top-k",
    pre_nms_top_k=200, max_per_image=200)


@dataclass(frozen=True)
class NvidiaSsdHead(DetectionHead):
    priors: PriorSpec = field(default_factory=PriorSpec)

    kind = "ssd-nvidia"

    @property
    def num_anchors(self) -> int:
        return self.priors.num_priors

    def describe(self) -> dict:
        p = self.priors
        return {**super().describe(),
                "anchors": {"count": p.num_priors, "units": "normalised, xywh clamped to [0, 1]",
                            "order": "per level: size-major, then row, then column", "fig_size": p.fig_size,
                            "feat_size": list(p.feat_size), "steps": list(p.steps), "scales": list(p.scales),
                            "aspect_ratios": [list(r) for r in p.aspect_ratios]},
                "box_coder": {"type": "xywh", "scale_xy": p.scale_xy, "scale_wh": p.scale_wh, "clip": None},
                "scores": "softmax over all classes, background index 0",
                "categories": "label k (1..80) -> k-th category of the annotation file"}

    def summary(self) -> list[str]:
        p = self.priors
        return [f"anchors {p.num_priors} default boxes: feature maps {list(p.feat_size)}, steps {list(p.steps)}, "
                f"scales {list(p.scales)}, scale_xy {p.scale_xy}, scale_wh {p.scale_wh}",
                *super().summary()]

    def category_ids(self, categories: Sequence[Mapping]) -> np.ndarray:
        from postprocess.coco import category_ids

        return category_ids(categories, self.num_classes, self.background_index)


SSD300_NVIDIA = NvidiaSsdHead(
    outputs=(OutputTensor("ploc", (4, 8732), "box regressions (tx, ty, tw, th) x anchor"),
             OutputTensor("plabel", (81, 8732), "class logits x anchor, background 0")),
    num_classes=81, background_index=0, policies=(REFERENCE, ASCEND), evaluated_images="annotated")


class NvidiaSsdDecoder:
    """Raw (ploc, plabel) of a batch -> COCO rows; `select` touches every logit, `rows` the few candidates."""

    float32_rows = True  # the reference passes a float32 array to loadRes

    def __init__(self, head: NvidiaSsdHead, policy: NmsPolicy):
        from postprocess.nms import NmsParams

        self.head, self.policy = head, policy
        self.params = NmsParams(score_threshold=policy.score_threshold, iou_threshold=policy.iou_threshold,
                                max_per_class=policy.pre_nms_top_k, max_output=policy.max_per_image)
        self.variant = {"per-class-top-k": "reference", "best-class-top-k": "ascend"}[policy.selection]
        if self.variant == "reference" and not policy.suppress_at_equal or \
                self.variant == "ascend" and policy.suppress_at_equal:
            raise ValueError(f"NMS policy {policy.name}: selection {policy.selection} implies the other comparison")

    def select(self, arrays: Sequence[np.ndarray]):
        from postprocess.detect import select

        ploc, plabel = arrays
        return select(ploc, plabel, self.params, self.head.background_index)

    def rows(self, selected, images: Sequence[ImageLike], inv_map: np.ndarray) -> np.ndarray:
        from postprocess.coco import result_rows
        from postprocess.detect import finish

        dets = finish(selected, self.head.priors, self.params, self.variant, self.head.background_index)
        return result_rows(dets, images, inv_map)
