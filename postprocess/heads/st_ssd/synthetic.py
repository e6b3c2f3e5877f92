"""Synthetic ST SSD outputs (scores, offsets, anchors) from known boxes, for tests (postprocess.synthetic).

The model's anchors are an output of the graph; here a plain grid stands in for them: 5 levels of
strides 8 ... 128 on the 256 x 256 input, 5 boxes per location (1364 locations, 6820 anchors).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np

from postprocess.heads.st_ssd.coder import encode_corners
from postprocess.synthetic import best_anchors

if TYPE_CHECKING:
    from postprocess.heads.st_ssd import StSsdHead

INPUT = 256
STRIDES = (8, 16, 32, 64, 128)
SHAPES = ((1.0, 1.0), (1.41, 1.41), (1.41, 0.71), (0.71, 1.41), (2.0, 2.0))  # (w, h) in units of 4 strides


@lru_cache(maxsize=1)
def grid_anchors() -> np.ndarray:
    """(6820, 4) float32 normalised (xmin, ymin, xmax, ymax): location-major, 5 shapes per location."""
    levels = []
    for stride in STRIDES:
        cells = INPUT // stride
        centres = (np.arange(cells) + 0.5) * stride / INPUT
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        size = np.array(SHAPES) * 4 * stride / INPUT
        half = np.broadcast_to(size / 2, (cells * cells, len(SHAPES), 2))
        centre = np.stack([cx.ravel(), cy.ravel()], axis=-1)[:, None, :]
        levels.append(np.concatenate([centre - half, centre + half], axis=-1).reshape(-1, 4))
    anchors = np.concatenate(levels).astype(np.float32)
    anchors.flags.writeable = False
    return anchors


def st_exact_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], head: "StSsdHead"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: boxes (k, 4) normalised ltrb and labels (k,) foreground 0..C-2 -> float32 scores (B, A, C),
    offsets (B, A, 4), anchors (B, A, 4): each box on its best free anchor with probability 1 for its class,
    every other anchor background with probability 1."""
    anchors = grid_anchors()
    count, n = len(boxes), len(anchors)
    scores = np.zeros((count, n, head.num_classes), np.float32)
    scores[:, :, head.background_index] = 1.0
    offsets = np.zeros((count, n, 4), np.float32)
    columns = [c for c in range(head.num_classes) if c != head.background_index]
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        bx = np.asarray(bx, np.float64).reshape(-1, 4)
        for k, a in best_anchors(bx, anchors.astype(np.float64)):
            offsets[b, a] = encode_corners(bx[k], anchors[a])
            scores[b, a, head.background_index] = 0.0
            scores[b, a, columns[int(lb[k])]] = 1.0
    return scores, offsets, np.broadcast_to(anchors, (count, n, 4)).copy()


def outputs_from_boxes(head: "StSsdHead", boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                       images: Sequence | None = None) -> tuple[np.ndarray, ...]:
    """st_exact_outputs for the registry (postprocess.heads.HeadKind)."""
    return st_exact_outputs(boxes, labels, head)
