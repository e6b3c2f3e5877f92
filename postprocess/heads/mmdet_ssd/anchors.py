"""mmdet's SSD anchors (SSDAnchorGenerator), bit for bit; the sources are cited in postprocess.heads.mmdet_ssd."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import sqrt

import numpy as np


@dataclass(frozen=True)
class SsdAnchorSpec:
    """mmdet SSDAnchorGenerator settings (configs/_base_/models/ssd300.py)."""

    input_size: int = 300
    feat_size: tuple[int, ...] = (38, 19, 10, 5, 3, 1)
    strides: tuple[int, ...] = (8, 16, 32, 64, 100, 300)
    ratios: tuple[tuple[int, ...], ...] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    basesize_ratio_range: tuple[float, float] = (0.15, 0.9)

    @property
    def base_sizes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(min_sizes, max_sizes) exactly as SSDAnchorGenerator computes them for input 300, ratio 0.15."""
        lo, hi = int(self.basesize_ratio_range[0] * 100), int(self.basesize_ratio_range[1] * 100)
        step = int(np.floor(hi - lo) / (len(self.strides) - 2))
        mins = [int(self.input_size * r / 100) for r in range(lo, hi + 1, step)]
        maxs = [int(self.input_size * (r + step) / 100) for r in range(lo, hi + 1, step)]
        if self.input_size != 300 or self.basesize_ratio_range[0] != 0.15:
            raise ValueError("only the SSD300 COCO anchor sizes (input 300, ratio range from 0.15) are implemented")
        return (int(self.input_size * 7 / 100), *mins), (int(self.input_size * 15 / 100), *maxs)

    @property
    def boxes_per_location(self) -> tuple[int, ...]:
        return tuple(2 + 2 * len(r) for r in self.ratios)

    @property
    def level_counts(self) -> tuple[int, ...]:
        return tuple(f * f * n for f, n in zip(self.feat_size, self.boxes_per_location))

    @property
    def level_offsets(self) -> tuple[int, ...]:
        return tuple(int(x) for x in np.cumsum((0, *self.level_counts[:-1])))

    @property
    def num_anchors(self) -> int:
        return sum(self.level_counts)


@lru_cache(maxsize=4)
def _anchors(spec: SsdAnchorSpec) -> np.ndarray:
    mins, maxs = spec.base_sizes
    levels = []
    for level, (fsize, stride, ratios) in enumerate(zip(spec.feat_size, spec.strides, spec.ratios)):
        base = np.float32(mins[level])
        scales = np.array([1.0, sqrt(maxs[level] / mins[level])], dtype=np.float32)
        ratio = np.array([1.0, *[v for r in ratios for v in (1 / r, r)]], dtype=np.float32)
        h_ratios = np.sqrt(ratio)
        w_ratios = np.float32(1) / h_ratios
        ws = ((base * scales[:, None]) * w_ratios[None, :]).reshape(-1)
        hs = ((base * scales[:, None]) * h_ratios[None, :]).reshape(-1)
        centre = np.float32(stride / 2)
        half_w, half_h = np.float32(0.5) * ws, np.float32(0.5) * hs
        base_anchors = np.stack([centre - half_w, centre - half_h, centre + half_w, centre + half_h], axis=-1)
        order = list(range(len(ratio)))
        order.insert(1, len(order))  # small square, big square, then the other ratios of scale 1
        base_anchors = base_anchors[order]
        shift = np.arange(fsize, dtype=np.float32) * np.float32(stride)
        sx, sy = np.tile(shift, fsize), np.repeat(shift, fsize)  # rows outer, columns inner
        shifts = np.stack([sx, sy, sx, sy], axis=-1)
        levels.append((base_anchors[None, :, :] + shifts[:, None, :]).reshape(-1, 4))
    anchors = np.concatenate(levels).astype(np.float32)
    anchors.flags.writeable = False
    return anchors


def ssd_anchors(spec: SsdAnchorSpec = SsdAnchorSpec()) -> np.ndarray:
    """(num_anchors, 4) float32 (x1, y1, x2, y2) pixels, in head-output order (cached, read-only)."""
    return _anchors(spec)
