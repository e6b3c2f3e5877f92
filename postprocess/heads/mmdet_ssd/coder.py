"""mmdet's DeltaXYWH box coder (delta2bbox) and its inverse; the sources are cited in postprocess.heads.mmdet_ssd."""

from __future__ import annotations

from dataclasses import dataclass
from math import log

import numpy as np


@dataclass(frozen=True)
class DeltaXYWHCoder:
    means: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    stds: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
    wh_ratio_clip: float = 16 / 1000
    clip_border: bool = True


def encode_deltas(boxes: np.ndarray, anchors: np.ndarray, coder: DeltaXYWHCoder) -> np.ndarray:
    """Inverse of decode_deltas without clipping (float64): pixel boxes + anchors -> deltas."""
    g, a = np.asarray(boxes, np.float64), np.asarray(anchors, np.float64)
    pxy, pwh = (a[..., :2] + a[..., 2:]) / 2, a[..., 2:] - a[..., :2]
    gxy, gwh = (g[..., :2] + g[..., 2:]) / 2, g[..., 2:] - g[..., :2]
    d = np.concatenate([(gxy - pxy) / pwh, np.log(gwh / pwh)], axis=-1)
    return (d - np.asarray(coder.means)) / np.asarray(coder.stds)


def decode_deltas(deltas: np.ndarray, anchors: np.ndarray, coder: DeltaXYWHCoder,
                  max_shape: tuple[int, int] | None) -> np.ndarray:
    """DeltaXYWH decode (float32, mmdet's op order); clamp to max_shape (h, w) when clip_border."""
    d = np.asarray(deltas, dtype=np.float32) * np.asarray(coder.stds, np.float32) + np.asarray(coder.means, np.float32)
    a = np.asarray(anchors, dtype=np.float32)
    pxy = (a[..., :2] + a[..., 2:]) * np.float32(0.5)
    pwh = a[..., 2:] - a[..., :2]
    limit = np.float32(abs(log(coder.wh_ratio_clip)))
    gxy = pxy + pwh * d[..., :2]
    gwh = pwh * np.exp(np.clip(d[..., 2:], -limit, limit))
    half = gwh * np.float32(0.5)
    boxes = np.concatenate([gxy - half, gxy + half], axis=-1)
    if coder.clip_border and max_shape is not None:
        h, w = max_shape
        np.clip(boxes[..., 0::2], 0, np.float32(w), out=boxes[..., 0::2])
        np.clip(boxes[..., 1::2], 0, np.float32(h), out=boxes[..., 1::2])
    return boxes
