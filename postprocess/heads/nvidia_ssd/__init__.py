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
evaluates the images that have annotations (4952 of val2017).

    priors     default boxes (dboxes300_coco)       coder      the xywh box coder
    nms        the reference and Ascend policies    detect     candidates -> boxes -> NMS -> COCO rows
    decoder    NvidiaSsdDecoder                     synthetic  outputs from known boxes (tests, benchmarks)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postprocess.heads.nvidia_ssd.decoder import NvidiaSsdDecoder
from postprocess.heads.nvidia_ssd.priors import PriorSpec
from postprocess.heads.nvidia_ssd.synthetic import outputs_from_boxes
from postprocess.heads.spec import DetectionHead, HeadKind, NmsPolicy
from stageio.tensor import TensorSpec

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


SSD300_NVIDIA = NvidiaSsdHead(
    outputs=(TensorSpec("ploc", (4, 8732), meaning="box regressions (tx, ty, tw, th) x anchor"),
             TensorSpec("plabel", (81, 8732), meaning="class logits x anchor, background 0")),
    num_classes=81, background_index=0, policies=(REFERENCE, ASCEND), evaluated_images="annotated")

KIND = HeadKind(NvidiaSsdHead, NvidiaSsdDecoder, outputs_from_boxes)
