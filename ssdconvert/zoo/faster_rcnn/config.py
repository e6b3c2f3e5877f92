"""Test-time configuration of maskrcnn-benchmark `e2e_faster_rcnn_R_101_FPN_1x` (plain data, no torch).

Every value is the one the reference uses at test time, read in facebookresearch/maskrcnn-benchmark
(HEAD 57eec25b): `configs/e2e_faster_rcnn_R_101_FPN_1x.yaml` over `config/defaults.py`
(ANCHOR_SIZES, ASPECT_RATIOS, ANCHOR_STRIDE, PRE/POST/FPN_POST_NMS_TOP_N_TEST = 1000,
RPN.NMS_THRESH 0.7, RPN.MIN_SIZE 0, POOLER_*, BBOX_REG_WEIGHTS, SCORE_THRESH 0.05, NMS 0.5,
DETECTIONS_PER_IMG 100), `modeling/box_coder.py` (bbox_xform_clip = log(1000/16); the RPN coder
has weights (1, 1, 1, 1)) and `modeling/poolers.py` (LevelMapper k_min 2, k_max 5, canonical
scale 224, level 4, eps 1e-6).

`nms_compare` chooses the NMS suppression test. maskrcnn-benchmark has two kernels:
`csrc/cpu/nms_cpu.cpp` suppresses at IoU >= threshold, `csrc/cuda/nms.cu` (`devIoU(...) > thr`)
at IoU > threshold. The published box AP 39.1 (MODEL_ZOO.md, V100) was measured with the CUDA
kernel, so ">" is the default; ">=" reproduces a CPU run of the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

NmsCompare = Literal[">", ">="]
NMS_COMPARES: tuple[str, ...] = (">", ">=")

# The architecture of R-101-FPN (maskrcnn-benchmark `modeling/backbone/resnet.py` StageSpec R-101-FPN,
# `fpn.py`, `roi_box_feature_extractors.py`): ResNet stages as (bottleneck width, output channels,
# blocks), the stem's channels, the FPN's and the box head MLP's width.
STAGES = ((64, 256, 3), (128, 512, 4), (256, 1024, 23), (512, 2048, 3))
STEM_CHANNELS = 64
FPN_CHANNELS = 256
MLP_HEAD_DIM = 1024


@dataclass(frozen=True)
class RcnnConfig:
    """The reference's test configuration; change a value only to study its effect."""

    num_classes: int = 81  # background is index 0
    # RPN (MODEL.RPN.*) and its anchors
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    anchor_strides: tuple[int, ...] = (4, 8, 16, 32, 64)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    pre_nms_top_n: int = 1000  # per level, per image
    post_nms_top_n: int = 1000  # per level after NMS
    fpn_post_nms_top_n: int = 1000  # per image, over all levels (TEST: per image, not per batch)
    rpn_nms_thresh: float = 0.7
    rpn_min_size: float = 0.0
    rpn_box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    # ROI box head (MODEL.ROI_BOX_HEAD.*, MODEL.ROI_HEADS.*)
    pooler_resolution: int = 7
    pooler_scales: tuple[float, ...] = (0.25, 0.125, 0.0625, 0.03125)
    pooler_sampling_ratio: int = 2
    canonical_scale: int = 224
    canonical_level: int = 4
    level_eps: float = 1e-6
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    bbox_xform_clip: float = math.log(1000.0 / 16)
    score_thresh: float = 0.05  # strict: score > thresh
    nms_thresh: float = 0.5
    detections_per_img: int = 100
    nms_compare: NmsCompare = ">"

    def __post_init__(self) -> None:
        if self.nms_compare not in NMS_COMPARES:
            raise ValueError(f"nms_compare must be one of {NMS_COMPARES}, got {self.nms_compare!r}")

    @property
    def num_anchors(self) -> int:
        """Anchors per location (one size per FPN level, one per aspect ratio)."""
        return len(self.aspect_ratios)

    @property
    def k_min(self) -> int:
        return round(-math.log2(self.pooler_scales[0]))

    @property
    def k_max(self) -> int:
        return round(-math.log2(self.pooler_scales[-1]))


REFERENCE = RcnnConfig()
