"""Detector heads: plain-data declarations owned by their families, and the one registry of head kinds.

    spec              NmsPolicy, DetectionHead (the common fields), Decoder, HeadKind
    nvidia_ssd/       SSD300 of MLPerf/NVIDIA (ssd-resnet34, ssd-resnet50): reference and Ascend NMS
    mmdet_ssd/        SSD300 of mmdetection (ssd-vgg16): mmdet 3.x and 2.10-era post-processing
    final_detections/ graphs that end in K final detections + a count (faster-rcnn-r101-fpn): only
                      the COCO mapping is left for eval

Each head folder holds its declaration and KIND (`__init__.py`), its decoder and its synthetic
outputs. KINDS is the registry: `decoder_for(head)` and `exact_outputs_for(head, ...)` dispatch
through it, and a new kind of head is a folder plus one line here.

A decoder turns a batch of raw outputs into COCO rows in two steps: `select(arrays)` does the
work that touches every logit (run on the reader thread while the data is in cache), and
`rows(selected, images, inv_map)` decodes the few candidates, runs NMS and maps boxes to the
original image with the per-image records (id, size; mmdet also the decoded size; final detections the
resized size). Each head owns its coordinate convention; `float32_rows` says whether its reference
hands COCO float32 rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from postprocess.heads import final_detections, mmdet_ssd, nvidia_ssd
from postprocess.heads.final_detections import MASKRCNN_BENCHMARK_RCNN, FinalDetectionsHead
from postprocess.heads.mmdet_ssd import SSD300_MMDET, MmdetSsdHead
from postprocess.heads.nvidia_ssd import SSD300_NVIDIA, NvidiaSsdHead
from postprocess.heads.spec import Decoder, DetectionHead, HeadKind, NmsPolicy

KINDS: tuple[HeadKind, ...] = (nvidia_ssd.KIND, mmdet_ssd.KIND, final_detections.KIND)


def kind_of(head: DetectionHead) -> HeadKind:
    """The registered kind of `head` (its class or the nearest registered base class)."""
    by_class = {kind.head: kind for kind in KINDS}
    for cls in type(head).__mro__:
        if cls in by_class:
            return by_class[cls]
    raise TypeError(f"no registered head kind for {type(head).__name__}")


def decoder_for(head: DetectionHead, policy: str | None = None) -> Decoder:
    """The decoder of `head` with the named NMS policy (default: the head's reference policy)."""
    try:
        chosen = head.policy(policy)
    except KeyError:
        raise ValueError(f"NMS policy {policy!r} is not one of this head's: {', '.join(head.policy_names)}") from None
    return kind_of(head).decoder(head, chosen)


def exact_outputs_for(head: DetectionHead, boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                      images: Sequence | None = None) -> tuple[np.ndarray, ...]:
    """Round-trip outputs of any registered head; labels are foreground indices 0..C-2 (class order).
    A final-detections head also needs the `images` (original and resized sizes)."""
    return kind_of(head).exact_outputs(head, boxes, labels, images)


__all__ = ["DetectionHead", "NmsPolicy", "HeadKind", "KINDS", "NvidiaSsdHead", "MmdetSsdHead",
           "FinalDetectionsHead", "SSD300_NVIDIA", "SSD300_MMDET", "MASKRCNN_BENCHMARK_RCNN", "Decoder", "kind_of",
           "decoder_for", "exact_outputs_for"]
