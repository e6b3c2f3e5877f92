"""The graphs Faster R-CNN exports (GraphSpecs for ssdconvert.export.write_graph), traced on seeded images.

- `fixed_graph`: FixedSizeDetector (fixed.py), (images, im_info) -> (boxes, scores, labels,
  num_detections), a dynamic batch axis on every input and output and the canvas fixed, or in the
  exact mode batch 1 with the images' height and width dynamic;
- `split_graphs`: the split variant's dense model (for one canvas) and box-head model (1000 RoIs
  per image), each with a dynamic batch axis.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ssdconvert.errors import ExportError
from ssdconvert.export import GraphSpec
from ssdconvert.zoo.faster_rcnn.fixed import DETECTIONS, INPUT_NAMES, OUTPUT_NAMES, FixedSizeDetector
from ssdconvert.zoo.faster_rcnn.network import FPN_CHANNELS, FasterRCNN
from ssdconvert.zoo.faster_rcnn.split import (DENSE_INPUTS, DENSE_OUTPUTS, HEAD_INPUTS, HEAD_OUTPUTS,
                                              ROIS_PER_IMAGE, BoxHeadModel, DenseModel)

SIZE_DIVISIBILITY = 32
BATCH_AXIS = "N"
CANVAS_AXES = {2: "H", 3: "W"}  # the exact mode's dynamic axes of `images`
TRACE_SEED = 0


def check_canvas(canvas: tuple[int, int]) -> tuple[int, int]:
    height, width = canvas
    if height <= 0 or width <= 0 or height % SIZE_DIVISIBILITY or width % SIZE_DIVISIBILITY:
        raise ExportError(f"canvas {height}x{width} must be positive multiples of {SIZE_DIVISIBILITY} "
                          "(the FPN upsamples by a factor of 2 four times)")
    return height, width


def trace_input(canvas: tuple[int, int], batch: int = 1) -> torch.Tensor:
    """Seeded images in the BGR-minus-mean value range: what the graphs are traced on."""
    generator = torch.Generator().manual_seed(TRACE_SEED)
    return torch.randn((batch, 3, *canvas), generator=generator) * 50.0


def batch_axes(*names: str) -> dict[str, dict[int, str]]:
    return {name: {0: BATCH_AXIS} for name in names}


def fixed_graph(net: FasterRCNN, path: Path, canvas: tuple[int, int], detections: int = DETECTIONS,
                exact: bool = False) -> GraphSpec:
    """FixedSizeDetector(net) traced at `canvas`: a dynamic batch, or (`exact`) batch 1 with dynamic H and W.
    The K detection slots are written into the graph's output shapes."""
    images = trace_input(check_canvas(canvas))
    im_info = torch.tensor([canvas], dtype=torch.float32)
    axes = {INPUT_NAMES[0]: CANVAS_AXES} if exact else batch_axes(*INPUT_NAMES, *OUTPUT_NAMES)
    shapes = dict(zip(OUTPUT_NAMES, ((detections, 4), (detections,), (detections,), ())))
    return GraphSpec("model", path, FixedSizeDetector(net, detections, dynamic_canvas=exact).eval(), (images, im_info),
                     INPUT_NAMES, OUTPUT_NAMES, axes, shapes)


def split_graphs(net: FasterRCNN, stem: Path, canvas: tuple[int, int]) -> list[GraphSpec]:
    """The split variant's `<stem>_dense.onnx` (for `canvas`) and `<stem>_head.onnx` (1000 rows per image)."""
    size = net.config.pooler_resolution
    rois = torch.zeros(ROIS_PER_IMAGE, FPN_CHANNELS, size, size)
    return [GraphSpec("dense", stem.with_name(f"{stem.name}_dense.onnx"), DenseModel(net),
                      (trace_input(check_canvas(canvas)),), DENSE_INPUTS, DENSE_OUTPUTS,
                      batch_axes(*DENSE_INPUTS, *DENSE_OUTPUTS)),
            GraphSpec("head", stem.with_name(f"{stem.name}_head.onnx"), BoxHeadModel(net), (rois,), HEAD_INPUTS,
                      HEAD_OUTPUTS, batch_axes(*HEAD_INPUTS, *HEAD_OUTPUTS), rows_per_image=ROIS_PER_IMAGE)]
