"""The family's ModelSpec.exporter: the fixed-size detector or the split variant, validated on detections.

Variants:
  fixed  one ONNX (images, im_info) -> (boxes, scores, labels, num_detections): every stage on the
         device (FixedSizeDetector, fixed.py)
  split  two static ONNX models (dense part, box head) and a composite descriptor
         `<name>.composite.json` naming them: proposal selection and RoIAlign run on the host
         (split.py, and ssdconvert.backends.composite at run time)

Validation runs the export in ONNX Runtime on synthetic images (demo.synthetic_images) sized as
the spec's transform resizes typical COCO shapes (landscape, portrait, 4:3, ...), so each image
of a batch is clipped to its own size, at batch 1 and at the traced batch; the detections are
matched with the PyTorch reference's (export.check_detections). The sidecar `<file>.json` records
the match reports, the weights, the canvas and the versions.

The exact mode (a spec whose transform pads each image to its own multiple of 32, `--canvas
exact`) exports the fixed variant at batch 1 with dynamic H and W, validated on two images of
different sizes (a landscape and a portrait COCO shape), each at batch 1 on its own canvas.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from preprocess.spec import EXACT_CANVAS
from ssdconvert.errors import ExportError
from ssdconvert.fileio import write_json
from ssdconvert.formatting import format_table

VARIANTS = ("fixed", "split")
COMPOSITE_SUFFIX = ".composite.json"
SAMPLE_SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (427, 640), (640, 360))  # (w, h), COCO-like
VALIDATION_SEED = 1234
EXACT_VALIDATION_IMAGES = 2  # SAMPLE_SIZES[0] and [1]: landscape and portrait, two different padded sizes


def canvas_label(canvas: tuple[int, int] | str) -> str:
    return canvas if isinstance(canvas, str) else f"{canvas[0]}x{canvas[1]}"


@dataclass
class FamilyExportResult:
    """What `ssdconvert export` and `run` report about a Faster R-CNN export."""

    onnx_path: Path  # what to compile or run: the ONNX (fixed) or the composite descriptor (split)
    sidecar_path: Path
    variant: str
    canvas: tuple[int, int] | str  # or EXACT_CANVAS
    opset: int
    seconds: float
    artefacts: list[Path] = field(default_factory=list)
    reports: list = field(default_factory=list)  # postprocess.detection_match.MatchReport per validated batch
    nodes: list[int] = field(default_factory=list)

    def figure(self) -> str:
        matched = sum(r.matched for r in self.reports)
        expected = sum(r.expected for r in self.reports)
        worst = max((r.max_score_diff for r in self.reports), default=0.0)
        return (f"{self.onnx_path.name} ({self.variant}, {canvas_label(self.canvas)}): {matched}/{expected} "
                f"reference detections matched, max score diff {worst:.2g}")

    def metrics(self) -> dict:
        return {"matched": sum(r.matched for r in self.reports), "expected": sum(r.expected for r in self.reports),
                "max_score_diff": max((r.max_score_diff for r in self.reports), default=0.0),
                "max_box_diff": max((r.max_box_diff for r in self.reports), default=0.0)}

    def verdict(self) -> str:
        return f"PASSED ({self.figure()}); details in {self.sidecar_path}"

    def summary_lines(self) -> list[str]:
        parts = " + ".join(p.name for p in self.artefacts)
        axes = "batch 1, dynamic height and width" if self.canvas == EXACT_CANVAS else "dynamic batch"
        lines = [f"wrote {parts} ({self.variant} variant, canvas {canvas_label(self.canvas)}, opset "
                 f"{self.opset}, {axes}, {'/'.join(map(str, self.nodes))} nodes, {self.seconds:.1f} s)",
                 "validation: detections against the PyTorch reference (ONNX Runtime CPU, matched by IoU per "
                 "image and class):"]
        rows = [(r.images, r.expected, r.matched, r.missing, r.extra, r.ties_past_limit, f"{r.max_score_diff:.3g}",
                 f"{r.max_box_diff:.3g}") for r in self.reports]
        lines.append(format_table(["images", "reference", "matched", "missing", "extra", "ties past 100",
                                   "max score diff", "max box diff px"], rows))
        return lines


def validation_batch(transform, count: int, seed: int = VALIDATION_SEED, first: int = 0):
    """`count` synthetic images on the transform's canvas, each as big as the transform makes a COCO-like shape
    (SAMPLE_SIZES from index `first` on). In the exact mode the canvas is the largest image's, rounded up to 32
    (the reference's batch padding)."""
    from preprocess.resize_pad import resized_size
    from ssdconvert.zoo.faster_rcnn.demo import synthetic_images
    from ssdconvert.zoo.faster_rcnn.export import ValidationBatch

    sizes = []
    for k in range(first, first + count):
        width, height = SAMPLE_SIZES[k % len(SAMPLE_SIZES)]
        new_w, new_h = resized_size(width, height, transform.min_size, transform.max_size)
        sizes.append((new_h, new_w))
    canvases = [transform.canvas_for((w, h)) for h, w in sizes]
    canvas = tuple(max(side) for side in zip(*canvases))
    images = synthetic_images(sizes, canvas, seed + first).numpy()
    return ValidationBatch(images, sizes)


def validation_batches(transform, batch: int) -> list:
    """What an export is validated on: batch 1 and `batch` on a fixed canvas; in the exact mode
    EXACT_VALIDATION_IMAGES images of different sizes, each alone at its own size."""
    if transform.canvas is None:
        return [validation_batch(transform, 1, first=k) for k in range(EXACT_VALIDATION_IMAGES)]
    return [validation_batch(transform, n) for n in dict.fromkeys((1, batch))]


def export_faster_rcnn(model, spec, output, *, weights, batch: int = 1, opset: int | None = None,
                       variant: str | None = None, simplify_model: bool = True, atol: float | None = None,
                       rtol: float | None = None, precision: str = "fp32", dynamic_batch: bool = True,
                       ) -> FamilyExportResult:
    """Export `model` (a FasterRCNN) for `spec`'s canvas as `variant`, validate it, write the sidecar."""
    from ssdconvert.zoo.faster_rcnn import export as fx

    variant = variant or VARIANTS[0]
    if variant not in VARIANTS:
        raise ExportError(f"{spec.name} has the variants {', '.join(VARIANTS)}, not {variant!r}")
    if precision != "fp32":
        raise ExportError(f"{spec.name} exports FP32 only: choose the device precision when compiling (atc "
                          "--precision, cnnl --precision force_float16)")
    if rtol:
        raise ExportError(f"{spec.name} is validated on detections: --atol is the score tolerance, --rtol does not "
                          "apply")
    exact = spec.transform.canvas is None
    if exact and variant != "fixed":
        raise ExportError(f"the {variant} variant needs a fixed canvas (its dense model has one static shape); "
                          "the exact mode exports the fixed variant only")
    if exact and batch != 1:
        raise ExportError(f"the exact mode runs batch 1 (each image at its own size), not --bs {batch}; a batch "
                          "needs a fixed canvas (--canvas HxW)")
    if not dynamic_batch and not exact:
        raise ExportError(f"{spec.name} is always exported with a dynamic batch axis; compilers fix it (--bs)")
    if batch < 1:
        raise ExportError(f"batch size must be >= 1, got {batch}")
    opset = fx.DEFAULT_OPSET if opset is None else opset
    canvas = EXACT_CANVAS if exact else (spec.transform.height, spec.transform.width)
    started = time.perf_counter()
    batches = validation_batches(spec.transform, batch)
    output = Path(output)
    if variant == "fixed":
        record = fx.export_detector(model, output, canvas=canvas, opset=opset, simplify_model=simplify_model,
                                    validate_with=batches, score_atol=atol)
        result = FamilyExportResult(output, Path(f"{output}.json"), variant, canvas, opset, 0.0, [output],
                                    record.validation, [record.nodes])
    else:
        stem = _stem(output)
        dense, head = fx.export_split(model, stem.with_name(f"{stem.name}_dense.onnx"),
                                      stem.with_name(f"{stem.name}_head.onnx"), canvas=canvas, opset=opset,
                                      simplify_model=simplify_model)
        reports = [fx.validate_split(dense.path, head.path, model, canvas, b, score_atol=atol) for b in batches]
        descriptor = stem.with_name(stem.name + COMPOSITE_SUFFIX)
        write_composite(descriptor, spec, dense.path, head.path, model.config)
        result = FamilyExportResult(descriptor, Path(f"{descriptor}.json"), variant, canvas, opset, 0.0,
                                    [dense.path, head.path, descriptor], reports, [dense.nodes, head.nodes])
    result.seconds = time.perf_counter() - started
    write_json(result.sidecar_path, _provenance(spec, result, weights, batch, atol))
    return result


def _stem(output: Path) -> Path:
    """x.onnx, x.composite.json or x -> x."""
    name = output.name
    for suffix in (COMPOSITE_SUFFIX, ".onnx"):
        if name.endswith(suffix):
            return output.with_name(name[:-len(suffix)])
    return output


def write_composite(path: Path, spec, dense: Path, head: Path, config) -> Path:
    """The split variant's composite descriptor (ssdconvert.backends.composite reads it)."""
    from ssdconvert.zoo.faster_rcnn.split import ROIS_PER_IMAGE

    descriptor = {
        "schema": "ssdconvert.composite", "version": 1, "model": spec.name, "variant": "split",
        "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in spec.inputs],
        "outputs": [{"name": o.name, "shape": list(o.shape), "dtype": o.dtype} for o in spec.outputs],
        "parts": [{"name": "dense", "file": dense.name, "rows_per_image": 1},
                  {"name": "head", "file": head.name, "rows_per_image": ROIS_PER_IMAGE}],
        "stage": {"canvas": [spec.transform.height, spec.transform.width], "nms_compare": config.nms_compare,
                  "detections": spec.head.detections},
    }
    return write_json(path, descriptor)


def _provenance(spec, result: FamilyExportResult, weights, batch: int, atol: float | None) -> dict:
    import onnx
    import onnxruntime
    import torch

    from ssdconvert import __version__
    from ssdconvert.fileio import sha256_of
    from ssdconvert.zoo.faster_rcnn import export as fx

    return {
        "model": spec.name,
        "variant": result.variant,
        "precision": "fp32",
        "spec": spec.describe(),
        "onnx": {"path": str(result.onnx_path), "files": {p.name: sha256_of(p) for p in result.artefacts},
                 "opset": result.opset, **_axes(result.canvas), "traced_batch": batch},
        "nodes": result.nodes,
        "weights": weights.as_dict(),
        "validation": {"criterion": "detections matched per image and class by IoU >= "
                                    f"{fx.MATCH_IOU}: no reference detection unmatched (ties past 100 excepted), "
                                    f"no extra detection, max score diff <= {atol or fx.SCORE_ATOL:g}, max box "
                                    f"coordinate diff <= {fx.BOX_ATOL:g} px",
                       "reference": "PyTorch reference path (ssdconvert.zoo.faster_rcnn.reference)",
                       "runtime": "onnxruntime CPUExecutionProvider", "images": "synthetic (demo.synthetic_images)",
                       "passed": True, "reports": [r.as_dict() for r in result.reports]},
        "versions": {"ssdconvert": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "seconds": round(result.seconds, 2),
    }


def _axes(canvas: tuple[int, int] | str) -> dict:
    """The sidecar's canvas and dynamic axes."""
    from ssdconvert.zoo.faster_rcnn import export as fx

    if canvas == EXACT_CANVAS:
        return {"canvas": canvas, "dynamic_batch": False, "batch": 1,
                "dynamic_axes": {fx.INPUT_NAMES[0]: list(fx.CANVAS_AXES.values())}}
    return {"canvas": list(canvas), "dynamic_batch": True, "batch_axis_name": fx.BATCH_AXIS}


def example_inputs(spec, batch: int) -> dict[str, np.ndarray]:
    """ModelSpec.example_inputs: `batch` different synthetic images on this spec's canvas (validation_batch)."""
    vb = validation_batch(spec.transform, batch)
    return {spec.input.name: vb.images, spec.extra_inputs[0].name: vb.im_info}
