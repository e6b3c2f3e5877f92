"""The ST SSD head's decoder: one batch of (scores, offsets, anchors) -> COCO rows.

`select` runs the whole per-image post-processing (postprocess.heads.st_ssd.nms: the policy needs
every score of the image, and what it hands over is the few final detections); `rows` scales the
normalised boxes by each image's original size, as the benchmark and TF OD API's COCO export do:
x = xmin * width, w = xmax * width - x, in float64 from the float32 boxes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from postprocess.heads.spec import NmsPolicy
from postprocess.heads.st_ssd.nms import SELECTIONS, Detections
from postprocess.images import ImageLike

if TYPE_CHECKING:
    from postprocess.heads.st_ssd import StSsdHead


class StSsdDecoder:
    """Raw (scores, offsets, anchors) of a batch -> COCO rows with one of the head's NMS policies."""

    float32_rows = False  # rows are float64 products of the float32 boxes and the image sizes

    def __init__(self, head: "StSsdHead", policy: NmsPolicy):
        if policy.selection not in SELECTIONS:
            raise ValueError(f"NMS policy {policy.name}: selection {policy.selection} is not one of the ST SSD "
                             f"head's ({', '.join(SELECTIONS)})")
        self.head, self.policy = head, policy
        self.run = SELECTIONS[policy.selection]

    def select(self, arrays: Sequence[np.ndarray]) -> list[Detections]:
        """Per output a (B, A, k) array or B per-image arrays -> each image's detections."""
        scores, offsets, anchors = arrays
        return [self.run(np.asarray(scores[b], np.float32), np.asarray(offsets[b], np.float32),
                         np.asarray(anchors[b], np.float32), self.policy, self.head.background_index)
                for b in range(len(scores))]

    def rows(self, selected: list[Detections], images: Sequence[ImageLike], inv_map: np.ndarray) -> np.ndarray:
        """[image_id, x, y, w, h, score, category_id] per detection; a detection labelled background (ST's
        argmax below a 0.5 threshold) has no category and is left out."""
        parts = []
        for found, image in zip(selected, images):
            keep = found.label != self.head.background_index
            box = found.box[keep].astype(np.float64) * np.array([image.width, image.height] * 2, np.float64)
            part = np.empty((len(box), 7), dtype=np.float64)
            part[:, 0] = image.id
            part[:, 1:3] = box[:, :2]
            part[:, 3:5] = box[:, 2:] - box[:, :2]
            part[:, 5] = found.score[keep]
            part[:, 6] = inv_map[found.label[keep]]
            parts.append(part)
        return np.concatenate(parts) if parts else np.zeros((0, 7))
