"""Export the fixed-size detector (or the split models) to ONNX, and validate detections, not elements.

Export: TorchScript exporter (dynamo=False), a dynamic batch axis on every input and output, the
canvas (H, W) fixed, opset 16 by default (11-17 accepted; see onnx_ops.py for what RoiAlign means
below 16), optional onnxslim simplification, written atomically. The exact mode (canvas
EXACT_CANVAS) is the other way round: batch 1, the images' H and W dynamic axes, every count that
depends on them computed in the graph (fixed.py), traced at the first validation image's size and
validated on images of different sizes, each at batch 1 on its own canvas.

Validation: the exported model runs in ONNX Runtime on given images and im_info, the PyTorch
reference path (reference.detect, per image and data-dependent) runs on the same padded batch,
and postprocess.detection_match pairs the detections by IoU per image and class. It fails with
DetectionMismatchError naming what differs: reference detections without a match, extra
detections, or the largest score / box-coordinate difference beyond its tolerance. Reference
detections past the K-th that tie with the K-th score are reported (`ties_past_limit`), not
failed: the fixed-size output holds exactly K.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from postprocess.detection_match import ImageDetections, MatchReport, match_detections
from preprocess.spec import EXACT_CANVAS
from ssdconvert.errors import DetectionMismatchError, ExportError
from ssdconvert.export import simplify
from ssdconvert.fileio import atomic_path
from ssdconvert.zoo.faster_rcnn import reference
from ssdconvert.zoo.faster_rcnn.fixed import DETECTIONS, INPUT_NAMES, OUTPUT_NAMES, FixedSizeDetector
from ssdconvert.zoo.faster_rcnn.network import FPN_CHANNELS, FasterRCNN
from ssdconvert.zoo.faster_rcnn.split import (DENSE_INPUTS, DENSE_OUTPUTS, HEAD_INPUTS, HEAD_OUTPUTS,
                                              ROIS_PER_IMAGE, BoxHeadModel, DenseModel)

log = logging.getLogger(__name__)

DEFAULT_OPSET = 16
SUPPORTED_OPSETS = range(11, 18)
DEFAULT_CANVAS = (1344, 1344)
SIZE_DIVISIBILITY = 32
BATCH_AXIS = "N"
CANVAS_AXES = {2: "H", 3: "W"}  # the exact mode's dynamic axes of `images`
EXACT_TRACE_CANVAS = (800, 1088)  # where no validation image gives one: a 640x480 image at the reference resize
SCORE_ATOL = 1e-4
BOX_ATOL = 1e-2  # pixels of the resized image; float32 resolution at 1344 px is ~1e-4
MATCH_IOU = 0.9
LEGACY_PIXEL = 1.0  # boxes are legacy: x2 - x1 + 1 pixels wide (x2 may be below x1)


@dataclass
class ExportRecord:
    """One exported file and how it was made."""

    path: Path
    opset: int
    canvas: tuple[int, int] | str  # or EXACT_CANVAS
    seconds: float
    nodes: int
    simplifier: str | None
    validation: list[MatchReport] = field(default_factory=list)


@dataclass(frozen=True)
class ValidationBatch:
    """Padded images (N, 3, H, W) float32 and each image's unpadded (height, width)."""

    images: np.ndarray
    image_sizes: Sequence[tuple[int, int]]

    @property
    def im_info(self) -> np.ndarray:
        return np.asarray(self.image_sizes, dtype=np.float32).reshape(-1, 2)


def check_canvas(canvas: tuple[int, int]) -> tuple[int, int]:
    height, width = canvas
    if height <= 0 or width <= 0 or height % SIZE_DIVISIBILITY or width % SIZE_DIVISIBILITY:
        raise ExportError(f"canvas {height}x{width} must be positive multiples of {SIZE_DIVISIBILITY} "
                          "(the FPN upsamples by a factor of 2 four times)")
    return height, width


def _check_opset(opset: int) -> None:
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"opset {opset} is not supported; use {SUPPORTED_OPSETS.start}-{SUPPORTED_OPSETS.stop - 1}")


def _trace_input(canvas: tuple[int, int], batch: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch, 3, *canvas), generator=generator) * 50.0


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs: Sequence[str], outputs: Sequence[str],
            opset: int, simplify_model: bool, axes: dict | None = None) -> tuple[str | None, int]:
    """`axes`: the dynamic axes [default: the batch axis of every input and output]."""
    axes = axes if axes is not None else {name: {0: BATCH_AXIS} for name in (*inputs, *outputs)}
    try:
        with warnings.catch_warnings():
            # every size the tracer sees as a Python int (top-k sizes, feature shapes) comes from the fixed
            # canvas, so recording it as a constant is intended; only the batch axis is dynamic (the exact
            # mode computes its canvas-dependent sizes in the graph: fixed.at_most)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module.eval(), args, str(path), input_names=list(inputs), output_names=list(outputs),
                              opset_version=opset, dynamic_axes=axes, do_constant_folding=True, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {exc}") from exc
    if simplify_model:
        simplifier, _, nodes = simplify(path)
        return simplifier, nodes
    import onnx

    return None, len(onnx.load(str(path)).graph.node)


def export_detector(net: FasterRCNN, output: str | Path, *, canvas: tuple[int, int] | str = DEFAULT_CANVAS,
                    opset: int = DEFAULT_OPSET, detections: int = DETECTIONS, simplify_model: bool = True,
                    validate_with: Sequence[ValidationBatch] = (), score_atol: float | None = None) -> ExportRecord:
    """Export FixedSizeDetector(net) for `canvas` (or EXACT_CANVAS: batch 1, dynamic H and W); validate on each
    batch before moving it into place."""
    _check_opset(opset)
    exact = canvas == EXACT_CANVAS
    if exact:
        wrong = [b.images.shape[0] for b in validate_with if b.images.shape[0] != 1]
        if wrong:
            raise ExportError(f"the exact mode runs batch 1 (each image at its own size), not {wrong[0]}")
        trace_canvas = check_canvas(tuple(validate_with[0].images.shape[2:]) if validate_with else EXACT_TRACE_CANVAS)
    else:
        canvas = trace_canvas = check_canvas(canvas)
    output = Path(output)
    started = time.perf_counter()
    detector = FixedSizeDetector(net, detections, dynamic_canvas=exact).eval()
    images = _trace_input(trace_canvas)
    im_info = torch.tensor([trace_canvas], dtype=torch.float32)
    axes = {INPUT_NAMES[0]: CANVAS_AXES} if exact else None
    with atomic_path(output) as tmp, torch.no_grad():
        simplifier, nodes = _export(detector, (images, im_info), tmp, INPUT_NAMES, OUTPUT_NAMES, opset,
                                    simplify_model, axes)
        declare_output_shapes(tmp, dict(zip(OUTPUT_NAMES, ((detections, 4), (detections,), (detections,), ()))))
        reports = [validate_detector(tmp, net, batch, detections, score_atol) for batch in validate_with]
    return ExportRecord(output, opset, canvas, time.perf_counter() - started, nodes, simplifier, reports)


def declare_output_shapes(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Write the fixed per-image output shapes into the graph's outputs where the exporter left them symbolic
    (torch names a Where's output dims `Whereboxes_dim_1`): compilers and readers see the static K slots."""
    import onnx

    model = onnx.load(str(path))
    changed = False
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        for dim, size in zip(list(dims)[1:], shapes[output.name]):
            if not dim.HasField("dim_value") or dim.dim_value != size:
                dim.Clear()
                dim.dim_value = size
                changed = True
    if changed:
        onnx.save(model, str(path))


def export_split(net: FasterRCNN, dense_output: str | Path, head_output: str | Path, *,
                 canvas: tuple[int, int] = DEFAULT_CANVAS, opset: int = DEFAULT_OPSET,
                 simplify_model: bool = True) -> tuple[ExportRecord, ExportRecord]:
    """Export the split variant's dense model (for `canvas`) and box-head model (1000 rows per image)."""
    _check_opset(opset)
    canvas = check_canvas(canvas)
    records = []
    size = net.config.pooler_resolution
    jobs = ((DenseModel(net), (_trace_input(canvas),), Path(dense_output), DENSE_INPUTS, DENSE_OUTPUTS),
            (BoxHeadModel(net), (torch.zeros(ROIS_PER_IMAGE, FPN_CHANNELS, size, size),), Path(head_output),
             HEAD_INPUTS, HEAD_OUTPUTS))
    for module, args, path, inputs, outputs in jobs:
        started = time.perf_counter()
        with atomic_path(path) as tmp, torch.no_grad():
            simplifier, nodes = _export(module, args, tmp, inputs, outputs, opset, simplify_model)
        records.append(ExportRecord(path, opset, canvas, time.perf_counter() - started, nodes, simplifier))
    return records[0], records[1]


def fixed_outputs_to_detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                                num_detections: np.ndarray) -> list[ImageDetections]:
    """The first num_detections[i] slots of each image of a fixed-K output."""
    return [ImageDetections.of(boxes[i, :n], scores[i, :n], labels[i, :n])
            for i, n in enumerate(np.asarray(num_detections).astype(np.int64).tolist())]


def reference_detections(net: FasterRCNN, batch: ValidationBatch) -> list[ImageDetections]:
    dets = reference.detect(net, torch.from_numpy(np.ascontiguousarray(batch.images)), list(batch.image_sizes))
    return [ImageDetections.of(d.boxes.numpy(), d.scores.numpy(), d.labels.numpy()) for d in dets]


def check_detections(expected: list[ImageDetections], actual: list[ImageDetections], runtime: str,
                     limit: int | None = DETECTIONS, score_atol: float = SCORE_ATOL,
                     box_atol: float = BOX_ATOL, iou_threshold: float = MATCH_IOU) -> MatchReport:
    """Pair the detections; raise DetectionMismatchError naming the first criterion that fails."""
    report = match_detections(expected, actual, iou_threshold, limit, pixel_offset=LEGACY_PIXEL)
    failure = report.failure(score_atol, box_atol)
    if failure:
        raise DetectionMismatchError(runtime, len(expected), failure)
    log.info("%s vs reference at batch %d: %d matched, %d ties past the limit, max score diff %.3g, "
             "max box diff %.3g px", runtime, len(expected), report.matched, report.ties_past_limit,
             report.max_score_diff, report.max_box_diff)
    return report


def validate_detector(onnx_path: str | Path, net: FasterRCNN, batch: ValidationBatch,
                      detections: int = DETECTIONS, score_atol: float | None = None) -> MatchReport:
    """Run the exported detector in ONNX Runtime on `batch` and check it against reference.detect."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outputs = session.run(list(OUTPUT_NAMES), {INPUT_NAMES[0]: np.ascontiguousarray(batch.images, np.float32),
                                               INPUT_NAMES[1]: batch.im_info})
    return check_detections(reference_detections(net, batch), fixed_outputs_to_detections(*outputs),
                            "ONNX Runtime", limit=detections, score_atol=score_atol or SCORE_ATOL)


def validate_split(dense_path: str | Path, head_path: str | Path, net: FasterRCNN, canvas: tuple[int, int],
                   batch: ValidationBatch, score_atol: float | None = None) -> MatchReport:
    """Run the split variant (both models in ONNX Runtime, the host stage in torch) on `batch` and check its
    detections against reference.detect; the host stage keeps the reference's ties past 100."""
    import onnxruntime as ort

    from ssdconvert.zoo.faster_rcnn.split import SplitDetector

    dense, head = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (dense_path, head_path))
    detector = SplitDetector.of(net, canvas, lambda x: dense.run(list(DENSE_OUTPUTS), {DENSE_INPUTS[0]: x}),
                             lambda x: head.run(list(HEAD_OUTPUTS), {HEAD_INPUTS[0]: x}))
    found = detector(np.ascontiguousarray(batch.images, np.float32), list(batch.image_sizes))
    actual = [ImageDetections.of(d.boxes.numpy(), d.scores.numpy(), d.labels.numpy()) for d in found]
    return check_detections(reference_detections(net, batch), actual, "split (ONNX Runtime + host stage)", limit=None,
                            score_atol=score_atol or SCORE_ATOL)
