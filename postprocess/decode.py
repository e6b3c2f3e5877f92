"""Box coder (decode and its inverse) and class scores (softmax), reference §7.

All arrays are anchor-major: `loc` (…, 4) = (tx, ty, tw, th), `dboxes` (…, 4) = clamped
(cx, cy, w, h), boxes out (…, 4) = (l, t, r, b) in normalised units, never clipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import log

import numpy as np

# p_c <= exp(z_c - max z) because the softmax denominator is >= 1, so an anchor whose best
# foreground logit trails the overall maximum by more than log(threshold) can never pass the
# threshold. The margin keeps float32 rounding of that bound far away from the decision.
_BOUND_MARGIN = 1e-3


def decode_boxes(loc: np.ndarray, dboxes: np.ndarray, scale_xy: float, scale_wh: float) -> np.ndarray:
    """Regressions + default boxes -> (l, t, r, b) float32, out of place."""
    loc = np.asarray(loc, dtype=np.float32)
    xy = (np.float32(scale_xy) * loc[..., :2]) * dboxes[..., 2:] + dboxes[..., :2]
    wh = np.exp(np.float32(scale_wh) * loc[..., 2:]) * dboxes[..., 2:]
    half = np.float32(0.5) * wh
    return np.concatenate([xy - half, xy + half], axis=-1)


def encode_boxes(ltrb: np.ndarray, dboxes: np.ndarray, scale_xy: float, scale_wh: float) -> np.ndarray:
    """Inverse of decode_boxes: (l, t, r, b) + default boxes -> regressions (float64)."""
    ltrb = np.asarray(ltrb, dtype=np.float64)
    d = np.asarray(dboxes, dtype=np.float64)
    wh = ltrb[..., 2:] - ltrb[..., :2]
    xy = (ltrb[..., :2] + ltrb[..., 2:]) / 2
    return np.concatenate([(xy - d[..., :2]) / (d[..., 2:] * scale_xy), np.log(wh / d[..., 2:]) / scale_wh],
                          axis=-1)


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    """Numerically stable softmax in float32 (max-subtracted, like torch)."""
    z = np.asarray(logits, dtype=np.float32)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@dataclass(frozen=True)
class Candidates:
    """Anchors that may carry a foreground score above the threshold, with their exact scores.

    image (n,) batch index · anchor (n,) anchor index · scores (n, num_classes) float32 softmax
    probabilities (background column included).
    Rows are ordered by image, then anchor.
    """

    image: np.ndarray
    anchor: np.ndarray
    scores: np.ndarray


def candidate_scores(plabel: np.ndarray, threshold: float, background: int = 0) -> Candidates:
    """Softmax over classes for exactly the anchors whose best foreground probability can be > threshold.

    `plabel` is (batch, num_classes, anchors) raw logits. The result equals computing
    `softmax(plabel[b, :, a])` for every anchor and keeping those with any foreground score above
    the threshold plus a few with a score just at or below it (callers apply the strict test). Only
    one max-reduction touches the whole tensor.
    """
    plabel = np.asarray(plabel, dtype=np.float32)
    num_classes = plabel.shape[1]
    parts = [plabel[:, :background], plabel[:, background + 1:]]  # views: no copy of the big tensor
    maxes = [p.max(axis=1) for p in parts if p.shape[1]]
    best_fg = maxes[0] if len(maxes) == 1 else np.maximum(*maxes)
    bound = np.float32(log(threshold) - _BOUND_MARGIN) if threshold > 0 else np.float32(-np.inf)
    # best_fg - max(best_fg, z_bg) > bound  <=>  best_fg - z_bg > bound, since bound < 0
    image, anchor = np.nonzero(best_fg - plabel[:, background] > bound)
    # Each anchor's logits are one contiguous row, so its softmax is bit-identical to the one
    # computed on a contiguous (anchors, classes) array of the whole image.
    scores = softmax(plabel[image, :, anchor].reshape(-1, num_classes), axis=1)
    return Candidates(image=image, anchor=anchor, scores=scores)
