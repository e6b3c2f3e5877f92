"""Heads whose graph ends in final detections (fixed K slots + a count), and their decoder.

The exported model has already decoded, clipped and run NMS; eval only maps each image's first
num_detections[i] slots to COCO rows (postprocess.final_detections.coco_rows): boxes from the
resized image back to the original with the per-image resized size the manifest records,
(x1, y1, x2 - x1 + offset, y2 - y1 + offset), labels to category ids in file order. The NMS policy
describes what the graph does; eval cannot change it.

maskrcnn-benchmark (`maskrcnn_benchmark/modeling/roi_heads/box_head/inference.py` PostProcessor,
`maskrcnn_benchmark/data/datasets/evaluation/coco/coco_eval.py` prepare_for_coco_detection): per
class score > 0.05, NMS 0.5 with +1 areas, 100 per image; the results json is written from Python
floats (`tolist()` of float32 boxes) and COCO loadRes computes the area in double; all 5000 val2017
images are evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from postprocess.errors import PostprocessError
from postprocess.heads.spec import DetectionHead, NmsPolicy, OutputTensor
from postprocess.images import ImageLike

MASKRCNN_BENCHMARK_NMS = NmsPolicy(
    name="in-graph", summary="maskrcnn-benchmark box head, run inside the exported graph: per class score > 0.05, "
                             "NMS suppressing IoU > 0.5 (+1 areas), 100 per image",
    score_threshold=0.05, iou_threshold=0.5, suppress_at_equal=False, selection="per-class", pre_nms_top_k=None,
    max_per_image=100)


@dataclass(frozen=True)
class FinalDetectionsHead(DetectionHead):
    """Outputs boxes (K, 4) x1 y1 x2 y2 in resized-image pixels, scores (K,), labels (K,), count ()."""

    detections: int = 100
    pixel_offset: float = 1.0  # COCO width = x2 - x1 + pixel_offset (legacy +1 geometry)

    kind = "final-detections"

    def describe(self) -> dict:
        return {**super().describe(),
                "detections_per_image": self.detections,
                "boxes": "x1 y1 x2 y2 in pixels of the resized image (before padding); slots past "
                         "num_detections are zero",
                "coco_rows": f"scaled by original / resized size (x and y apart), width = x2 - x1 + "
                             f"{self.pixel_offset:g}",
                "categories": "label k (1..80) -> k-th category of the annotation file"}

    def summary(self) -> list[str]:
        return [f"outputs {self.detections} final detections per image (boxes in resized-image pixels, scores, "
                f"labels, count); COCO width x2 - x1 + {self.pixel_offset:g}", *super().summary()]

    def category_ids(self, categories: Sequence[Mapping]) -> np.ndarray:
        from postprocess.coco import category_ids

        return category_ids(categories, self.num_classes, self.background_index)


def final_detection_outputs(detections: int) -> tuple[OutputTensor, ...]:
    return (OutputTensor("boxes", (detections, 4), "x1 y1 x2 y2, resized-image pixels, best first"),
            OutputTensor("scores", (detections,), "class probability of each detection, 0 in empty slots"),
            OutputTensor("labels", (detections,), "class 1..80, 0 in empty slots", dtype="int64"),
            OutputTensor("num_detections", (), "filled slots", dtype="int64"))


MASKRCNN_BENCHMARK_RCNN = FinalDetectionsHead(
    outputs=final_detection_outputs(100), num_classes=81, background_index=0, policies=(MASKRCNN_BENCHMARK_NMS,),
    evaluated_images="all", detections=100)


class FinalDetectionsDecoder:
    """Fixed-K outputs of a batch -> COCO rows; nothing to select on the reader thread."""

    float32_rows = False  # maskrcnn-benchmark writes a results json: loadRes computes the area in double

    def __init__(self, head: FinalDetectionsHead, policy: NmsPolicy):
        self.head, self.policy = head, policy

    def select(self, arrays: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        """Per output (B, *shape), copied: the inputs may be views of mapped files."""
        return [np.stack(per_image) for per_image in arrays]

    def rows(self, selected: Sequence[np.ndarray], images: Sequence[ImageLike], inv_map: np.ndarray) -> np.ndarray:
        from postprocess.final_detections import coco_rows

        unsized = [im.stem for im in images if not getattr(im, "resized_width", None)]
        if unsized:
            raise PostprocessError(f"the records of {len(unsized)} image(s) (first {unsized[0]}) have no resized "
                                   "size, which final-detection boxes need: preprocess with this ssdconvert "
                                   "(manifest version 3) for this model")
        boxes, scores, labels, counts = selected
        return coco_rows(boxes, scores, labels, counts, images, inv_map, pixel_offset=self.head.pixel_offset)
