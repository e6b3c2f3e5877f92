"""Per-class NMS, vectorised over images and classes (MLPerf reference, Ascend ssd_postprocess.py variant).

Greedy NMS is solved without a loop over boxes. With the candidates of one (image, class) group
in processing order and an edge i -> j whenever i comes before j and would suppress it, greedy
keep is the unique solution of keep[j] = not any(keep[i] for i -> j). Iterating that update from
keep = all-true fixes entry j once every entry before it is fixed, so it reaches the solution in
at most (longest suppression chain + 1) rounds; a round that changes nothing proves it is there.

Ties in score are broken by anchor index (then label), so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np

Variant = Literal["reference", "ascend"]
VARIANTS: tuple[str, ...] = ("reference", "ascend")
_MAX_PAIRS = 1 << 22  # bound on pairwise IoU work held in memory at once


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
    by_class = scores.T  # (classes, n): contiguous when scores come from decode.candidate_scores
    passed = by_class > np.float32(params.score_threshold)
    passed[background] = False
    label, row = _nonzero_2d(passed)
    score = by_class[label, row]
    order = _sort_order(image[row] * scores.shape[1] + label, score, anchor[row])
    row, label, score = row[order], label[order], score[order]
    starts, sizes = _runs(image[row], label)
    top = np.arange(len(row)) - np.repeat(starts, sizes) < params.max_per_class
    row, label, score = row[top], label[top], score[top]
    keep = _greedy_nms(_runs(image[row], label), _Coords(boxes[row]), params.iou_threshold, strict=False)
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
    row = row[_sort_order(image[row], best[row], anchor[row])]
    starts, sizes = _runs(image[row])
    row = row[np.arange(len(row)) - np.repeat(starts, sizes) < params.max_per_class]

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


def greedy_keep_top(image: np.ndarray, group: np.ndarray, score: np.ndarray, tie: np.ndarray, boxes: np.ndarray,
                    iou_threshold: float, strict: bool, max_output: int) -> np.ndarray:
    """Greedy NMS within each (image, group), ranked by score descending then `tie` ascending; keep flags.

    Exact for every node that can be among the `max_output` best kept nodes of its image: a node's
    fate depends only on higher-ranked nodes of its group, so each image starts with its
    4 x max_output best nodes (plus ties with the last), and an image that keeps fewer than
    max_output of them is redone with 4x more, until it has enough or all its nodes took part.
    Nodes never reached stay False (they cannot make the cut).
    """
    n = len(score)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    ranked = _sort_order(image, score, tie)
    starts, sizes = _runs(image[ranked])
    run_of = np.empty(n, np.int64)
    run_of[ranked] = np.repeat(np.arange(len(starts)), sizes)
    ranked_score = score[ranked]
    groups = int(group.max()) + 1
    todo = np.ones(len(starts), dtype=bool)
    depth = 4 * max(max_output, 1)
    while todo.any():
        cut = ranked_score[starts + np.minimum(sizes, depth) - 1]
        idx = ranked[np.repeat(todo, sizes) & (ranked_score >= np.repeat(cut, sizes))]
        idx = idx[_sort_order(image[idx] * groups + group[idx], score[idx], tie[idx])]
        kept = _greedy_nms(_runs(image[idx], group[idx]), _Coords(boxes[idx]), iou_threshold, strict)
        keep[idx] = kept
        enough = np.bincount(run_of[idx[kept]], minlength=len(starts)) >= max_output
        todo &= ~(enough | (np.bincount(run_of[idx], minlength=len(starts)) == sizes))
        depth *= 4
    return keep


def _greedy_nms(runs: tuple[np.ndarray, np.ndarray], coords: "_Coords", iou_threshold: float,
                strict: bool) -> np.ndarray:
    """Greedy NMS inside each run of nodes already sorted best-first; returns keep per node.

    strict: suppress IoU > threshold (torchvision); else IoU >= threshold or NaN (reference).
    """
    thr = np.float32(iou_threshold)
    src, dst = [], []
    for i, j in _pairs_within_runs(*runs):
        iou = coords.iou(i, j)
        hit = iou > thr if strict else ~(iou < thr)
        src.append(i[hit])
        dst.append(j[hit])
    return _greedy_keep(len(coords.l), src, dst)


def _as_arrays(image, anchor, boxes, scores):
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (candidates, classes), got shape {scores.shape}")
    return (np.asarray(image, dtype=np.int64).reshape(-1), np.asarray(anchor, dtype=np.int64).reshape(-1),
            np.asarray(boxes, dtype=np.float32).reshape(-1, 4), scores)


def _nonzero_2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.nonzero of a 2-D mask (same order), several times faster through the flat indices."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def _foreground(num_classes: int, background: int) -> np.ndarray:
    labels = np.arange(num_classes)
    return labels[labels != background]


def _runs(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each run of equal consecutive key tuples (keys already grouped)."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    starts = np.nonzero(change)[0]
    return starts, np.diff(np.append(starts, n))


def _pairs_within_runs(starts: np.ndarray, sizes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All index pairs (i, j), i < j, inside the same run; yielded in chunks of about _MAX_PAIRS."""
    total = np.cumsum(sizes * (sizes - 1) // 2)
    first = 0
    while first < len(sizes):
        done = int(total[first - 1]) if first else 0
        last = max(int(np.searchsorted(total, done + _MAX_PAIRS, side="right")), first + 1)
        s, n = starts[first:last], sizes[first:last]
        first = last
        elem = np.arange(s[0], s[-1] + n[-1])
        after = np.repeat(s + n, n) - elem - 1  # partners after each element in its run
        i = np.repeat(elem, after)
        if len(i):
            yield i, i + 1 + np.arange(len(i)) - np.repeat(np.cumsum(after) - after, after)


class _Coords:
    """Box coordinates as separate contiguous columns, for fast pairwise IoU by index."""

    def __init__(self, boxes: np.ndarray):
        self.l, self.t, self.r, self.b = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
        self.area = (self.r - self.l) * (self.b - self.t)

    def iou(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """IoU of boxes i[k] and j[k], float32, no +1; 0/0 gives NaN."""
        iw = np.minimum(self.r[i], self.r[j])
        iw -= np.maximum(self.l[i], self.l[j])
        np.maximum(iw, 0, out=iw)
        ih = np.minimum(self.b[i], self.b[j])
        ih -= np.maximum(self.t[i], self.t[j])
        np.maximum(ih, 0, out=ih)
        inter = np.multiply(iw, ih, out=iw)
        union = self.area[i] + self.area[j]
        union -= inter
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.divide(inter, union, out=inter)


def _greedy_keep(n: int, src: list[np.ndarray], dst: list[np.ndarray]) -> np.ndarray:
    """Unique keep vector with keep[j] = not any(keep[i] for edges i -> j); edges go forward in order."""
    keep = np.ones(n, dtype=bool)
    src_all = np.concatenate(src) if src else np.zeros(0, np.int64)
    if src_all.size == 0:
        return keep
    dst_all = np.concatenate(dst)
    while True:
        suppressed = np.zeros(n, dtype=bool)
        suppressed[dst_all[keep[src_all]]] = True
        if np.array_equal(suppressed, ~keep):
            return keep
        keep = ~suppressed


def _sort_order(group: np.ndarray, score: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Permutation sorting by group ascending, score descending, tie ascending.

    Non-negative ints and non-negative float32 scores (whose bit patterns order like their values)
    are packed into one int64 key when they fit: one argsort instead of a 3-key lexsort.
    """
    if not len(group):
        return np.zeros(0, np.int64)
    tie_bits = int(tie.max()).bit_length()
    group_bits = int(group.max()).bit_length()
    if group_bits + 32 + tie_bits <= 63 and tie.min() >= 0 and group.min() >= 0 and score.min() >= 0:
        desc = np.invert(np.ascontiguousarray(score, dtype=np.float32).view(np.uint32)).astype(np.int64)
        key = (group.astype(np.int64) << (32 + tie_bits)) | (desc << tie_bits) | tie
        return np.argsort(key)
    return np.lexsort((tie, -score, group))


def _top_per_image(image, label, score, box, anchor, max_output: int) -> Detections:
    order = _sort_order(image, score, label * (int(anchor.max(initial=0)) + 1) + anchor)
    image, label, score, box, anchor = image[order], label[order], score[order], box[order], anchor[order]
    starts, sizes = _runs(image)
    top = np.arange(len(image)) - np.repeat(starts, sizes) < max_output
    return Detections(image=image[top], label=label[top], score=score[top], box=box[top].reshape(-1, 4),
                      anchor=anchor[top])
