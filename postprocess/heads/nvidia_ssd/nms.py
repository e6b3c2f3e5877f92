"""The NVIDIA SSD head's NMS policies: the MLPerf reference and the Ascend ssd_postprocess.py variant,
vectorised over images and classes with the shared greedy machinery (postprocess.nms).

Ties in score are broken by anchor index (then label), so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from postprocess.nms import Coords, first_per_run, greedy_keep_top, greedy_nms, nonzero_2d, runs, sort_order

Variant = Literal["reference", "ascend"]
VARIANTS: tuple[str, ...] = ("reference", "ascend")


@dataclass(frozen=True)
class NmsParams:
    """Reference values at the evaluation call site (MLPerf/NVIDIA SSD eval.py / train.py coco_eval)."""

    score_threshold: float = 0.05  # strict: score > threshold
    iou_threshold: float = 0.5  # reference suppresses IoU >= it; ascend suppresses IoU > it
    max_per_class: int = 200  # reference: top-k per class before NMS; ascend: top-k boxes per image
    max_output: int = 200  # per image, after NMS over all classes


@dataclass(frozen=True)
class Detections:
    """Flat detections of a batch, ordered by image, then score descending.

    image: batch index · label: class index (background excluded) · score: float32 ·
    box: (n, 4) float32 (l, t, r, b), normalised · anchor: the default box it came from.
    """

    image: np.ndarray
    label: np.ndarray
    score: np.ndarray
    box: np.ndarray
    anchor: np.ndarray

    def __len__(self) -> int:
        return len(self.score)


def nms(image: np.ndarray, anchor: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
        params: NmsParams = NmsParams(), variant: Variant = "reference", background: int = 0) -> Detections:
    """Detections from candidate anchors.

    image, anchor (n,): batch and anchor index of each candidate · boxes (n, 4) decoded ltrb ·
    scores (n, num_classes) softmax probabilities, background column included.
    """
    if variant == "reference":
        return reference_nms(image, anchor, boxes, scores, params, background)
    if variant == "ascend":
        return ascend_nms(image, anchor, boxes, scores, params, background)
    raise ValueError(f"unknown NMS variant {variant!r}; choose from {', '.join(VARIANTS)}")


def reference_nms(image, anchor, boxes, scores, params: NmsParams = NmsParams(), background: int = 0) -> Detections:
    """Per class: score > threshold, top max_per_class, suppress IoU >= thr (NaN too); then top max_output."""
    image, anchor, boxes, scores = _as_arrays(image, anchor, boxes, scores)
    by_class = scores.T  # (classes, n): contiguous when scores come from postprocess.candidates.candidate_scores
    passed = by_class > np.float32(params.score_threshold)
    passed[background] = False
    label, row = nonzero_2d(passed)
    score = by_class[label, row]
    order = sort_order(image[row] * scores.shape[1] + label, score, anchor[row])
    row, label, score = row[order], label[order], score[order]
    top = first_per_run(runs(image[row], label), params.max_per_class)
    row, label, score = row[top], label[top], score[top]
    keep = greedy_nms(runs(image[row], label), Coords(boxes[row]), params.iou_threshold, strict=False)
    return _top_per_image(image[row[keep]], label[keep], score[keep], boxes[row[keep]], anchor[row[keep]],
                          params.max_output)


def ascend_nms(image, anchor, boxes, scores, params: NmsParams = NmsParams(), background: int = 0) -> Detections:
    """Ascend `ssd_postprocess.py`: boxes whose best class score > threshold, top max_per_class of
    them per image, every foreground class of each (low scores included), per-class NMS suppressing
    IoU > thr, then top max_output.

    Only as many nodes take part in NMS as the max_output best kept ones need (greedy_keep_top).
    """
    image, anchor, boxes, scores = _as_arrays(image, anchor, boxes, scores)
    labels = _foreground(scores.shape[1], background)
    fg = np.ascontiguousarray(scores.T[labels].T)  # (n, foreground classes)
    best = fg.max(axis=1) if len(labels) else np.zeros(len(fg), np.float32)
    row = np.flatnonzero(best > np.float32(params.score_threshold))
    row = row[sort_order(image[row], best[row], anchor[row])]
    row = row[first_per_run(runs(image[row]), params.max_per_class)]

    # nodes = (box, class) pairs, ranked per image by score (then class, anchor)
    nl = len(labels)
    node_row, node_k = np.repeat(row, nl), np.tile(np.arange(nl), len(row))
    node_score = fg[node_row, node_k]
    tie = node_k * (int(anchor.max(initial=0)) + 1) + anchor[node_row]
    keep = greedy_keep_top(image[node_row], node_k, node_score, tie, boxes[node_row], params.iou_threshold,
                           strict=True, max_output=params.max_output)
    r = node_row[keep]
    return _top_per_image(image[r], labels[node_k[keep]], node_score[keep], boxes[r], anchor[r],
                          params.max_output)


def _as_arrays(image, anchor, boxes, scores):
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (candidates, classes), got shape {scores.shape}")
    return (np.asarray(image, dtype=np.int64).reshape(-1), np.asarray(anchor, dtype=np.int64).reshape(-1),
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4), scores)


def _foreground(num_classes: int, background: int) -> np.ndarray:
    labels = np.arange(num_classes)
    return labels[labels != background]


def _top_per_image(image, label, score, box, anchor, max_output: int) -> Detections:
    order = sort_order(image, score, label * (int(anchor.max(initial=0)) + 1) + anchor)
    image, label, score, box, anchor = image[order], label[order], score[order], box[order], anchor[order]
    top = first_per_run(runs(image), max_output)
    return Detections(image=image[top], label=label[top], score=score[top], box=box[top].reshape(-1, 4),
                      anchor=anchor[top])
