"""The NVIDIA SSD box coder (decode and its inverse), as MLPerf SSD Encoder.scale_back_batch.

All arrays are anchor-major: `loc` (…, 4) = (tx, ty, tw, th), `dboxes` (…, 4) = clamped
(cx, cy, w, h), boxes out (…, 4) = (l, t, r, b) in normalised units, never clipped.
"""

from __future__ import annotations

import numpy as np


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
