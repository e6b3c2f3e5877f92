"""Straightforward per-image, per-class loop implementation of decode + NMS.

The baseline that postprocess/ is tested and benchmarked against: reference §7/§8 (and the Ascend
variant §9.2) written the obvious way, one image and one class at a time, greedy NMS one box at a
time. Same float32 formulas and the same tie-breaks (score, then label, then anchor index), so the
detections must be identical, not merely close.
"""

from __future__ import annotations

import numpy as np


def _decode_all(ploc: np.ndarray, dboxes: np.ndarray, scale_xy: float, scale_wh: float) -> np.ndarray:
    loc = np.ascontiguousarray(ploc.T, dtype=np.float32)  # (A, 4)
    xy = (np.float32(scale_xy) * loc[:, :2]) * dboxes[:, 2:] + dboxes[:, :2]
    wh = np.exp(np.float32(scale_wh) * loc[:, 2:]) * dboxes[:, 2:]
    half = np.float32(0.5) * wh
    return np.concatenate([xy - half, xy + half], axis=1)


def _softmax_all(plabel: np.ndarray) -> np.ndarray:
    z = np.ascontiguousarray(plabel, dtype=np.float32)  # (C, A)
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def _iou_one(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    iw = np.maximum(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), np.float32(0))
    ih = np.maximum(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), np.float32(0))
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area + areas - inter)


def _greedy(order: np.ndarray, boxes: np.ndarray, thr: float, strict: bool) -> list[int]:
    """Greedy NMS over anchors `order` (already sorted); suppress IoU >= thr (or > thr if strict)."""
    kept = []
    while len(order):
        kept.append(int(order[0]))
        iou = _iou_one(boxes[order[0]], boxes[order[1:]])
        survive = (iou <= np.float32(thr)) if strict else (iou < np.float32(thr))
        order = order[1:][survive]
    return kept


def _finish(rows: list[tuple[float, int, int]], boxes: np.ndarray, max_output: int) -> dict[str, np.ndarray]:
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))  # score desc, label, anchor
    rows = rows[:max_output]
    anchor = np.array([r[2] for r in rows], dtype=np.int64)
    return {"label": np.array([r[1] for r in rows], dtype=np.int64),
            "score": np.array([r[0] for r in rows], dtype=np.float32),
            "anchor": anchor, "box": boxes[anchor].reshape(-1, 4)}


def reference_loop(ploc, plabel, dboxes, *, scale_xy=0.1, scale_wh=0.2, score_threshold=0.05,
                   iou_threshold=0.5, max_per_class=200, max_output=200, background=0) -> dict[str, np.ndarray]:
    """One image: ploc (4, A), plabel (C, A) -> detections sorted by score (label, anchor on ties)."""
    boxes = _decode_all(ploc, dboxes, scale_xy, scale_wh)
    probs = _softmax_all(plabel)
    rows: list[tuple[float, int, int]] = []
    for c in range(probs.shape[0]):
        if c == background:
            continue
        idx = np.nonzero(probs[c] > np.float32(score_threshold))[0]
        if not len(idx):
            continue
        score = probs[c, idx]
        order = idx[np.lexsort((idx, -score))][:max_per_class]
        for a in _greedy(order, boxes, iou_threshold, strict=False):
            rows.append((probs[c, a], c, a))
    return _finish(rows, boxes, max_output)


def ascend_loop(ploc, plabel, dboxes, *, scale_xy=0.1, scale_wh=0.2, score_threshold=0.05,
                iou_threshold=0.5, max_per_class=200, max_output=200, background=0) -> dict[str, np.ndarray]:
    """One image, Ascend ssd_postprocess.py semantics (§9.2)."""
    boxes = _decode_all(ploc, dboxes, scale_xy, scale_wh)
    probs = _softmax_all(plabel)
    labels = [c for c in range(probs.shape[0]) if c != background]
    best = probs[labels].max(axis=0)
    idx = np.nonzero(best > np.float32(score_threshold))[0]
    idx = idx[np.lexsort((idx, -best[idx]))][:max_per_class]
    rows: list[tuple[float, int, int]] = []
    for c in labels:
        score = probs[c, idx]
        order = idx[np.lexsort((idx, -score))]
        for a in _greedy(order, boxes, iou_threshold, strict=True):
            rows.append((probs[c, a], c, a))
    return _finish(rows, boxes, max_output)
