"""Raw head outputs of a batch -> detections, in two steps.

`select` does the work that touches every logit (the per-anchor max and the candidate softmax);
`finish` decodes the few candidate boxes and runs NMS. `detect` is both. The split lets a reader
thread run `select` on each batch while the data is still in cache, and hand over only the
candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from postprocess.decode import Candidates, candidate_scores, decode_boxes
from postprocess.nms import Detections, NmsParams, Variant, nms
from postprocess.priors import PriorSpec, default_boxes


@dataclass(frozen=True)
class Selected:
    """Candidates of a batch with their regressions: loc (n, 4) = ploc[image, :, anchor]."""

    candidates: Candidates
    loc: np.ndarray
    batch: int


def select(ploc: np.ndarray | Sequence[np.ndarray], plabel: np.ndarray | Sequence[np.ndarray],
           params: NmsParams = NmsParams(), background: int = 0) -> Selected:
    """ploc (B, 4, A), plabel (B, C, A) -> the anchors that can pass the score threshold.

    Either may be a sequence of per-image (4, A) / (C, A) arrays instead (the reader's mapped files).
    """
    shapes = [(len(x), *x[0].shape) if len(x) else (0,) for x in (ploc, plabel)]
    if (len(shapes[0]) != 3 or len(shapes[1]) != 3 or shapes[0][0] != shapes[1][0]
            or shapes[0][2] != shapes[1][2]) and shapes[0][0]:
        raise ValueError(f"expected ploc (B, 4, A) and plabel (B, C, A), got {tuple(shapes[0])} and {tuple(shapes[1])}")
    cand = candidate_scores(plabel, params.score_threshold, background)
    bounds = np.searchsorted(cand.image, np.arange(len(ploc) + 1))
    loc = [np.take(ploc[b], cand.anchor[bounds[b]:bounds[b + 1]], axis=1).T for b in range(len(ploc))]
    return Selected(cand, np.asarray(np.concatenate(loc) if loc else np.zeros((0, 4)), dtype=np.float32), len(ploc))


def finish(selected: Selected, spec: PriorSpec = PriorSpec(), params: NmsParams = NmsParams(),
           variant: Variant = "reference", background: int = 0) -> Detections:
    """Decode the candidate boxes (normalised ltrb) and run NMS."""
    cand = selected.candidates
    boxes = decode_boxes(selected.loc, default_boxes(spec)[cand.anchor], spec.scale_xy, spec.scale_wh)
    return nms(cand.image, cand.anchor, boxes, cand.scores, params, variant, background)


def detect(ploc: np.ndarray, plabel: np.ndarray, spec: PriorSpec = PriorSpec(), params: NmsParams = NmsParams(),
           variant: Variant = "reference", background: int = 0) -> Detections:
    """ploc (B, 4, A) and plabel (B, C, A) float32 -> detections of the batch (normalised ltrb boxes).

    Only anchors that can pass the score threshold are softmaxed and decoded; the result is the
    same as decoding everything first.
    """
    return finish(select(ploc, plabel, params, background), spec, params, variant, background)
