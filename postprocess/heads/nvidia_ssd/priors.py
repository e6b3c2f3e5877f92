"""Default-box (prior) specification of an SSD300-style detector."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import sqrt
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where boxes are made: the zoo imports PriorSpec cheaply
    import numpy as np


@dataclass(frozen=True)
class PriorSpec:
    """Parameters of the SSD default-box generator and box coder (DefaultBoxes, dboxes300_coco)."""

    fig_size: int = 300
    feat_size: tuple[int, ...] = (38, 19, 10, 5, 3, 1)
    steps: tuple[int, ...] = (8, 16, 32, 64, 100, 300)
    scales: tuple[int, ...] = (21, 45, 99, 153, 207, 261, 315)
    aspect_ratios: tuple[tuple[int, ...], ...] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    scale_xy: float = 0.1
    scale_wh: float = 0.2

    @property
    def boxes_per_location(self) -> tuple[int, ...]:
        return tuple(2 + 2 * len(r) for r in self.aspect_ratios)

    @property
    def num_priors(self) -> int:
        return sum(f * f * n for f, n in zip(self.feat_size, self.boxes_per_location))


@lru_cache(maxsize=8)
def _default_boxes(spec: PriorSpec) -> np.ndarray:
    import numpy as np

    rows: list[tuple[float, float, float, float]] = []
    for level, (fsize, step) in enumerate(zip(spec.feat_size, spec.steps)):
        fk = spec.fig_size / step
        sk = spec.scales[level] / spec.fig_size
        sk_next = spec.scales[level + 1] / spec.fig_size
        sizes = [(sk, sk), (sqrt(sk * sk_next),) * 2]
        for alpha in spec.aspect_ratios[level]:
            w, h = sk * sqrt(alpha), sk / sqrt(alpha)
            sizes += [(w, h), (h, w)]
        for w, h in sizes:  # size-major, then rows, then columns (as DefaultBoxes emits them)
            for i in range(fsize):
                for j in range(fsize):
                    rows.append(((j + 0.5) / fk, (i + 0.5) / fk, w, h))
    boxes = np.clip(np.array(rows, dtype=np.float32), 0.0, 1.0)
    boxes.flags.writeable = False
    return boxes


def default_boxes(spec: PriorSpec) -> np.ndarray:
    """Default boxes as float32 (num_priors, 4) clamped (cx, cy, w, h), in head-output order.

    Computed in float64, cast to float32, then clamped to [0, 1] on the xywh form, exactly as the
    reference generator. The array is cached and read-only.
    """
    return _default_boxes(spec)


def xywh_to_ltrb(boxes: np.ndarray) -> np.ndarray:
    """(…, 4) (cx, cy, w, h) -> (l, t, r, b) in the same dtype; no clamping."""
    import numpy as np

    cx, cy, w, h = np.moveaxis(boxes, -1, 0)
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)
