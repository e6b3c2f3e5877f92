"""Multiply-accumulates of Faster R-CNN R-101-FPN per image for a canvas, counted from the architecture.

Plain Python (no torch), so the zoo can state the compute of any canvas. Conv and linear MACs only:
output elements x input channels x kernel area;
the box head with 1000 RoIs per image. For a canvas whose sides are multiples of 32 every feature
map is canvas / stride, except P6 = ceil(P5 / 2). tests/families/faster_rcnn/test_flops.py checks
the count against forward hooks on the real modules.
"""

from __future__ import annotations

import math

from ssdconvert.zoo.faster_rcnn.config import FPN_CHANNELS, MLP_HEAD_DIM, REFERENCE, STAGES, STEM_CHANNELS, RcnnConfig

ROIS_PER_IMAGE = 1000  # FPN_POST_NMS_TOP_N_TEST


def _conv(out_h: int, out_w: int, c_in: int, c_out: int, kernel: int) -> int:
    return out_h * out_w * c_out * c_in * kernel * kernel


def macs(canvas: tuple[int, int], config: RcnnConfig = REFERENCE, rois: int = ROIS_PER_IMAGE) -> dict[str, int]:
    """MACs per part (backbone, fpn, rpn_head, box_head) and in total, for one image on `canvas` (h, w)."""
    height, width = canvas
    parts = {"backbone": _conv(height // 2, width // 2, 3, STEM_CHANNELS, 7), "fpn": 0, "rpn_head": 0}
    c_in, stride = STEM_CHANNELS, 4
    for index, (mid, out, blocks) in enumerate(STAGES):
        stride = 4 * 2 ** index
        h, w = height // stride, width // stride
        for block in range(blocks):
            block_in = c_in if block == 0 else out
            parts["backbone"] += (_conv(h, w, block_in, mid, 1) + _conv(h, w, mid, mid, 3) + _conv(h, w, mid, out, 1)
                                  + (_conv(h, w, block_in, out, 1) if block == 0 else 0))
        c_in = out
        parts["fpn"] += _conv(h, w, out, FPN_CHANNELS, 1) + _conv(h, w, FPN_CHANNELS, FPN_CHANNELS, 3)
    levels = [(height // s, width // s) for s in (4, 8, 16, 32)]
    levels.append((math.ceil(levels[-1][0] / 2), math.ceil(levels[-1][1] / 2)))  # P6: every second pixel of P5
    anchors = config.num_anchors
    for h, w in levels:
        parts["rpn_head"] += (_conv(h, w, FPN_CHANNELS, FPN_CHANNELS, 3) + _conv(h, w, FPN_CHANNELS, anchors, 1)
                              + _conv(h, w, FPN_CHANNELS, 4 * anchors, 1))
    pooled = FPN_CHANNELS * config.pooler_resolution ** 2
    parts["box_head"] = rois * (pooled * MLP_HEAD_DIM + MLP_HEAD_DIM * MLP_HEAD_DIM
                                + MLP_HEAD_DIM * config.num_classes + MLP_HEAD_DIM * 4 * config.num_classes)
    parts["total"] = sum(parts.values())
    return parts


def flops_per_image(canvas: tuple[int, int]) -> float:
    """2 x MACs (the zoo's FLOPs convention) at `canvas`."""
    return 2.0 * macs(canvas)["total"]
