"""The step of an anchor head that touches every logit: the candidate anchors and their class scores.

Shared by the SSD heads (NVIDIA and mmdet): of (batch, classes, anchors) raw logits, only the anchors
whose best foreground probability can pass the score threshold are softmaxed, and their box
regressions gathered. What a head does with the few candidates (its box coder, its NMS) is its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import log
from typing import Sequence

import numpy as np

# p_c <= exp(z_c - max z) because the softmax denominator is >= 1, so an anchor whose best
# foreground logit trails the overall maximum by more than log(threshold) can never pass the
# threshold. The margin keeps float32 rounding of that bound far away from the decision.
_BOUND_MARGIN = 1e-3


def softmax(logits: np.ndarray, axis: int, maxima: np.ndarray | None = None, overwrite: bool = False) -> np.ndarray:
    """Numerically stable softmax in float32 (max-subtracted, like torch).

    maxima: the max along `axis` when already known · overwrite: reuse a float32 `logits` array.
    """
    z = np.asarray(logits, dtype=np.float32)
    if not (overwrite and z is logits):
        z = z.copy()
    z -= z.max(axis=axis, keepdims=True) if maxima is None else np.expand_dims(maxima, axis)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


@dataclass(frozen=True)
class Candidates:
    """Anchors that may carry a foreground score above the threshold, with their exact scores.

    image (n,) batch index · anchor (n,) anchor index · scores (n, num_classes) float32 softmax
    probabilities (background column included), a transposed view of a (num_classes, n) array.
    Rows are ordered by image, then anchor.
    """

    image: np.ndarray
    anchor: np.ndarray
    scores: np.ndarray


def candidate_scores(plabel: np.ndarray | Sequence[np.ndarray], threshold: float, background: int = 0) -> Candidates:
    """Softmax over classes for exactly the anchors whose best foreground probability can be > threshold.

    `plabel` is (batch, num_classes, anchors) raw logits, or a sequence of one (num_classes,
    anchors) array per image (e.g. views of mapped result files: nothing is copied whole). The
    result equals computing `softmax(plabel[b, :, a])` for every anchor and keeping those with any
    foreground score above the threshold plus a few with a score just at or below it (callers
    apply the strict test). Only one max-reduction touches the whole tensor.
    """
    batch = len(plabel)
    if batch == 0:
        if not isinstance(plabel, np.ndarray):
            raise ValueError("an empty batch must be a (0, num_classes, anchors) array: a list has no class count")
        none = np.zeros(0, dtype=np.int64)
        return Candidates(image=none, anchor=none, scores=np.zeros((0, plabel.shape[1]), np.float32))
    num_classes = plabel[0].shape[0]
    foreground = [s for s in (slice(0, background), slice(background + 1, num_classes)) if s.stop > s.start]
    bound = np.float32(log(threshold) - _BOUND_MARGIN) if threshold > 0 else np.float32(-np.inf)
    anchors, columns, tops = [], [], []
    for b in range(batch):  # image by image, so the gather finds the logits still in cache
        z = np.asarray(plabel[b], dtype=np.float32)
        best_fg = z[foreground[0]].max(axis=0)
        for part in foreground[1:]:
            np.maximum(best_fg, z[part].max(axis=0), out=best_fg)
        # best_fg - max(best_fg, z_bg) > bound  <=>  best_fg - z_bg > bound, since bound < 0
        a = np.flatnonzero(best_fg - z[background] > bound)
        anchors.append(a)
        columns.append(np.take(z, a, axis=1))
        tops.append(np.maximum(best_fg[a], z[background, a]))  # each anchor's max logit
    anchor = np.concatenate(anchors)
    image = np.repeat(np.arange(batch), [len(a) for a in anchors])
    # Softmax in (classes, n) layout: the class sum is a sequential sum per anchor, so each
    # anchor's scores are bit-identical to softmax(plabel[b], axis=0)[:, a].
    logits = np.concatenate(columns, axis=1)
    top = np.concatenate(tops)
    scores = softmax(logits, axis=0, maxima=top, overwrite=True)
    return Candidates(image=image, anchor=anchor, scores=scores.T)


@dataclass(frozen=True)
class Selected:
    """Candidates of a batch with their regressions: loc (n, 4) = ploc[image, :, anchor]."""

    candidates: Candidates
    loc: np.ndarray
    batch: int


def select(ploc: np.ndarray | Sequence[np.ndarray], plabel: np.ndarray | Sequence[np.ndarray],
           score_threshold: float, background: int = 0) -> Selected:
    """ploc (B, 4, A), plabel (B, C, A) -> the anchors that can pass the score threshold.

    Either may be a sequence of per-image (4, A) / (C, A) arrays instead (the reader's mapped files).
    """
    shapes = [(len(x), *x[0].shape) if len(x) else (0,) for x in (ploc, plabel)]
    if (len(shapes[0]) != 3 or len(shapes[1]) != 3 or shapes[0][0] != shapes[1][0]
            or shapes[0][2] != shapes[1][2]) and shapes[0][0]:
        raise ValueError(f"expected ploc (B, 4, A) and plabel (B, C, A), got {tuple(shapes[0])} and {tuple(shapes[1])}")
    cand = candidate_scores(plabel, score_threshold, background)
    bounds = np.searchsorted(cand.image, np.arange(len(ploc) + 1))
    loc = [np.take(ploc[b], cand.anchor[bounds[b]:bounds[b + 1]], axis=1).T for b in range(len(ploc))]
    return Selected(cand, np.asarray(np.concatenate(loc) if loc else np.zeros((0, 4)), dtype=np.float32), len(ploc))
