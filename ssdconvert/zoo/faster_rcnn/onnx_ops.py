"""The two ONNX operators the fixed-size detector needs, as autograd Functions with a `symbolic`.

Each forward computes in plain torch exactly what the emitted ONNX node computes, so the PyTorch
module and its export agree by construction (and tests compare both with ONNX Runtime/OpenVINO).

- `nms_keep_mask`: ONNX NonMaxSuppression (center_point_box 0) whose data-dependent
  `selected_indices` are scattered (ScatterND) into a fixed-shape 0/1 mask like `scores`, so every
  tensor after it has a static shape. Semantics as ONNX Runtime implements them (measured, see
  tests): a box is a candidate if score > score_threshold, candidates are visited by descending
  score, a visited box removes later ones with IoU > iou_threshold, IoU = area(inter) /
  (area1 + area2 - inter) with continuous areas (x2 - x1)(y2 - y1). Callers feed boxes with
  x2 + 1, y2 + 1 to get the legacy +1 geometry, and distinct rank scores so that no runtime's
  tie-breaking matters. OpenVINO's CPU plugin suppresses at IoU >= threshold instead (measured);
  the two differ only when an IoU equals the threshold exactly in float32.
- `roi_align`: ONNX RoiAlign, average mode, with `coordinate_transformation_mode` written
  explicitly as "output_half_pixel" (no -0.5 shift = maskrcnn-benchmark / torchvision
  aligned=False) at opset >= 16. RoiAlign-10 (opsets 11-15) has no such attribute and its only
  behaviour is the unshifted one, so the node is written without it there. At opset 16 an
  attribute-less node means "half_pixel" by the spec (ONNX Runtime ignores that, ATC honours it),
  which is why it is never left out.
"""

from __future__ import annotations

import numpy as np
import torch

from ssdconvert.zoo.faster_rcnn.boxes import greedy_keep, roi_align as _roi_align

ROI_ALIGN_MODE_OPSET = 16  # first opset whose RoiAlign has coordinate_transformation_mode


def continuous_iou(boxes: np.ndarray) -> np.ndarray:
    """(n, n) IoU as ONNX Runtime's NonMaxSuppression computes it (float32, no +1; 0 if degenerate)."""
    x1 = np.minimum(boxes[:, 0], boxes[:, 2])
    x2 = np.maximum(boxes[:, 0], boxes[:, 2])
    y1 = np.minimum(boxes[:, 1], boxes[:, 3])
    y2 = np.maximum(boxes[:, 1], boxes[:, 3])
    w = np.maximum(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), np.float32(0))
    h = np.maximum(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), np.float32(0))
    inter = w * h
    areas = (x2 - x1) * (y2 - y1)
    union = areas[:, None] + areas[None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    valid = (inter > 0) & (areas[:, None] > 0) & (areas[None] > 0) & (union > 0)
    return np.where(valid, iou, np.float32(0))


def nms_keep(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_output: int,
             score_threshold: float) -> np.ndarray:
    """One (batch, class) row of ONNX NonMaxSuppression: a boolean keep mask over the boxes."""
    keep = np.zeros(len(scores), dtype=bool)
    candidates = np.flatnonzero(scores > np.float32(score_threshold))
    if len(candidates) == 0 or max_output <= 0:
        return keep
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    kept = order[greedy_keep(continuous_iou(boxes[order]) > np.float32(iou_threshold))]
    keep[kept[:max_output]] = True
    return keep


class _NmsKeepMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx, boxes, scores, iou_threshold: float, max_output: int, score_threshold: float):
        b, c, n = scores.shape
        box_np = boxes.detach().float().numpy()
        score_np = scores.detach().float().numpy()
        mask = np.zeros((b, c, n), dtype=np.float32)
        for i in range(b):
            for j in range(c):
                mask[i, j] = nms_keep(box_np[i], score_np[i, j], iou_threshold, max_output, score_threshold)
        return torch.from_numpy(mask)

    @staticmethod
    def symbolic(g, boxes, scores, iou_threshold: float, max_output: int, score_threshold: float):
        selected = g.op("NonMaxSuppression", boxes, scores,
                        g.op("Constant", value_t=torch.tensor([max_output], dtype=torch.int64)),
                        g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32)),
                        g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float32)))
        count = g.op("Slice", g.op("Shape", selected), g.op("Constant", value_t=torch.tensor([0])),
                     g.op("Constant", value_t=torch.tensor([1])))
        ones = g.op("ConstantOfShape", count, value_t=torch.tensor([1.0], dtype=torch.float32))
        zeros = g.op("ConstantOfShape", g.op("Shape", scores), value_t=torch.tensor([0.0], dtype=torch.float32))
        return g.op("ScatterND", zeros, selected, ones)


def nms_keep_mask(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_output: int,
                  score_threshold: float = 0.0) -> torch.Tensor:
    """boxes (B, n, 4), scores (B, C, n) -> float 0/1 mask (B, C, n) of the boxes NMS keeps per class."""
    return _NmsKeepMask.apply(boxes, scores, float(iou_threshold), int(max_output), float(score_threshold))


class _RoiAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, rois, batch_index, spatial_scale: float, output_size: int, sampling_ratio: int):
        return _roi_align(features, rois, batch_index, spatial_scale, output_size, sampling_ratio)

    @staticmethod
    def symbolic(g, features, rois, batch_index, spatial_scale: float, output_size: int, sampling_ratio: int):
        attributes = {"mode_s": "avg", "output_height_i": output_size, "output_width_i": output_size,
                      "sampling_ratio_i": sampling_ratio, "spatial_scale_f": spatial_scale}
        if g.opset >= ROI_ALIGN_MODE_OPSET:
            attributes["coordinate_transformation_mode_s"] = "output_half_pixel"
        return g.op("RoiAlign", features, rois, batch_index, **attributes)


def roi_align(features: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor, spatial_scale: float,
              output_size: int, sampling_ratio: int) -> torch.Tensor:
    """features (B, C, H, W), rois (R, 4), batch_index (R,) int64 -> (R, C, s, s), aligned=False."""
    return _RoiAlign.apply(features, rois, batch_index, float(spatial_scale), int(output_size), int(sampling_ratio))
