"""Synthetic head outputs built from known boxes, for tests and benchmarks.

`exact_outputs` (NVIDIA head: ploc, plabel) and `mmdet_exact_outputs` (mmdet SSD head: bbox_deltas,
cls_logits) encode each box onto one anchor with a confident logit: decoding and NMS give the
boxes back (the round-trip proof); `final_exact_outputs` fills the fixed-K slots of a final-detections
head; `exact_outputs_for` picks the one of a head. `realistic_outputs` imitates a trained detector:
clusters of overlapping candidates around each object with noisy regressions, confusable classes
and a low-scoring background tail, i.e. tens to hundreds of candidates per image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from postprocess.decode import encode_boxes
from postprocess.priors import PriorSpec, default_boxes, xywh_to_ltrb


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def exact_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], spec: PriorSpec = PriorSpec(),
                  num_classes: int = 81, background: int = 0, confidence: float = 30.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per image: boxes (k, 4) normalised ltrb and labels (k,) -> float32 ploc (B, 4, A), plabel (B, C, A).

    Each box goes to its best-overlapping default box not already used in that image.
    """
    dboxes = default_boxes(spec)
    priors_ltrb = xywh_to_ltrb(dboxes.astype(np.float64))
    count, n = len(boxes), len(dboxes)
    ploc = np.zeros((count, 4, n), np.float32)
    plabel = np.zeros((count, num_classes, n), np.float32)
    plabel[:, background] = confidence
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        iou = _iou_matrix(np.asarray(bx, np.float64).reshape(-1, 4), priors_ltrb)
        for k in np.argsort(-iou.max(axis=1), kind="stable"):  # well-matched boxes choose first
            a = int(np.argmax(iou[k]))
            iou[:, a] = -1.0
            ploc[b, :, a] = encode_boxes(bx[k], dboxes[a], spec.scale_xy, spec.scale_wh)
            plabel[b, background, a] = 0.0
            plabel[b, int(lb[k]), a] = confidence
    return ploc, plabel


def realistic_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], rng: np.random.Generator,
                      spec: PriorSpec = PriorSpec(), num_classes: int = 81, background: int = 0,
                      dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Noisy detector-like outputs around the given objects (normalised ltrb boxes, labels 1..C-1)."""
    dboxes = default_boxes(spec)
    ploc, plabel = _realistic(boxes, labels, rng, xywh_to_ltrb(dboxes.astype(np.float64)),
                              lambda bx, idx: encode_boxes(bx, dboxes[idx], spec.scale_xy, spec.scale_wh),
                              num_classes, background)
    return ploc.astype(dtype), plabel.astype(dtype)


def mmdet_realistic_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], rng: np.random.Generator,
                            head=None, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """The same detector-like outputs for the mmdet SSD head: bbox_deltas (B, 4, A), cls_logits (B, C, A);
    labels are foreground indices 0..C-2."""
    from postprocess.heads.mmdet_ssd import SSD300_MMDET, encode_deltas, ssd_anchors

    head = head or SSD300_MMDET
    size = head.anchors.input_size
    anchors = ssd_anchors(head.anchors).astype(np.float64)
    deltas, logits = _realistic(boxes, labels, rng, anchors / size,
                                lambda bx, idx: encode_deltas(bx * size, anchors[idx], head.coder),
                                head.num_classes, head.background_index)
    return deltas.astype(dtype), logits.astype(dtype)


def _realistic(boxes, labels, rng, priors_ltrb: np.ndarray, encode, num_classes: int, background: int):
    """(B, 4, A) regressions and (B, C, A) logits: clusters of candidates around each object, confusable
    classes, a low background tail and a few strays. `encode(boxes, anchor_idx)` -> (n, 4) regressions."""
    count, n = len(boxes), len(priors_ltrb)
    loc = rng.normal(0.0, 1.0, (count, 4, n)).astype(np.float32)
    logits = rng.normal(0.0, 1.0, (count, num_classes, n)).astype(np.float32)
    logits[:, background] += 7.0
    fg = np.array([c for c in range(num_classes) if c != background])
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        bx = np.asarray(bx, np.float64).reshape(-1, 4)
        stray = rng.choice(n, size=30, replace=False)  # a few false positives anywhere
        logits[b, rng.choice(fg, size=30), stray] += rng.uniform(4.0, 8.0, 30).astype(np.float32)
        if not len(bx):
            continue
        iou = _iou_matrix(bx, priors_ltrb)
        owner = iou.argmax(axis=0)
        near = np.nonzero(iou.max(axis=0) > 0.3)[0]
        k = owner[near]
        strength = iou[k, near]
        reg = encode(bx[k], near)
        loc[b, :, near] = (reg + rng.normal(0.0, 0.6, reg.shape) * (1.2 - strength)[:, None]).astype(np.float32)
        logits[b, np.asarray(lb)[k], near] += (6.0 + 6.0 * strength + rng.normal(0, 1.5, len(near))).astype(np.float32)
        confused = rng.choice(fg, size=len(near))
        logits[b, confused, near] += rng.uniform(3.0, 7.5, len(near)).astype(np.float32)
    return loc, logits


def mmdet_exact_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], head=None,
                        confidence: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Per image: boxes (k, 4) normalised ltrb, labels (k,) foreground 0..C-2 -> float32
    bbox_deltas (B, 4, A), cls_logits (B, C, A) of the mmdet SSD head (location-major anchors)."""
    from postprocess.heads.mmdet_ssd import SSD300_MMDET, encode_deltas, ssd_anchors

    head = head or SSD300_MMDET
    anchors = ssd_anchors(head.anchors).astype(np.float64)
    size = head.anchors.input_size
    count, n = len(boxes), len(anchors)
    deltas = np.zeros((count, n, 4), np.float32)
    logits = np.zeros((count, n, head.num_classes), np.float32)
    logits[:, :, head.background_index] = confidence
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        px = np.asarray(bx, np.float64).reshape(-1, 4) * size
        iou = _iou_matrix(px, anchors)
        for k in np.argsort(-iou.max(axis=1), kind="stable"):
            a = int(np.argmax(iou[k]))
            iou[:, a] = -1.0
            deltas[b, a] = encode_deltas(px[k], anchors[a], head.coder)
            logits[b, a, head.background_index] = 0.0
            logits[b, a, int(lb[k])] = confidence
    return np.ascontiguousarray(deltas.transpose(0, 2, 1)), np.ascontiguousarray(logits.transpose(0, 2, 1))


def final_exact_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], head, images: Sequence
                        ) -> tuple[np.ndarray, ...]:
    """Per image: boxes (k, 4) normalised ltrb of the original image, labels (k,) foreground 0..C-2 ->
    the fixed-K outputs (boxes, scores, labels, num_detections) of a final-detections head, boxes in
    the resized image (`images` carry width/height and resized_width/resized_height) placed so that
    the COCO rows give back the normalised boxes exactly (the +offset width is undone)."""
    count, k_max = len(boxes), head.detections
    out_boxes = np.zeros((count, k_max, 4), np.float32)
    scores = np.zeros((count, k_max), np.float32)
    out_labels = np.zeros((count, k_max), np.int64)
    counts = np.zeros(count, np.int64)
    for b, (bx, lb, im) in enumerate(zip(boxes, labels, images)):
        bx = np.asarray(bx, np.float64).reshape(-1, 4)
        rx, ry = im.width / im.resized_width, im.height / im.resized_height
        l, t, r, btm = bx[:, 0] * im.width, bx[:, 1] * im.height, bx[:, 2] * im.width, bx[:, 3] * im.height
        out_boxes[b, :len(bx)] = np.stack([l / rx, t / ry, (r - head.pixel_offset) / rx,
                                           (btm - head.pixel_offset) / ry], axis=-1)
        scores[b, :len(bx)] = 1.0
        out_labels[b, :len(bx)] = np.asarray(lb) + 1
        counts[b] = len(bx)
    return out_boxes, scores, out_labels, counts


def exact_outputs_for(head, boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                      images: Sequence | None = None) -> tuple[np.ndarray, ...]:
    """Round-trip outputs of any registered head; labels are foreground indices 0..79 (class order).
    A final-detections head also needs the `images` (original and resized sizes)."""
    from postprocess.heads import FinalDetectionsHead, MmdetSsdHead, NvidiaSsdHead

    if isinstance(head, NvidiaSsdHead):
        return exact_outputs(boxes, [np.asarray(lb) + 1 for lb in labels], head.priors, head.num_classes,
                             head.background_index)
    if isinstance(head, MmdetSsdHead):
        return mmdet_exact_outputs(boxes, labels, head)
    if isinstance(head, FinalDetectionsHead):
        if images is None:
            raise ValueError("a final-detections head needs the images' original and resized sizes")
        return final_exact_outputs(boxes, labels, head, images)
    raise TypeError(f"no synthetic outputs for {type(head).__name__}")
