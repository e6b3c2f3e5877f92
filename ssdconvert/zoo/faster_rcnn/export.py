"""Faster R-CNN's part of the one export path (ssdconvert.export): which graphs, and its detection comparator.

Variants (`export --variant`):
  fixed  one ONNX (images, im_info) -> (boxes, scores, labels, num_detections): every stage on the
         device (FixedSizeDetector, fixed.py); a dynamic batch axis on every input and output, the
         canvas (H, W) fixed
  split  two static ONNX models (dense part, box head over 1000 RoIs per image) and a composite
         descriptor `<name>.composite.json` naming them: proposal selection and RoIAlign run on the
         host (split.py, and ssdconvert.backends.composite at run time)

Opset 16 by default (11-17 accepted; see onnx_ops.py for what RoiAlign means below 16). The exact
mode (a spec whose transform pads each image to its own multiple of 32, `--canvas exact`) is the
fixed variant the other way round: batch 1, the images' H and W dynamic axes, every count that
depends on them computed in the graph (fixed.py), traced at the first validation image's size and
validated on a landscape and a portrait image, each at batch 1 on its own canvas. The graphs are
built in graphs.py.

Validation (validation.py): detections matched with the PyTorch reference path's, at batch 1 and
the traced batch; `--atol` is the score tolerance, `--rtol` does not apply, FP32 only.

This module is imported when the zoo registers the family: torch and the modules that need it are
imported by the methods that use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from preprocess.spec import EXACT_CANVAS
from ssdconvert.errors import ExportError
from ssdconvert.export import ExportOptions, ExportPlan, FamilyExport

if TYPE_CHECKING:
    import torch

    from ssdconvert.zoo.faster_rcnn.network import FasterRCNN
    from ssdconvert.zoo.faster_rcnn.validation import DetectionValidation

DEFAULT_OPSET = 16
VARIANTS = ("fixed", "split")


def canvas_label(canvas: tuple[int, int] | str) -> str:
    return canvas if isinstance(canvas, str) else f"{canvas[0]}x{canvas[1]}"


def stem_of(output: Path) -> Path:
    """x.onnx, x.composite.json or x -> x."""
    from ssdconvert.backends.composite import SUFFIX

    name = output.name
    for suffix in (SUFFIX, ".onnx"):
        if name.endswith(suffix):
            return output.with_name(name[:-len(suffix)])
    return output


class FasterRcnnExport(FamilyExport):
    """FamilyExport of faster-rcnn-r101-fpn: see the module docstring."""

    default_opset = DEFAULT_OPSET
    variants = VARIANTS

    def check(self, spec, options: ExportOptions) -> None:
        exact = spec.transform.canvas is None
        if options.precision != "fp32":
            raise ExportError(f"{spec.name} exports FP32 only: choose the device precision when compiling (atc "
                              "--precision, cnnl --precision force_float16)")
        if options.rtol:
            raise ExportError(f"{spec.name} is validated on detections: --atol is the score tolerance, --rtol does "
                              "not apply")
        if exact and options.variant != "fixed":
            raise ExportError(f"the {options.variant} variant needs a fixed canvas (its dense model has one static "
                              "shape); the exact mode exports the fixed variant only")
        if exact and options.batch != 1:
            raise ExportError(f"the exact mode runs batch 1 (each image at its own size), not --bs {options.batch}; a "
                              "batch needs a fixed canvas (--canvas HxW)")
        if not options.dynamic_batch and not exact:
            raise ExportError(f"{spec.name} is always exported with a dynamic batch axis; compilers fix it (--bs)")

    def graph_module(self, model: "FasterRCNN") -> "torch.nn.Module":
        from ssdconvert.zoo.faster_rcnn.fixed import FixedSizeDetector

        return FixedSizeDetector(model).eval()

    def plan(self, model: "FasterRCNN", spec, output: Path, options: ExportOptions) -> ExportPlan:
        from ssdconvert.backends.composite import SUFFIX
        from ssdconvert.zoo.faster_rcnn.graphs import BATCH_AXIS, CANVAS_AXES, fixed_graph, split_graphs
        from ssdconvert.zoo.faster_rcnn.validation import validation_batch

        detections = spec.head.detections
        if spec.transform.canvas is None:
            first = validation_batch(spec.transform, 1)  # traced at the first validation image's own size
            graph = fixed_graph(model, output, tuple(first.images.shape[2:]), detections, exact=True)
            record = {"canvas": EXACT_CANVAS, "dynamic_batch": False, "batch": 1,
                      "dynamic_axes": {graph.input_names[0]: list(CANVAS_AXES.values())}}
            return ExportPlan([graph], f"fixed variant, canvas {EXACT_CANVAS}, batch 1, dynamic height and width",
                              record, f" (fixed, {EXACT_CANVAS})")
        canvas = (spec.transform.height, spec.transform.width)
        record = {"canvas": list(canvas), "dynamic_batch": True, "batch_axis_name": BATCH_AXIS}
        label = f" ({options.variant}, {canvas_label(canvas)})"
        layout = f"{options.variant} variant, canvas {canvas_label(canvas)}, dynamic batch"
        if options.variant == "fixed":
            return ExportPlan([fixed_graph(model, output, canvas, detections)], layout, record, label)
        stem = stem_of(output)
        stage = {"canvas": list(canvas), "nms_compare": model.config.nms_compare, "detections": detections}
        return ExportPlan(split_graphs(model, stem, canvas), layout, record, label,
                          descriptor=stem.with_name(stem.name + SUFFIX), stage=stage)

    def validate(self, model: "FasterRCNN", spec, files: Mapping[str, Path],
                 options: ExportOptions) -> "DetectionValidation":
        from ssdconvert.zoo.faster_rcnn.validation import (SCORE_ATOL, DetectionValidation, validate_detector,
                                                           validate_split, validation_batches)

        batches = validation_batches(spec.transform, options.batch)
        if options.variant == "split":
            canvas = (spec.transform.height, spec.transform.width)
            checks = [validate_split(files["dense"], files["head"], model, canvas, b, options.atol) for b in batches]
        else:
            checks = [validate_detector(files["model"], model, b, spec.head.detections, options.atol)
                      for b in batches]
        return DetectionValidation(checks, SCORE_ATOL if options.atol is None else options.atol)


FASTER_RCNN = FasterRcnnExport()
