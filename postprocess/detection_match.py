"""Compare two sets of final detections the way a reviewer would: box by box, not element by element.

Two runs of a detector (PyTorch reference vs an exported model) may list the same detections in a
different order or differ in the last bits of a box, so their raw output tensors cannot be compared
element-wise. Here, per image and class, each expected detection (best score first) is paired
with the unpaired actual detection of the same class that overlaps it most, if that IoU reaches
`iou_threshold`. The report counts what has no partner on either side and the largest score and
box-coordinate differences over the pairs.

A reference that keeps ties past a limit (maskrcnn-benchmark keeps every detection scoring at
least the 100th best score) may list more detections than a fixed-size output can hold; with
`limit`, unpaired expected detections tied with the limit-th best score are counted as
`ties_past_limit`, not as missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class ImageDetections:
    """Detections of one image: boxes (n, 4) x1 y1 x2 y2, scores (n,), labels (n,)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, boxes, scores, labels) -> "ImageDetections":
        return cls(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1),
                   np.asarray(labels, np.int64).reshape(-1))

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class MatchReport:
    """Outcome of match_detections over a batch of images."""

    images: int = 0
    expected: int = 0
    actual: int = 0
    matched: int = 0
    missing: int = 0  # expected detections without a partner
    extra: int = 0  # actual detections without a partner
    ties_past_limit: int = 0
    max_score_diff: float = 0.0
    max_box_diff: float = 0.0  # largest |coordinate difference| over the pairs, pixels
    min_iou: float = 1.0  # smallest IoU over the pairs
    worst_image: int | None = None  # the first image with a missing or extra detection

    def failure(self, score_atol: float, box_atol: float) -> str | None:
        """What fails first, in words, or None: unpaired detections, then score, then box differences."""
        where = "" if self.worst_image is None else f" (first in image {self.worst_image})"
        if self.missing:
            return f"{self.missing} of {self.expected} reference detections have no match{where}"
        if self.extra:
            return f"{self.extra} of {self.actual} detections have no reference counterpart{where}"
        if self.max_score_diff > score_atol:
            return f"a matched score differs by {self.max_score_diff:.3g} > {score_atol:.3g}"
        if self.max_box_diff > box_atol:
            return f"a matched box coordinate differs by {self.max_box_diff:.3g} px > {box_atol:.3g} px"
        return None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def box_iou(a: np.ndarray, b: np.ndarray, pixel_offset: float = 0.0) -> np.ndarray:
    """(n, m) IoU, widths x2 - x1 + pixel_offset (1 for legacy boxes, whose x2 may be < x1).

    Used for pairing only. Two boxes without area are a perfect match only if they are equal.
    """
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + pixel_offset,
                0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + pixel_offset,
                0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0] + pixel_offset) * (a[:, 3] - a[:, 1] + pixel_offset)
    area_b = (b[:, 2] - b[:, 0] + pixel_offset) * (b[:, 3] - b[:, 1] + pixel_offset)
    union = area_a[:, None] + area_b[None, :] - inter
    equal = (a[:, None, :] == b[None, :, :]).all(-1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, equal)


def match_detections(expected: Sequence[ImageDetections], actual: Sequence[ImageDetections],
                     iou_threshold: float = 0.9, limit: int | None = None, pixel_offset: float = 0.0) -> MatchReport:
    """Pair `actual` with `expected` image by image (see the module docstring and box_iou)."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected images but {len(actual)} actual ones")
    report = MatchReport(images=len(expected))
    for image, (exp, act) in enumerate(zip(expected, actual)):
        report.expected += len(exp)
        report.actual += len(act)
        unpaired_exp, unpaired_act = _match_image(exp, act, iou_threshold, pixel_offset, report)
        if limit is not None and len(exp) > limit and unpaired_exp.size:
            kth = np.sort(exp.scores)[::-1][limit - 1]
            tied = exp.scores[unpaired_exp] == kth
            report.ties_past_limit += int(tied.sum())
            unpaired_exp = unpaired_exp[~tied]
        report.missing += len(unpaired_exp)
        report.extra += len(unpaired_act)
        if (len(unpaired_exp) or len(unpaired_act)) and report.worst_image is None:
            report.worst_image = image
    return report


def _match_image(exp: ImageDetections, act: ImageDetections, iou_threshold: float, pixel_offset: float,
                 report: MatchReport) -> tuple[np.ndarray, np.ndarray]:
    """Greedy pairing within each class; updates the pair statistics; returns the unpaired indices."""
    exp_left, act_left = [], []
    for label in np.union1d(exp.labels, act.labels):
        ei = np.flatnonzero(exp.labels == label)
        ai = np.flatnonzero(act.labels == label)
        ei = ei[np.argsort(-exp.scores[ei], kind="stable")]
        iou = box_iou(exp.boxes[ei], act.boxes[ai], pixel_offset) if len(ei) and len(ai) else np.zeros((len(ei), len(ai)))
        free = np.ones(len(ai), dtype=bool)
        for row, e in enumerate(ei):
            candidates = np.where(free, iou[row], -1.0)
            best = int(np.argmax(candidates)) if len(ai) else -1
            if best < 0 or candidates[best] < iou_threshold:
                exp_left.append(e)
                continue
            free[best] = False
            a = ai[best]
            report.matched += 1
            report.min_iou = min(report.min_iou, float(iou[row, best]))
            report.max_score_diff = max(report.max_score_diff, float(abs(exp.scores[e] - act.scores[a])))
            report.max_box_diff = max(report.max_box_diff, float(np.abs(exp.boxes[e] - act.boxes[a]).max()))
        act_left += list(ai[free])
    return np.asarray(exp_left, dtype=np.int64), np.asarray(act_left, dtype=np.int64)
