"""Synthetic final-detections outputs (boxes, scores, labels, num_detections) from known boxes, for tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from postprocess.heads.final_detections import FinalDetectionsHead


def final_exact_outputs(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray], head: "FinalDetectionsHead",
                        images: Sequence) -> tuple[np.ndarray, ...]:
    """Per image: boxes (k, 4) normalised ltrb of the original image, labels (k,) foreground 0..C-2 ->
    the fixed-K outputs (boxes, scores, labels, num_detections) of a final-detections head, boxes in
    the resized image (`images` carry width/height and resized_width/resized_height) placed so that
    the COCO rows give back the normalised boxes exactly (the +offset width is undone)."""
    count, k_max = len(boxes), head.detections
    out_boxes = np.zeros((count, k_max, 4), np.float32)
    scores = np.zeros((count, k_max), np.float32)
    out_labels = np.zeros((count, k_max), np.int64)
    counts = np.zeros(count, np.int64)
    for b, (bx, lb, im) in enumerate(zip(boxes, labels, images)):
        bx = np.asarray(bx, np.float64).reshape(-1, 4)
        rx, ry = im.width / im.resized_width, im.height / im.resized_height
        l, t, r, btm = bx[:, 0] * im.width, bx[:, 1] * im.height, bx[:, 2] * im.width, bx[:, 3] * im.height
        out_boxes[b, :len(bx)] = np.stack([l / rx, t / ry, (r - head.pixel_offset) / rx,
                                           (btm - head.pixel_offset) / ry], axis=-1)
        scores[b, :len(bx)] = 1.0
        out_labels[b, :len(bx)] = np.asarray(lb) + 1
        counts[b] = len(bx)
    return out_boxes, scores, out_labels, counts


def outputs_from_boxes(head: "FinalDetectionsHead", boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                       images: Sequence | None = None) -> tuple[np.ndarray, ...]:
    """final_exact_outputs for the registry (postprocess.heads.HeadKind); needs the images' sizes."""
    if images is None:
        raise ValueError("a final-detections head needs the images' original and resized sizes")
    return final_exact_outputs(boxes, labels, head, images)
