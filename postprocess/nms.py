"""Greedy NMS vectorised over images and groups: the machinery both SSD heads' NMS policies use.

Greedy NMS is solved without a loop over boxes. With the candidates of one (image, class) group
in processing order and an edge i -> j whenever i comes before j and would suppress it, greedy
keep is the unique solution of keep[j] = not any(keep[i] for i -> j). Iterating that update from
keep = all-true fixes entry j once every entry before it is fixed, so it reaches the solution in
at most (longest suppression chain + 1) rounds; a round that changes nothing proves it is there.

The policies themselves live with their heads: the MLPerf reference and the Ascend variant in
postprocess.heads.nvidia_ssd.nms, mmcv's batched NMS in postprocess.heads.mmdet_ssd.decoder.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

_MAX_PAIRS = 1 << 22  # bound on pairwise IoU work held in memory at once


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
    ranked = sort_order(image, score, tie)
    starts, sizes = runs(image[ranked])
    run_of = np.empty(n, np.int64)
    run_of[ranked] = np.repeat(np.arange(len(starts)), sizes)
    ranked_score = score[ranked]
    groups = int(group.max()) + 1
    todo = np.ones(len(starts), dtype=bool)
    depth = 4 * max(max_output, 1)
    while todo.any():
        cut = ranked_score[starts + np.minimum(sizes, depth) - 1]
        idx = ranked[np.repeat(todo, sizes) & (ranked_score >= np.repeat(cut, sizes))]
        idx = idx[sort_order(image[idx] * groups + group[idx], score[idx], tie[idx])]
        kept = greedy_nms(runs(image[idx], group[idx]), Coords(boxes[idx]), iou_threshold, strict)
        keep[idx] = kept
        enough = np.bincount(run_of[idx[kept]], minlength=len(starts)) >= max_output
        todo &= ~(enough | (np.bincount(run_of[idx], minlength=len(starts)) == sizes))
        depth *= 4
    return keep


def greedy_nms(bounds: tuple[np.ndarray, np.ndarray], coords: "Coords", iou_threshold: float,
               strict: bool) -> np.ndarray:
    """Greedy NMS inside each run of nodes already sorted best-first (`bounds`: runs()); returns keep per node.

    strict: suppress IoU > threshold (torchvision); else IoU >= threshold or NaN (reference).
    """
    thr = np.float32(iou_threshold)
    src, dst = [], []
    for i, j in _pairs_within_runs(*bounds):
        iou = coords.iou(i, j)
        hit = iou > thr if strict else ~(iou < thr)
        src.append(i[hit])
        dst.append(j[hit])
    return _greedy_keep(len(coords.l), src, dst)


def nonzero_2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.nonzero of a 2-D mask (same order), several times faster through the flat indices."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def runs(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


class Coords:
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


def sort_order(group: np.ndarray, score: np.ndarray, tie: np.ndarray) -> np.ndarray:
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


def first_per_run(bounds: tuple[np.ndarray, np.ndarray], limit: int | None) -> np.ndarray:
    """Indices of the first `limit` elements of each run (`bounds`: runs()); all when limit is None."""
    starts, sizes = bounds
    n = int(sizes.sum())
    if limit is None:
        return np.arange(n)
    return np.flatnonzero(np.arange(n) - np.repeat(starts, sizes) < limit)
