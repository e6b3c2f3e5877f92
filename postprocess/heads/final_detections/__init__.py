"""Heads whose graph ends in final detections (fixed K slots + a count), and their decoder.

The exported model has already decoded, clipped and run NMS; eval only maps each image's first
num_detections[i] slots to COCO rows (rows.coco_rows): boxes from the resized image back to the
original with the per-image resized size the manifest records, (x1, y1, x2 - x1 + offset,
y2 - y1 + offset), labels to category ids in file order. The NMS policy describes what the graph
does; eval cannot change it.

maskrcnn-benchmark (`maskrcnn_benchmark/modeling/roi_heads/box_head/inference.py` PostProcessor,
`maskrcnn_benchmark/data/datasets/evaluation/coco/coco_eval.py` prepare_for_coco_detection): per
class score > 0.05, NMS 0.5 with +1 areas, 100 per image; the results json is written from Python
floats (`tolist()` of float32 boxes) and COCO loadRes computes the area in double; all 5000 val2017
images are evaluated.

    rows       coco_rows, ResizedImage              decoder    FinalDetectionsDecoder
    synthetic  outputs from known boxes (tests)
"""

from __future__ import annotations

from dataclasses import dataclass

from postprocess.heads.final_detections.decoder import FinalDetectionsDecoder
from postprocess.heads.final_detections.synthetic import outputs_from_boxes
from postprocess.heads.spec import DetectionHead, HeadKind, NmsPolicy
from stageio.tensor import TensorSpec

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


def final_detection_outputs(detections: int) -> tuple[TensorSpec, ...]:
    return (TensorSpec("boxes", (detections, 4), meaning="x1 y1 x2 y2, resized-image pixels, best first"),
            TensorSpec("scores", (detections,), meaning="class probability of each detection, 0 in empty slots"),
            TensorSpec("labels", (detections,), "int64", meaning="class 1..80, 0 in empty slots"),
            TensorSpec("num_detections", (), "int64", meaning="filled slots"))


MASKRCNN_BENCHMARK_RCNN = FinalDetectionsHead(
    outputs=final_detection_outputs(100), num_classes=81, background_index=0, policies=(MASKRCNN_BENCHMARK_NMS,),
    evaluated_images="all", detections=100)

KIND = HeadKind(FinalDetectionsHead, FinalDetectionsDecoder, outputs_from_boxes)
