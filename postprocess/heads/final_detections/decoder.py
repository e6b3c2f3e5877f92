"""The final-detections head's decoder: fixed-K outputs of a batch -> COCO rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from postprocess.errors import PostprocessError
from postprocess.heads.final_detections.rows import coco_rows
from postprocess.heads.spec import NmsPolicy
from postprocess.images import ImageLike

if TYPE_CHECKING:
    from postprocess.heads.final_detections import FinalDetectionsHead


class FinalDetectionsDecoder:
    """Fixed-K outputs of a batch -> COCO rows; nothing to select on the reader thread."""

    float32_rows = False  # maskrcnn-benchmark writes a results json: loadRes computes the area in double

    def __init__(self, head: "FinalDetectionsHead", policy: NmsPolicy):
        self.head, self.policy = head, policy

    def select(self, arrays: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        """Per output (B, *shape), copied: the inputs may be views of mapped files."""
        return [np.stack(per_image) for per_image in arrays]

    def rows(self, selected: Sequence[np.ndarray], images: Sequence[ImageLike], inv_map: np.ndarray) -> np.ndarray:
        unsized = [im.stem for im in images if not getattr(im, "resized_width", None)]
        if unsized:
            raise PostprocessError(f"the records of {len(unsized)} image(s) (first {unsized[0]}) have no resized "
                                   "size, which final-detection boxes need: preprocess with this ssdconvert "
                                   "(manifest version 3) for this model")
        boxes, scores, labels, counts = selected
        return coco_rows(boxes, scores, labels, counts, images, inv_map, pixel_offset=self.head.pixel_offset)
