"""Straightforward per-image, per-class loop implementations of decode + NMS.

The baselines that postprocess/ is tested and benchmarked against, written the obvious way, one
image and one class at a time, greedy NMS one box at a time:
- NVIDIA head: the MLPerf Encoder (scale_back_batch, decode_single) and the Ascend
  ssd_postprocess.py variant. Same float32 formulas and the same tie-breaks (score, then label,
  then anchor index), so the detections must be identical.
- mmdet SSD300 head: SSDAnchorGenerator, DeltaXYWHBBoxCoder and the SSD300 test_cfg with mmcv's
  batched_nms (boxes shifted by label * (max coordinate + 1), IoU on the shifted float32 boxes,
  suppress IoU > thr), mmdet 3.x or 2.10 rules. Ties keep candidate order (a stable sort).
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
        survive = ~(iou > np.float32(thr)) if strict else (iou < np.float32(thr))
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
    """One image, Ascend ModelZoo SSD-Resnet34 ssd_postprocess.py semantics."""
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


MMDET_LEVEL_OFFSETS = (0, 5776, 7942, 8542, 8692, 8728, 8732)


def _mmdet_decode(deltas: np.ndarray, anchors: np.ndarray, input_size: int) -> np.ndarray:
    """DeltaXYWH (mmdet delta_xywh_bbox_coder.py), float32: d = delta * std; centre/size without +1;
    d_w, d_h clamped to |log(16/1000)|; corners; clipped to the input."""
    f32 = np.float32
    d = deltas.astype(f32) * np.array([0.1, 0.1, 0.2, 0.2], f32) + np.zeros(4, f32)
    px, py = (anchors[:, 0] + anchors[:, 2]) * f32(0.5), (anchors[:, 1] + anchors[:, 3]) * f32(0.5)
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    lim = f32(abs(np.log(16 / 1000)))
    gx, gy = px + pw * d[:, 0], py + ph * d[:, 1]
    gw, gh = pw * np.exp(np.clip(d[:, 2], -lim, lim)), ph * np.exp(np.clip(d[:, 3], -lim, lim))
    out = np.stack([gx - gw * f32(0.5), gy - gh * f32(0.5), gx + gw * f32(0.5), gy + gh * f32(0.5)], axis=1)
    return np.clip(out, f32(0), f32(input_size))


def mmdet_loop(deltas, logits, anchors, decoded_wh, *, version=3, nms_pre=1000, score_threshold=0.02,
               iou_threshold=0.45, max_per_image=200, level_offsets=MMDET_LEVEL_OFFSETS, input_size=300,
               background=80) -> np.ndarray:
    """One image: deltas (4, A), logits (C, A) -> rows [x, y, w, h, score, label 0..C-2] in score order."""
    f32 = np.float32
    deltas = np.ascontiguousarray(np.asarray(deltas).T)
    scores = np.delete(_softmax_all(logits).T, background, axis=1)  # (A, C - 1)
    thr = f32(score_threshold)
    rows_a, rows_k = [], []
    for s, end in zip(level_offsets[:-1], level_offsets[1:]):
        if version == 3:  # per level: (anchor, class) pairs > thr, sorted by score, the first nms_pre
            a, k = np.nonzero(scores[s:end] > thr)
            order = np.argsort(-scores[s:end][a, k], kind="stable")[:nms_pre]
            rows_a += (a[order] + s).tolist()
            rows_k += k[order].tolist()
        else:  # 2.10: a level with more anchors than nms_pre keeps its nms_pre best by best class score
            level = np.arange(s, end)
            if nms_pre is not None and end - s > nms_pre:
                level = level[np.argsort(-scores[s:end].max(axis=1), kind="stable")[:nms_pre]]
            for a in level:
                for k in np.nonzero(scores[a] > thr)[0]:
                    rows_a.append(a)
                    rows_k.append(k)
    a, k = np.array(rows_a, dtype=np.int64), np.array(rows_k, dtype=np.int64)
    score = scores[a, k]
    boxes = _mmdet_decode(deltas[a], anchors[a], input_size)
    w, h = decoded_wh
    if version == 3:  # boxes * float32(1 / (300 / w)), then drop w or h <= 0
        boxes = boxes * np.array([1 / (input_size / w), 1 / (input_size / h)] * 2, f32)
        ok = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
        boxes, score, k = boxes[ok], score[ok], k[ok]
    else:  # boxes / float32(300 / w)
        boxes = boxes / np.array([input_size / w, input_size / h] * 2, f32)
    if not len(score):
        return np.zeros((0, 6))
    shifted = boxes + (k.astype(f32) * (boxes.max() + f32(1)))[:, None]  # mmcv batched_nms
    keep = []
    for c in np.unique(k):
        order = np.flatnonzero(k == c)
        keep += _greedy(order[np.argsort(-score[order], kind="stable")], shifted, iou_threshold, strict=True)
    keep = np.sort(np.array(keep, dtype=np.int64))  # one NMS over all boxes: score order, ties by position
    keep = keep[np.argsort(-score[keep], kind="stable")][:max_per_image]
    b = boxes[keep].astype(np.float64)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], score[keep], k[keep]])
