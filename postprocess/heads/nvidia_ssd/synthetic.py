"""Synthetic NVIDIA SSD outputs (ploc, plabel) from known boxes, for tests and benchmarks (postprocess.synthetic)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from postprocess.heads.nvidia_ssd.coder import encode_boxes
from postprocess.heads.nvidia_ssd.priors import PriorSpec, default_boxes, xywh_to_ltrb
from postprocess.synthetic import best_anchors, realistic

if TYPE_CHECKING:
    from postprocess.heads.nvidia_ssd import NvidiaSsdHead


def exact_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], spec: PriorSpec = PriorSpec(),
                  num_classes: int = 81, background: int = 0, confidence: float = 30.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per image: boxes (k, 4) normalised ltrb and labels (k,) -> float32 ploc (B, 4, A), plabel (B, C, A).

    Each box goes to its best-overlapping default box not already used in that image.
    """
    dboxes = default_boxes(spec)
    priors_ltrb = xywh_to_ltrb(dboxes.astype(np.float64))
    count, n = len(boxes), len(dboxes)
    ploc = np.zeros((count, 4, n), np.float32)
    plabel = np.zeros((count, num_classes, n), np.float32)
    plabel[:, background] = confidence
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        for k, a in best_anchors(np.asarray(bx, np.float64).reshape(-1, 4), priors_ltrb):
            ploc[b, :, a] = encode_boxes(bx[k], dboxes[a], spec.scale_xy, spec.scale_wh)
            plabel[b, background, a] = 0.0
            plabel[b, int(lb[k]), a] = confidence
    return ploc, plabel


def realistic_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], rng: np.random.Generator,
                      spec: PriorSpec = PriorSpec(), num_classes: int = 81, background: int = 0,
                      dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Noisy detector-like outputs around the given objects (normalised ltrb boxes, labels 1..C-1)."""
    dboxes = default_boxes(spec)
    ploc, plabel = realistic(boxes, labels, rng, xywh_to_ltrb(dboxes.astype(np.float64)),
                             lambda bx, idx: encode_boxes(bx, dboxes[idx], spec.scale_xy, spec.scale_wh),
                             num_classes, background)
    return ploc.astype(dtype), plabel.astype(dtype)


def outputs_from_boxes(head: "NvidiaSsdHead", boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                       images: Sequence | None = None) -> tuple[np.ndarray, ...]:
    """exact_outputs for the registry (postprocess.heads.HeadKind): labels are foreground indices 0..C-2."""
    return exact_outputs(boxes, [np.asarray(lb) + 1 for lb in labels], head.priors, head.num_classes,
                         head.background_index)
