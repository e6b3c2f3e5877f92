"""Raw head outputs of a batch -> detections: candidate scores, box decode, NMS."""

from __future__ import annotations

import numpy as np

from postprocess.decode import candidate_scores, decode_boxes
from postprocess.nms import Detections, NmsParams, Variant, nms
from postprocess.priors import PriorSpec, default_boxes


def detect(ploc: np.ndarray, plabel: np.ndarray, spec: PriorSpec = PriorSpec(), params: NmsParams = NmsParams(),
           variant: Variant = "reference", background: int = 0) -> Detections:
    """ploc (B, 4, A) and plabel (B, C, A) float32 -> detections of the batch (normalised ltrb boxes).

    Only anchors that can pass the score threshold are softmaxed and decoded; the result is the
    same as decoding everything first.
    """
    if ploc.ndim != 3 or plabel.ndim != 3 or ploc.shape[0] != plabel.shape[0]:
        raise ValueError(f"expected ploc (B, 4, A) and plabel (B, C, A), got {ploc.shape} and {plabel.shape}")
    dboxes = default_boxes(spec)
    cand = candidate_scores(plabel, params.score_threshold, background)
    boxes = decode_boxes(ploc[cand.image, :, cand.anchor], dboxes[cand.anchor], spec.scale_xy, spec.scale_wh)
    return nms(cand.image, cand.anchor, boxes, cand.scores, params, variant, background)
