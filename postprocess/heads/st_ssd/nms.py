"""The two NMS policies of the ST SSD head, one image at a time (sources in postprocess.heads.st_ssd).

Both take one image's softmax scores (A, C), offsets (A, 4) and anchors (A, 4) and return its
Detections, best first.

tf_multiclass  TF Object Detection API multiclass_non_max_suppression: per foreground class the
               (anchor, class) pairs with score > threshold, greedy NMS suppressing IoU > threshold
               (TF's IOU: corners taken as min/max, 0 when either box has no area), at most
               pre_nms_top_k kept per class; all classes sorted by score (ties: class, then anchor),
               boxes clipped to [0, 1], boxes whose clipped area is not > 0 dropped, the first
               max_per_image kept. Exact without decoding every pair: it works on the best `depth`
               pairs of the image (all ties included), which hold a prefix of every class's ranking,
               and widens them until they give max_per_image detections or hold every pair.
st_agnostic    ST's app (postprocess_predictions, non_max_supression): anchors with any foreground
               score > threshold, each scored by its best column and labelled by its argmax (both
               over all columns, background included), greedy over all classes at once keeping a box
               only while IoU <= threshold (a NaN IoU removes it, as ST's `np.where(overlap <= thr)`),
               ranked by score with ties in `np.argsort(scores)[::-1]` order (the later anchor first);
               no clipping, no cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from postprocess.heads.spec import NmsPolicy
from postprocess.heads.st_ssd.coder import decode_corners
from postprocess.nms import Coords, first_per_run, greedy_nms, runs, sort_order

START_DEPTH = 4  # times max_per_image: the pairs tf_multiclass starts from


@dataclass(frozen=True)
class Detections:
    """One image's detections, best first: anchor index, score column (label), score, normalised box."""

    anchor: np.ndarray
    label: np.ndarray
    score: np.ndarray
    box: np.ndarray  # (n, 4) float32 xmin, ymin, xmax, ymax

    def __len__(self) -> int:
        return len(self.score)

    def take(self, idx: np.ndarray) -> "Detections":
        return Detections(self.anchor[idx], self.label[idx], self.score[idx], self.box[idx])


def _foreground(num_classes: int, background: int) -> np.ndarray:
    return np.array([c for c in range(num_classes) if c != background])


def tf_multiclass(scores: np.ndarray, offsets: np.ndarray, anchors: np.ndarray, policy: NmsPolicy,
                  background: int = 0) -> Detections:
    """TF OD API multiclass NMS of one image (module docstring)."""
    columns = _foreground(scores.shape[1], background)
    flat = np.ascontiguousarray(scores[:, columns]).ravel()  # pair a * F + k
    valid = np.flatnonzero(flat > np.float32(policy.score_threshold))
    depth = START_DEPTH * max(policy.max_per_image, 1)
    while True:
        if depth >= len(valid):
            nodes = valid
        else:
            values = flat[valid]
            cut = -np.partition(-values, depth - 1)[depth - 1]  # the depth-th best score
            nodes = valid[values >= cut]
        found = _tf_detections(nodes, flat[nodes], len(columns), offsets, anchors, policy)
        if len(found) >= policy.max_per_image or len(nodes) == len(valid):
            return Detections(found.anchor, columns[found.label], found.score, found.box)
        depth *= 4


def _tf_detections(nodes: np.ndarray, score: np.ndarray, classes: int, offsets: np.ndarray, anchors: np.ndarray,
                   policy: NmsPolicy) -> Detections:
    """The detections among `nodes` (pairs a * classes + k holding a prefix of every class's ranking);
    labels are foreground indices k."""
    anchor, k = np.divmod(nodes, classes)
    order = sort_order(k, score, anchor)  # class, score descending, anchor: TF's per-class candidate order
    anchor, k, score = anchor[order], k[order], score[order]
    boxes = decode_corners(offsets[anchor], anchors[anchor])
    corners = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
    kept = np.flatnonzero(greedy_nms(runs(k), Coords(corners), policy.iou_threshold, strict=True))
    kept = kept[first_per_run(runs(k[kept]), policy.pre_nms_top_k)]  # max_detections_per_class
    clipped = np.clip(boxes[kept], np.float32(0), np.float32(1))
    area = (clipped[:, 3] - clipped[:, 1]) * (clipped[:, 2] - clipped[:, 0])
    kept, clipped = kept[area > 0], clipped[area > 0]
    best = sort_order(np.zeros(len(kept), np.int64), score[kept], k[kept] * len(offsets) + anchor[kept])
    best = best[:policy.max_per_image]
    return Detections(anchor[kept][best], k[kept][best], score[kept][best], clipped[best])


def st_agnostic(scores: np.ndarray, offsets: np.ndarray, anchors: np.ndarray, policy: NmsPolicy,
                background: int = 0) -> Detections:
    """ST app's class-agnostic NMS of one image (module docstring)."""
    fg = scores[:, _foreground(scores.shape[1], background)]
    anchor = np.flatnonzero((fg > np.float32(policy.score_threshold)).any(axis=1))
    candidates = scores[anchor]
    score, label = candidates.max(axis=1), candidates.argmax(axis=1)
    boxes = decode_corners(offsets[anchor], anchors[anchor])
    coords = Coords(boxes)
    order = np.argsort(score, kind="stable")[::-1]
    kept = []
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(best)
        order = rest[coords.iou(np.full(len(rest), best), rest) <= np.float32(policy.iou_threshold)]
    kept = np.asarray(kept, dtype=np.int64)[:policy.max_per_image]
    return Detections(anchor[kept], label[kept], score[kept], boxes[kept])


SELECTIONS = {"tf-multiclass": tf_multiclass, "st-agnostic": st_agnostic}
