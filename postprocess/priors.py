"""Default-box (prior) specification of an SSD300-style detector."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PriorSpec:
    """Parameters of the SSD default-box generator and box coder (reference §6)."""

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
