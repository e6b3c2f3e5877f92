"""maskrcnn-benchmark's legacy box geometry in plain torch: anchors, coder, clip, IoU, NMS, levels.

"Legacy" means the Detectron pixel convention: a box (x1, y1, x2, y2) covers x2 - x1 + 1 pixels.
Verified in facebookresearch/maskrcnn-benchmark (HEAD 57eec25b):

- `rpn/anchor_generator.py` `generate_anchors`: base window (0, 0, stride-1, stride-1); for each
  ratio ws = round(sqrt(area / ratio)), hs = round(ws * ratio) (numpy round: half to even); then
  scaled by size/stride around the centre x1 + 0.5 (w - 1); `grid_anchors` adds shifts (j*stride,
  i*stride), location-major and anchor-minor.
- `box_coder.py` `BoxCoder.decode`: w = x2 - x1 + 1, cx = x1 + 0.5 w; dw, dh clamped at
  log(1000/16); x1' = px - 0.5 pw, x2' = px + 0.5 pw - 1 (the same operation order is kept here,
  so results are bit-identical in float32).
- `structures/bounding_box.py` `clip_to_image(remove_empty=False)`: x in [0, w - 1], y in [0, h - 1].
- `structures/boxlist_ops.py` `remove_small_boxes`: keep (x2 - x1 + 1) >= min and (y2 - y1 + 1) >= min.
- `csrc/cpu/nms_cpu.cpp`: areas and intersections with +1; suppress at ovr >= thr; the kept
  indices are returned in ascending input order (`nonzero(suppressed == 0)`). `csrc/cuda/nms.cu`
  differs only in `devIoU(...) > thr`. The sort of the scores is not stable there; here ties go to
  the lower index (what ONNX TopK specifies), which makes every path deterministic.
- `modeling/poolers.py` `LevelMapper`: floor(4 + log2(sqrt(area) / 224 + 1e-6)) clamped to
  [2, 5], area with +1, computed in float32 with torch ops as here.
- `csrc/cpu/ROIAlign_cpu.cpp` (the CUDA kernel is the same arithmetic): no -0.5 shift, RoI width
  and height forced to >= 1, sampling_ratio x sampling_ratio points per bin at
  start + p * bin + (i + 0.5) * bin / ratio; a point with y < -1 or y > H (x likewise) adds 0,
  otherwise it is clamped to >= 0 and a point at or past the last row/column uses that row/column.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

TO_REMOVE = 1.0  # the legacy "+1"
ROI_CHUNK = 256  # RoIs sampled at once by roi_align (bounds the temporary to ~50 MB at C=256)
OUTSIDE = -4.0  # a grid_sample coordinate whose bilinear taps are all off the map (value 0)


def cell_anchors(stride: int, size: float, aspect_ratios: Sequence[float]) -> torch.Tensor:
    """The (len(aspect_ratios), 4) anchors of one FPN level around the cell at (0, 0), float32."""
    base = np.array([0.0, 0.0, stride - 1.0, stride - 1.0])
    w, h, cx, cy = _whctr(base)
    ratios = np.asarray(aspect_ratios, dtype=np.float64)
    ws = np.round(np.sqrt(w * h / ratios))
    hs = np.round(ws * ratios)
    scale = size / stride
    ws, hs = ws * scale, hs * scale
    anchors = np.stack([cx - 0.5 * (ws - 1), cy - 0.5 * (hs - 1), cx + 0.5 * (ws - 1), cy + 0.5 * (hs - 1)], 1)
    return torch.from_numpy(anchors).float()


def _whctr(box: np.ndarray) -> tuple[float, float, float, float]:
    w = box[2] - box[0] + 1
    h = box[3] - box[1] + 1
    return w, h, box[0] + 0.5 * (w - 1), box[1] + 0.5 * (h - 1)


def grid_anchors(cell: torch.Tensor, stride: int, height: int, width: int) -> torch.Tensor:
    """(height * width * A, 4): every cell anchor shifted to every location (location-major)."""
    shift_x = torch.arange(0, width * stride, step=stride, dtype=torch.float32)
    shift_y = torch.arange(0, height * stride, step=stride, dtype=torch.float32)
    sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")
    sx, sy = sx.reshape(-1), sy.reshape(-1)
    shifts = torch.stack((sx, sy, sx, sy), dim=1)
    return (shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4)


def decode(codes: torch.Tensor, boxes: torch.Tensor, weights: Sequence[float], clip: float) -> torch.Tensor:
    """BoxCoder.decode: codes (..., 4k) relative to boxes (..., 4) -> (..., 4k) legacy boxes."""
    widths = boxes[..., 2] - boxes[..., 0] + TO_REMOVE
    heights = boxes[..., 3] - boxes[..., 1] + TO_REMOVE
    ctr_x = boxes[..., 0] + 0.5 * widths
    ctr_y = boxes[..., 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = codes[..., 0::4] / wx
    dy = codes[..., 1::4] / wy
    dw = torch.clamp(codes[..., 2::4] / ww, max=clip)
    dh = torch.clamp(codes[..., 3::4] / wh, max=clip)
    pred_ctr_x = dx * widths[..., None] + ctr_x[..., None]
    pred_ctr_y = dy * heights[..., None] + ctr_y[..., None]
    pred_w = torch.exp(dw) * widths[..., None]
    pred_h = torch.exp(dh) * heights[..., None]
    out = torch.stack((pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h,
                       pred_ctr_x + 0.5 * pred_w - 1, pred_ctr_y + 0.5 * pred_h - 1), dim=-1)
    return out.reshape(codes.shape)


def clip_to_image(boxes: torch.Tensor, height: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Clamp x to [0, width - 1] and y to [0, height - 1]; height/width broadcast against boxes[..., 0].

    Written with maximum/minimum (not clamp with tensor bounds) so that it traces to Max/Min.
    """
    zero = torch.zeros((), dtype=boxes.dtype)
    x_max, y_max = width - TO_REMOVE, height - TO_REMOVE
    x1 = torch.minimum(torch.maximum(boxes[..., 0], zero), x_max)
    y1 = torch.minimum(torch.maximum(boxes[..., 1], zero), y_max)
    x2 = torch.minimum(torch.maximum(boxes[..., 2], zero), x_max)
    y2 = torch.minimum(torch.maximum(boxes[..., 3], zero), y_max)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def keeps_min_size(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """remove_small_boxes' mask: both legacy sides >= min_size (a NaN box fails)."""
    ws = boxes[..., 2] - boxes[..., 0] + TO_REMOVE
    hs = boxes[..., 3] - boxes[..., 1] + TO_REMOVE
    return (ws >= min_size) & (hs >= min_size)


def area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0] + TO_REMOVE) * (boxes[..., 3] - boxes[..., 1] + TO_REMOVE)


def legacy_iou(boxes: torch.Tensor) -> torch.Tensor:
    """(n, n) IoU with +1 areas and intersections, computed like nms_cpu.cpp (float32)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    w = torch.clamp(torch.minimum(x2[:, None], x2[None]) - torch.maximum(x1[:, None], x1[None]) + 1, min=0)
    h = torch.clamp(torch.minimum(y2[:, None], y2[None]) - torch.maximum(y1[:, None], y1[None]) + 1, min=0)
    inter = w * h
    return inter / (areas[:, None] + areas[None] - inter)


def score_order(scores: torch.Tensor) -> torch.Tensor:
    """Indices by descending score along the last axis, ties to the lower index (stable), like ONNX TopK."""
    return torch.sort(scores, dim=-1, descending=True, stable=True)[1]


def greedy_keep(suppresses: np.ndarray) -> np.ndarray:
    """Greedy NMS over boxes already in processing order; suppresses[i, j]: i would remove j."""
    keep = np.ones(len(suppresses), dtype=bool)
    for i in range(len(keep)):
        if keep[i]:
            keep[i + 1:] &= ~suppresses[i, i + 1:]
    return keep


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, compare: str = ">") -> torch.Tensor:
    """The reference NMS kernel: kept indices in ascending input order (legacy IoU, `compare` thr)."""
    if len(scores) == 0:
        return torch.zeros(0, dtype=torch.int64)
    order = score_order(scores)
    iou = legacy_iou(boxes[order]).numpy()
    thr = np.float32(threshold)
    suppresses = iou >= thr if compare == ">=" else iou > thr
    kept = order[torch.from_numpy(greedy_keep(suppresses))]
    return torch.sort(kept)[0]


def fpn_level(boxes: torch.Tensor, k_min: int = 2, k_max: int = 5, canonical_scale: float = 224,
              canonical_level: float = 4, eps: float = 1e-6) -> torch.Tensor:
    """LevelMapper: index (0 = P{k_min}) of the pooling level of each box, int64."""
    s = torch.sqrt(area(boxes))
    levels = torch.floor(canonical_level + torch.log2(s / canonical_scale + eps))
    levels = torch.clamp(levels, min=k_min, max=k_max)
    return levels.to(torch.int64) - k_min


def roi_align(features: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor, spatial_scale: float,
              output_size: int = 7, sampling_ratio: int = 2) -> torch.Tensor:
    """ROIAlign with aligned=False semantics: features (B, C, H, W), rois (R, 4) x1 y1 x2 y2 in image
    pixels, batch_index (R,) -> (R, C, output_size, output_size), the mean of the sampled points.

    A sample point in [-1, size] takes the bilinear value at the point clamped into [0, size - 1],
    which is exactly the kernel's rule (clamp to >= 0, last row/column at or past size - 1); a point
    outside contributes 0. So the clamped points are sampled with grid_sample(align_corners=True),
    the outside ones are sent far off the map where padding_mode="zeros" gives 0, and each bin's
    sampling_ratio x sampling_ratio points are averaged by avg_pool2d. The coordinate round trip
    through grid_sample's normalised grid costs about one ulp.
    """
    b, c, height, width = features.shape
    out = features.new_zeros((rois.shape[0], c, output_size, output_size))
    gy = _grid_coordinates(rois[:, 1] * spatial_scale, rois[:, 3] * spatial_scale, height, output_size, sampling_ratio)
    gx = _grid_coordinates(rois[:, 0] * spatial_scale, rois[:, 2] * spatial_scale, width, output_size, sampling_ratio)
    points = output_size * sampling_ratio
    for image in range(b):
        for part in torch.nonzero(batch_index == image).squeeze(1).split(ROI_CHUNK):
            n = len(part)
            if n == 0:
                continue
            grid = torch.stack((gx[part][:, None, :].expand(n, points, points),
                                gy[part][:, :, None].expand(n, points, points)), dim=-1)
            values = torch.nn.functional.grid_sample(features[image:image + 1], grid.reshape(1, n * points, points, 2),
                                                     mode="bilinear", padding_mode="zeros", align_corners=True)
            pooled = torch.nn.functional.avg_pool2d(values, sampling_ratio)  # (1, C, n * s, s)
            out[part] = pooled.reshape(c, n, output_size, output_size).permute(1, 0, 2, 3)
    return out


def _grid_coordinates(start: torch.Tensor, end: torch.Tensor, size: int, output_size: int,
                      sampling_ratio: int) -> torch.Tensor:
    """(R, output_size * sampling_ratio) sample points along one axis in grid_sample coordinates."""
    pos = _sample_points(start, end, output_size, sampling_ratio)
    inside = (pos >= -1.0) & (pos <= size)
    if size == 1:
        grid = torch.zeros_like(pos)
    else:
        grid = torch.clamp(pos, 0.0, size - 1.0) * (2.0 / (size - 1)) - 1.0
    return torch.where(inside, grid, torch.full_like(grid, OUTSIDE))


def _sample_points(start: torch.Tensor, end: torch.Tensor, output_size: int, sampling_ratio: int) -> torch.Tensor:
    """(R, output_size * sampling_ratio) sample coordinates along one axis, bin by bin."""
    length = torch.clamp(end - start, min=1.0)  # "force malformed ROIs to be 1x1"
    bin_size = length / output_size
    p = torch.arange(output_size, dtype=start.dtype)
    i = torch.arange(sampling_ratio, dtype=start.dtype) + 0.5
    # start + p * bin + (i + .5) * bin / ratio, in the kernel's operation order
    pos = (start[:, None, None] + p[None, :, None] * bin_size[:, None, None]) \
        + (i[None, None, :] * bin_size[:, None, None]) / sampling_ratio
    return pos.reshape(len(start), output_size * sampling_ratio)
