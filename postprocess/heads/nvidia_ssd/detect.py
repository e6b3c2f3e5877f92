"""NVIDIA SSD outputs of a batch -> detections -> COCO rows, in two steps.

`postprocess.candidates.select` does the work that touches every logit (the per-anchor max and the
candidate softmax); `finish` decodes the few candidate boxes and runs NMS; `result_rows` maps them to
the original images. `detect` is select + finish. The split lets a reader thread run `select` on
each batch while the data is still in cache, and hand over only the candidates.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from postprocess.candidates import Selected, select
from postprocess.heads.nvidia_ssd.coder import decode_boxes
from postprocess.heads.nvidia_ssd.nms import Detections, NmsParams, Variant, nms
from postprocess.heads.nvidia_ssd.priors import PriorSpec, default_boxes
from postprocess.images import ImageLike


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
    return finish(select(ploc, plabel, params.score_threshold, background), spec, params, variant, background)


def result_rows(dets: Detections, images: Sequence[ImageLike], inv_map: np.ndarray) -> np.ndarray:
    """(n, 7) rows [image_id, x, y, w, h, score, category_id] (postprocess.coco.ROW_FIELDS), boxes scaled by
    the original size (MLPerf/NVIDIA SSD eval.py coco_eval).

    `dets.image` indexes `images`. Boxes and scores are computed in float32 like the reference
    (no clipping); the array is float64 so that any image id stays exact.
    """
    idx = dets.image
    size = np.array([(im.width, im.height) for im in images], dtype=np.float32).reshape(-1, 2)
    w, h = size[idx, 0], size[idx, 1]
    box = dets.box
    rows = np.empty((len(dets), 7), dtype=np.float64)
    rows[:, 0] = np.array([im.id for im in images], dtype=np.int64)[idx] if len(images) else 0
    rows[:, 1] = box[:, 0] * w
    rows[:, 2] = box[:, 1] * h
    rows[:, 3] = (box[:, 2] - box[:, 0]) * w
    rows[:, 4] = (box[:, 3] - box[:, 1]) * h
    rows[:, 5] = dets.score
    rows[:, 6] = inv_map[dets.label]
    return rows
