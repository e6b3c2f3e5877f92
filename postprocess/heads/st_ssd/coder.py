"""ST's corner-offset box coder (ssd_mobilenet_pp.py decode_predictions) and its inverse.

Each corner moves by its offset times the anchor's width (x) or height (y); no variances, no
clipping. Arrays are anchor-major: `offsets` and `anchors` (..., 4) = (xmin, ymin, xmax, ymax),
anchors normalised to the input.
"""

from __future__ import annotations

import numpy as np


def anchor_sizes(anchors: np.ndarray) -> np.ndarray:
    """(w, h, w, h) of each anchor, float32 (ST: w = a_xmax - a_xmin, h = a_ymax - a_ymin)."""
    a = np.asarray(anchors, dtype=np.float32)
    wh = a[..., 2:] - a[..., :2]
    return np.concatenate([wh, wh], axis=-1)


def decode_corners(offsets: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """box = offset * (w, h, w, h) + anchor corner, in float32 and in that order (a product, then a sum)."""
    return np.asarray(offsets, dtype=np.float32) * anchor_sizes(anchors) + np.asarray(anchors, dtype=np.float32)


def encode_corners(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Inverse of decode_corners (float64): normalised (xmin, ymin, xmax, ymax) boxes -> offsets."""
    a = np.asarray(anchors, dtype=np.float64)
    wh = a[..., 2:] - a[..., :2]
    return (np.asarray(boxes, dtype=np.float64) - a) / np.concatenate([wh, wh], axis=-1)
