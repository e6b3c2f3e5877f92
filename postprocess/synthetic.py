"""What the heads' synthetic outputs share (tests, benchmarks): box overlaps and detector-like clusters.

Each head builds its own outputs from known boxes (postprocess/heads/<head>/synthetic.py): exact ones
encode each box onto one anchor with a confident logit, so decoding and NMS give the boxes back (the
round-trip proof; postprocess.heads.exact_outputs_for picks a head's); realistic ones imitate a
trained detector: clusters of overlapping candidates around each object with noisy regressions,
confusable classes and a low-scoring background tail, i.e. tens to hundreds of candidates per image.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every ltrb box of `a` with every one of `b` (float64, no +1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def best_anchors(boxes: np.ndarray, priors_ltrb: np.ndarray) -> list[tuple[int, int]]:
    """(box, anchor) index pairs: each box goes to its best-overlapping anchor not already taken, the
    well-matched boxes choosing first."""
    iou = iou_matrix(boxes, priors_ltrb)
    pairs = []
    for k in np.argsort(-iou.max(axis=1), kind="stable"):
        a = int(np.argmax(iou[k]))
        iou[:, a] = -1.0
        pairs.append((int(k), a))
    return pairs


def realistic(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], rng: np.random.Generator,
              priors_ltrb: np.ndarray, encode: Callable[[np.ndarray, np.ndarray], np.ndarray], num_classes: int,
              background: int) -> tuple[np.ndarray, np.ndarray]:
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
        iou = iou_matrix(bx, priors_ltrb)
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
