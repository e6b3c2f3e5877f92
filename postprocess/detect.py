"""Raw head outputs of a batch -> detections, in two steps.

`select` does the work that touches every logit (the per-anchor max and the candidate softmax);
`finish` decodes the few candidate boxes and runs NMS. `detect` is both. The split lets a reader
thread run `select` on each batch while the data is still in cache, and hand over only the
candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def select(ploc: np.ndarray, plabel: np.ndarray, params: NmsParams = NmsParams(), background: int = 0) -> Selected:
    """ploc (B, 4, A), plabel (B, C, A) -> the anchors that can pass the score threshold."""
    if ploc.ndim != 3 or plabel.ndim != 3 or ploc.shape[0] != plabel.shape[0] or ploc.shape[2] != plabel.shape[2]:
        raise ValueError(f"expected ploc (B, 4, A) and plabel (B, C, A), got {ploc.shape} and {plabel.shape}")
    cand = candidate_scores(plabel, params.score_threshold, background)
    return Selected(cand, np.asarray(ploc[cand.image, :, cand.anchor], dtype=np.float32), len(ploc))


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
