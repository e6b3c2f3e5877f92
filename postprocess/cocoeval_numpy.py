"""pycocotools' COCOeval for bbox results, on arrays: the same 12 stats without a dict per detection.

pycocotools matches each image and category on its own (`evaluateImg`): detections best score
first (at most 100), each to the unmatched ground-truth box of its class it overlaps most (IoU in
double as maskApi's bbIou; ties go to the later box; a crowd box can take many detections and
counts only as IoU against the detection's own area), non-ignored boxes before ignored ones,
separately for each IoU threshold and area range. `accumulate` then ranks each category's
detections over all images by score and reads precision at 101 recall points.

Here the matching of a set of images (`match_images`) is independent of every other image, so it
can run beside decoding on slices of the images, and `accumulate` joins the slices. Only a
detection that overlaps some box of its class by the lowest threshold can match anything; the
greedy matching steps through just those, for all pairs (image, category), area ranges and
thresholds at once. Every quirk is kept: score ties keep result order, a match to a box with
id 0 counts as no match, an unmatched detection outside an area range is ignored in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

# pycocotools Params.setDetParams
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0, 1e5 ** 2), (0, 32 ** 2), (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2))
AREA_LABELS = ("all", "small", "medium", "large")


@dataclass(frozen=True)
class GroundTruth:
    """The annotations of the evaluated images and categories, in pycocotools' order (by image, then
    file order), with each pair (image, category) a contiguous run."""

    image_ids: np.ndarray   # (I,) sorted evaluated image ids
    cat_ids: np.ndarray     # (K,) sorted category ids
    pair: np.ndarray        # (n,) image position * K + category position, ascending
    box: np.ndarray         # (n, 4) x, y, w, h (double)
    ignored: np.ndarray     # (n, A) crowd, or area outside the range
    crowd: np.ndarray       # (n,)
    ann_id: np.ndarray      # (n,)

    @classmethod
    def of(cls, gt: Any, image_ids: Iterable[int]) -> "GroundTruth":
        """From a COCO object (pycocotools or faster-coco-eval) over `image_ids`."""
        image_ids = np.unique(np.asarray(list(image_ids), dtype=np.int64))
        cat_ids = np.unique(np.asarray(list(gt.getCatIds()), dtype=np.int64))
        anns = gt.dataset.get("annotations", [])
        image = np.array([a["image_id"] for a in anns], dtype=np.int64)
        cat = np.array([a["category_id"] for a in anns], dtype=np.int64)
        keep = _member(image, image_ids) & _member(cat, cat_ids)
        kept = [a for a, k in zip(anns, keep.tolist()) if k]
        pair = _position(image[keep], image_ids) * len(cat_ids) + _position(cat[keep], cat_ids)
        order = np.argsort(pair, kind="stable")
        box = np.array([a["bbox"] for a in kept], dtype=np.float64).reshape(-1, 4)
        area = np.array([a["area"] for a in kept], dtype=np.float64)
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in kept], dtype=bool)
        ignored = crowd[:, None] | _outside(area)
        ann_id = np.array([a["id"] for a in kept], dtype=np.int64)
        return cls(image_ids, cat_ids, pair[order], box[order], ignored[order], crowd[order], ann_id[order])

    def counted(self) -> np.ndarray:
        """(K, A) boxes that count (not ignored) per category and area range: accumulate's npig."""
        k = self.pair % max(len(self.cat_ids), 1)
        return np.stack([np.bincount(k[~self.ignored[:, a]], minlength=len(self.cat_ids))
                         for a in range(len(AREA_RANGES))], axis=1)


@dataclass(frozen=True)
class Matches:
    """Per scored detection (the 100 best of each image and category): its pair, score and rank
    (best first), whether its area is outside each range, and, for the few that overlap a box by
    the lowest threshold ("live"), whether it matched and whether it is ignored per area range and
    IoU threshold. Every other detection matches nothing and is ignored exactly where it is outside."""

    pair: np.ndarray          # (n,) as GroundTruth.pair
    score: np.ndarray         # (n,)
    rank: np.ndarray          # (n,) position within its pair, best score first
    outside: np.ndarray       # (n, A)
    live: np.ndarray          # (n,) row in live_matched / live_ignored, or -1
    live_matched: np.ndarray  # (L, A, T)
    live_ignored: np.ndarray  # (L, A, T)

    @classmethod
    def join(cls, parts: Sequence["Matches"]) -> "Matches":
        """The matches of several disjoint sets of images as one."""
        offsets = np.cumsum([0] + [len(p.live_matched) for p in parts[:-1]])
        live = [np.where(p.live >= 0, p.live + o, -1) for p, o in zip(parts, offsets)]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pair", "score", "rank", "outside")),
                   np.concatenate(live), *(np.concatenate([getattr(p, f) for p in parts])
                                           for f in ("live_matched", "live_ignored")))


def _member(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(sorted_ids, values), max(len(sorted_ids) - 1, 0))
    return (sorted_ids[pos] == values) if len(sorted_ids) else np.zeros(len(values), dtype=bool)


def _position(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_ids, values).astype(np.int64)


def _outside(area: np.ndarray) -> np.ndarray:
    """(n, A): area below or above each range (both bounds belong to it)."""
    return np.stack([(area < lo) | (area > hi) for lo, hi in AREA_RANGES], axis=1)


def _stable_order(minor: np.ndarray, major: np.ndarray) -> np.ndarray:
    """np.lexsort((minor, major)) (ties keep their order), as two stable sorts: about twice as fast."""
    by_minor = np.argsort(minor, kind="stable")
    return by_minor[np.argsort(major[by_minor], kind="stable")]


def _runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique keys of a sorted array, where each run starts, and each element's offset in its run."""
    if len(sorted_keys) == 0:
        return sorted_keys, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    lengths = np.diff(np.r_[starts, len(sorted_keys)])
    offset = np.arange(len(sorted_keys)) - np.repeat(starts, lengths)
    return sorted_keys[starts], starts, offset


def _box_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """maskApi.c bbIou for aligned pairs of x, y, w, h boxes, in its operation order."""
    w = np.minimum(dt[:, 2] + dt[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(dt[:, 0], gt[:, 0])
    h = np.minimum(dt[:, 3] + dt[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(dt[:, 1], gt[:, 1])
    inter = w * h
    dt_area = dt[:, 2] * dt[:, 3]
    union = np.where(crowd, dt_area, dt_area + gt[:, 2] * gt[:, 3] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def match_images(truth: GroundTruth, rows: np.ndarray, float32_area: bool = True) -> Matches:
    """Match result rows [image_id, x, y, w, h, score, category_id] (see coco.result_rows) of any
    set of evaluated images against `truth`; rows of other images or categories are left out.

    `float32_area`: a detection's area is w * h in float32 (COCO.loadRes on float32 rows, the NVIDIA
    reference) or in double (loadRes on a results json)."""
    image, cat = rows[:, 0].astype(np.int64), rows[:, 6].astype(np.int64)
    keep = np.flatnonzero(_member(image, truth.image_ids) & _member(cat, truth.cat_ids))
    pair = _position(image[keep], truth.image_ids) * len(truth.cat_ids) + _position(cat[keep], truth.cat_ids)
    order = _stable_order(-rows[keep, 5], pair)  # equal scores keep result order
    pair = pair[order]
    _, _, rank = _runs(pair)
    scored = rank < MAX_DETS[-1]
    rows = rows[keep[order[scored]]]
    pair, rank = pair[scored], rank[scored]
    area = (rows[:, 3].astype(np.float32) * rows[:, 4].astype(np.float32)).astype(np.float64) if float32_area \
        else rows[:, 3] * rows[:, 4]
    outside = _outside(area)
    dets, matched_id, match_ignored = _greedy(truth, rows[:, 1:5], pair)
    live = np.full(len(rows), -1, dtype=np.int64)
    live[dets] = np.arange(len(dets))
    matched = matched_id != 0
    ignored = match_ignored | (~matched & outside[dets][:, :, None])
    return Matches(pair, rows[:, 5].copy(), rank, outside, live, matched, ignored)


def _greedy(truth: GroundTruth, boxes: np.ndarray, pair: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """evaluateImg's matching loop for the detections (sorted by pair, then rank) that overlap a box
    of their pair by at least the lowest threshold; the others match nothing and change nothing.
    Returns those detections and, per area range and threshold, the id of the box each matched (0:
    none) and whether that box is ignored."""
    areas, thresholds = len(AREA_RANGES), len(IOU_THRESHOLDS)
    gt_pairs, gt_start, _ = _runs(truth.pair)
    dets = np.flatnonzero(_member(pair, gt_pairs))
    slot = _position(pair[dets], gt_pairs)  # each detection's run of boxes
    count = np.diff(np.r_[gt_start, len(truth.pair)])[slot]
    # every (detection, box of its pair), flat
    first = np.cumsum(count) - count
    det_of = np.repeat(np.arange(len(dets)), count)
    gt_of = np.repeat(gt_start[slot] - first, count) + np.arange(len(det_of))
    iou = _box_iou(boxes[dets[det_of]], truth.box[gt_of], truth.crowd[gt_of])
    live = np.maximum.reduceat(iou, first) >= min(IOU_THRESHOLDS[0], 1 - 1e-10) if len(dets) else \
        np.zeros(0, dtype=bool)
    dets, count, first, gt_first = dets[live], count[live], first[live], gt_start[slot[live]]
    matched_id = np.zeros((len(dets), areas, thresholds), dtype=np.int64)
    match_ignored = np.zeros((len(dets), areas, thresholds), dtype=bool)
    if len(dets) == 0:
        return dets, matched_id, match_ignored
    # Step k handles the k-th live detection of every pair at once, in buckets of pairs with up to
    # 1, 2, 4, ... boxes (the padding stays small).
    _, _, step = _runs(pair[dets])
    bucket = 1 << np.ceil(np.log2(count)).astype(np.int64)
    for width in np.unique(bucket).tolist():
        mine = np.flatnonzero(bucket == width)
        _greedy_bucket(truth, iou, first[mine], count[mine], gt_first[mine], step[mine], width,
                       matched_id, match_ignored, mine)
    return dets, matched_id, match_ignored


def _greedy_bucket(truth: GroundTruth, iou: np.ndarray, first: np.ndarray, count: np.ndarray,
                   gt_first: np.ndarray, step: np.ndarray, width: int, matched_id: np.ndarray,
                   match_ignored: np.ndarray, out: np.ndarray) -> None:
    """The matching of live detections (rows `out` of the results) whose pairs have at most `width`
    boxes; `first`/`count` locate each one's IoUs in `iou`, `step` is its place among its pair's."""
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, None, :, None]
    cols = np.arange(width)
    det_valid = cols[None, :] < count[:, None]                                   # (D, W)
    det_iou = np.where(det_valid, iou[np.where(det_valid, first[:, None] + cols[None, :], 0)], -np.inf)
    starts = step == 0                                                           # each pair's first
    pair_of = np.cumsum(starts) - 1
    valid = det_valid[starts]                                                    # (P, W)
    gt_index = np.where(valid, gt_first[starts][:, None] + cols[None, :], 0)
    ignored = np.where(valid[:, None, :], truth.ignored[gt_index].transpose(0, 2, 1), True)  # (P, A, W)
    reusable = (valid & truth.crowd[gt_index])[:, None, None, :]                  # crowd boxes stay available
    ann_id = truth.ann_id[gt_index]
    taken = np.zeros((len(valid), ignored.shape[1], thresholds.shape[2], width), dtype=bool)  # (P, A, T, W)
    for k in range(int(step.max()) + 1):
        now = np.flatnonzero(step == k)
        p = pair_of[now]
        cur = det_iou[now][:, None, None, :]                                      # (n, 1, 1, W)
        ok = ~(taken[p] & ~reusable[p]) & (cur >= thresholds)                     # (n, A, T, W)
        ign = ignored[p][:, :, None, :]
        counted = ok & ~ign
        cand = np.where(counted.any(axis=-1, keepdims=True), counted, ok & ign)  # counted boxes first
        choice = width - 1 - np.argmax(np.where(cand, cur, -np.inf)[..., ::-1], axis=-1)  # the last best
        ni, ai, ti = np.nonzero(cand.any(axis=-1))
        gi = choice[ni, ai, ti]
        taken[p[ni], ai, ti, gi] = True
        matched_id[out[now[ni]], ai, ti] = ann_id[p[ni], gi]
        match_ignored[out[now[ni]], ai, ti] = ignored[p[ni], ai, gi]


def accumulate(matches: Matches, counted: np.ndarray, first: int = 0,
               stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools accumulate: precision (T, R, K, A, M) and recall (T, K, A, M), -1 where a category
    has no counted box in an area range. `counted` is GroundTruth.counted(). Categories are scored
    independently: `first`/`stop` give the arrays of the categories at those positions alone.

    Precision between two true positives only falls (more detections, as many hits), so the
    interpolated precision at a recall point is read at the true positives alone, which are all
    live detections: the dense arrays over every detection are never built."""
    all_cats = counted.shape[0]
    stop = all_cats if stop is None else stop
    counted = counted[first:stop]
    n_cats = stop - first
    T, R, A, M = len(IOU_THRESHOLDS), len(RECALL_POINTS), len(AREA_RANGES), len(MAX_DETS)
    precision = -np.ones((T, R, n_cats, A, M))
    recall = -np.ones((T, n_cats, A, M))
    pair, score, rank, outside, live = matches.pair, matches.score, matches.rank, matches.outside, matches.live
    if n_cats < all_cats:
        k = pair % all_cats
        mine = np.flatnonzero((k >= first) & (k < stop))
        pair, score, rank, outside, live = pair[mine], score[mine], rank[mine], outside[mine], live[mine]
    cat = (pair % max(all_cats, 1) - first).astype(np.min_scalar_type(max(n_cats - 1, 0)))  # small: a radix sort
    # each category's detections over all images by score; ties in image order, then rank (the
    # order of pairs, which match_images gives and a join of slices in any image order may not)
    by_pair = np.arange(len(cat)) if (np.diff(pair) >= 0).all() else np.argsort(pair, kind="stable")
    order = by_pair[_stable_order(-score[by_pair], cat[by_pair])]
    bounds = np.searchsorted(cat[order], np.arange(n_cats + 1))
    # per maxDets, how many unmatched-rule counting detections precede and include each one
    within = rank[order][:, None] < np.asarray(MAX_DETS)[None, :]                  # (n, M)
    base = ~outside[order]                                                         # (n, A)
    flags = base.T[:, None, :] & within.T[None, :, :]                              # (A, M, n): contiguous runs
    counting = np.cumsum(flags, axis=-1, dtype=np.int32).transpose(2, 0, 1)        # (n, A, M) view
    live = live[order]
    live_at = np.flatnonzero(live >= 0)
    live_bounds = np.searchsorted(live_at, bounds)
    for k in range(n_cats):
        areas = np.flatnonzero(counted[k] > 0)
        if len(areas) == 0:
            continue
        npig = counted[k, areas].astype(np.int64)                                 # (a,)
        # the fewest hits whose recall (hits / npig, as accumulate computes it) reaches each point
        needed = np.stack([np.searchsorted(np.arange(n + 1) / n, RECALL_POINTS, side="left") for n in npig])
        at = live_at[live_bounds[k]:live_bounds[k + 1]]
        if len(at) == 0:  # no hit: recall 0, precision 0 at every point (or no detection at all)
            recall[:, k, areas, :], precision[:, :, k, areas, :] = 0.0, 0.0
            continue
        before = counting[bounds[k] - 1][areas] if bounds[k] > 0 else 0
        recall[:, k, areas, :], precision[:, :, k, areas, :] = _category_curve(
            matches, live[at], within[at], base[at][:, areas], counting[at][:, areas] - before, areas, npig,
            needed)
    return precision, recall


def _category_curve(matches: Matches, live: np.ndarray, within: np.ndarray, base: np.ndarray,
                    counting: np.ndarray, areas: np.ndarray, npig: np.ndarray,
                    needed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recall (T, a, M) and interpolated precision (T, R, a, M) of one category for the area ranges
    `areas` and every maxDets, from its live detections in accumulate's order: their rows in the
    live arrays, whether each is within each maxDets (L, M), whether it is inside each range (L, a),
    and how many detections counted so far under the unmatched rule (L, a, M)."""
    T, R, M = len(IOU_THRESHOLDS), len(RECALL_POINTS), len(MAX_DETS)
    a = len(areas)
    kept = within[:, None, None, :]                                               # (L, 1, 1, M)
    dtm = matches.live_matched[live][:, areas][..., None]                         # (L, a, T, 1)
    dtig = matches.live_ignored[live][:, areas][..., None]
    hits = np.cumsum(dtm & ~dtig & kept, axis=0)                                  # tp so far: (L, a, T, M)
    # detections that count (not ignored) so far: the unmatched rule, corrected at live ones
    correction = ((~dtig).astype(np.int64) - base[:, :, None, None]) * kept
    counting = counting[:, :, None, :] + np.cumsum(correction, axis=0)
    pr = hits.astype(float) / (counting.astype(float) + np.spacing(1))            # tp / (fp + tp + eps)
    best_after = np.maximum.accumulate(pr[::-1], axis=0)[::-1]
    recall = (hits[-1].astype(float) / npig[:, None, None]).transpose(1, 0, 2)    # (T, a, M)
    # A detection outside maxDets repeats the last hits and counts, so including it changes no
    # maximum; the first detection whose hits reach a point's need is a true positive within it.
    # Exact integer search per (a, t, m) column, all columns at once:
    L = len(live)
    span = max(L, int(needed.max())) + 1  # columns' key ranges never overlap
    column = np.arange(a * T * M).reshape(a, T, M)
    keys = (hits.transpose(1, 2, 3, 0) + (column * span)[..., None]).ravel()
    queries = needed[:, None, None, :] + (column * span)[..., None]              # (a, T, M, R)
    at = np.searchsorted(keys, queries.ravel(), side="left").reshape(a, T, M, R) - (column * L)[..., None]
    values = best_after.transpose(1, 2, 3, 0).reshape(a * T * M, L)[column[..., None], np.minimum(at, L - 1)]
    precision = np.where(at < L, values, 0.0).transpose(1, 3, 0, 2)               # (T, R, a, M)
    return recall, precision
