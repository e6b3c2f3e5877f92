"""Synthetic mmdet SSD outputs (bbox_deltas, cls_logits) from known boxes, for tests and benchmarks
(postprocess.synthetic); labels are foreground indices 0..C-2 (background last)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from postprocess.heads.mmdet_ssd.anchors import ssd_anchors
from postprocess.heads.mmdet_ssd.coder import encode_deltas
from postprocess.synthetic import best_anchors, realistic

if TYPE_CHECKING:
    from postprocess.heads.mmdet_ssd import MmdetSsdHead


def _head(head: "MmdetSsdHead | None") -> "MmdetSsdHead":
    from postprocess.heads.mmdet_ssd import SSD300_MMDET

    return head or SSD300_MMDET


def mmdet_realistic_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], rng: np.random.Generator,
                            head: "MmdetSsdHead | None" = None, dtype: str = "float32"
                            ) -> tuple[np.ndarray, np.ndarray]:
    """The same detector-like outputs for the mmdet SSD head: bbox_deltas (B, 4, A), cls_logits (B, C, A);
    labels are foreground indices 0..C-2."""
    head = _head(head)
    size = head.anchors.input_size
    anchors = ssd_anchors(head.anchors).astype(np.float64)
    deltas, logits = realistic(boxes, labels, rng, anchors / size,
                               lambda bx, idx: encode_deltas(bx * size, anchors[idx], head.coder),
                               head.num_classes, head.background_index)
    return deltas.astype(dtype), logits.astype(dtype)


def mmdet_exact_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                        head: "MmdetSsdHead | None" = None, confidence: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Per image: boxes (k, 4) normalised ltrb, labels (k,) foreground 0..C-2 -> float32
    bbox_deltas (B, 4, A), cls_logits (B, C, A) of the mmdet SSD head (location-major anchors)."""
    head = _head(head)
    anchors = ssd_anchors(head.anchors).astype(np.float64)
    size = head.anchors.input_size
    count, n = len(boxes), len(anchors)
    deltas = np.zeros((count, n, 4), np.float32)
    logits = np.zeros((count, n, head.num_classes), np.float32)
    logits[:, :, head.background_index] = confidence
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        px = np.asarray(bx, np.float64).reshape(-1, 4) * size
        for k, a in best_anchors(px, anchors):
            deltas[b, a] = encode_deltas(px[k], anchors[a], head.coder)
            logits[b, a, head.background_index] = 0.0
            logits[b, a, int(lb[k])] = confidence
    return np.ascontiguousarray(deltas.transpose(0, 2, 1)), np.ascontiguousarray(logits.transpose(0, 2, 1))


def outputs_from_boxes(head: "MmdetSsdHead", boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                       images: Sequence | None = None) -> tuple[np.ndarray, ...]:
    """mmdet_exact_outputs for the registry (postprocess.heads.HeadKind)."""
    return mmdet_exact_outputs(boxes, labels, head)
