"""Fixed-K "final detections" outputs -> COCO result rows, with maskrcnn-benchmark's conventions.

For detectors whose graph ends in final detections (boxes (N, K, 4) in resized-image pixels,
scores (N, K), labels (N, K), num_detections (N,)), such as the Faster R-CNN export. Verified in
facebookresearch/maskrcnn-benchmark (HEAD 57eec25b):

- `data/datasets/evaluation/coco/coco_eval.py` prepare_for_coco_detection: BoxList.resize to the
  original (width, height), i.e. x * (original_w / resized_w) and y * (original_h / resized_h)
  with separate ratios (resized = the unpadded size), then convert("xywh"), which is
  (x1, y1, x2 - x1 + 1, y2 - y1 + 1) (`structures/bounding_box.py`, TO_REMOVE = 1). The boxes
  are float32 tensors and torch multiplies them by the Python-float ratio after rounding it to
  float32 (measured), which is what is done here, so the rows are bit-identical.
- `data/datasets/coco.py`: json_category_id_to_contiguous_id = {v: i + 1 for i, v in
  enumerate(self.coco.getCatIds())}. pycocotools returns getCatIds() in the file's category order
  (not sorted; in instances_val2017.json that order is ascending), so label k is the k-th category
  of the file: postprocess.coco.category_ids(categories, 81, background=0) is that mapping.
- `data/build.py` build_dataset sets remove_images_without_annotations = is_train, so the test set
  keeps all 5000 val2017 images; an image without detections still counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from postprocess.coco import ROW_FIELDS
from postprocess.errors import PostprocessError

LEGACY_PIXEL = 1.0  # w = x2 - x1 + 1


@dataclass(frozen=True)
class ResizedImage:
    """An evaluated image: COCO id, original size, and the resized (unpadded) size the model saw.

    Any record with these attributes works, e.g. preprocess.manifest.ImageRecord of a manifest
    written for a resize-and-pad model.
    """

    id: int
    width: int
    height: int
    resized_width: int
    resized_height: int


def coco_rows(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, num_detections: np.ndarray,
              images: Sequence[ResizedImage], inv_map: np.ndarray, pixel_offset: float = LEGACY_PIXEL) -> np.ndarray:
    """(n, 7) rows [image_id, x, y, w, h, score, category_id] (ROW_FIELDS) from fixed-K outputs.

    boxes (N, K, 4) x1 y1 x2 y2 in the resized image; only the first num_detections[i] slots of
    image i are used; w = x2 - x1 + pixel_offset. Computed in float32 like the reference; returned
    as float64 (exact ids).
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    counts = np.asarray(num_detections).astype(np.int64).reshape(-1)
    if len(counts) != len(images) or boxes.shape[0] != len(images):
        raise PostprocessError(f"{boxes.shape[0]} images of outputs and {len(counts)} counts for {len(images)} "
                               "image records")
    if (counts < 0).any() or (counts > boxes.shape[1]).any():
        raise PostprocessError(f"num_detections must be within 0..{boxes.shape[1]}, got {counts.tolist()}")
    image, slot = np.nonzero(np.arange(boxes.shape[1])[None, :] < counts[:, None])
    rx = np.array([np.float32(im.width / im.resized_width) for im in images], dtype=np.float32)[image]
    ry = np.array([np.float32(im.height / im.resized_height) for im in images], dtype=np.float32)[image]
    box = boxes[image, slot]
    x1, y1, x2, y2 = box[:, 0] * rx, box[:, 1] * ry, box[:, 2] * rx, box[:, 3] * ry
    rows = np.empty((len(image), len(ROW_FIELDS)), dtype=np.float64)
    rows[:, 0] = np.array([im.id for im in images], dtype=np.int64)[image] if len(images) else 0
    rows[:, 1], rows[:, 2] = x1, y1
    offset = np.float32(pixel_offset)
    rows[:, 3], rows[:, 4] = x2 - x1 + offset, y2 - y1 + offset
    rows[:, 5] = np.asarray(scores, dtype=np.float32)[image, slot]
    rows[:, 6] = inv_map[np.asarray(labels).astype(np.int64)[image, slot]]
    return rows
