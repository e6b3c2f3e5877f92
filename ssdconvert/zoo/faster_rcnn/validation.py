"""Faster R-CNN's comparator: exported detections against the PyTorch reference's, detection by detection.

The exported model runs in ONNX Runtime on synthetic images (demo.synthetic_images) sized as the
spec's transform resizes typical COCO shapes (landscape, portrait, 4:3, ...), so each image of a
batch is clipped to its own size; the PyTorch reference path (reference.detect, per image and
data-dependent) runs on the same padded batch; postprocess.detection_match pairs the detections
by IoU per image and class. Reference detections past the K-th that tie with the K-th score are
reported (`ties_past_limit`), not failed: the fixed-size output holds exactly K.

The verdict, per validated batch:

1. Against PyTorch float32: every detection paired, scores within SCORE_ATOL (--atol) and box
   coordinates within BOX_ATOL pixels. If so, it passes.
2. Otherwise the detections are judged against a float64 run of the reference
   (ssdconvert.export's rule): PyTorch float32's own error is what its detections differ from
   float64's by, and the exported model passes if, against float64, it leaves no more detections
   unpaired than PyTorch float32 does and its largest score and coordinate differences are at
   most the fixed tolerance plus NOISE_FACTOR times PyTorch's. Box decoding multiplies rounding
   (exp of deltas times sizes, coordinates up to 1344 px), so no fixed tolerance judges every
   model; measured at 1344x1344 with FrozenBN statistics calibrated on data: ONNX Runtime 3.8e-4 /
   0.019 px from PyTorch float32, which is itself 5.4e-4 / 0.025 px from float64 (ONNX Runtime
   1.6e-4 / 0.009 px). Real mistakes are far beyond that (tests/families/faster_rcnn/
   test_export_tolerance.py: a RoiAlign half-pixel shift, a wrong FPN level, a missing +1).

NaN or inf in PyTorch's stages or the exported model's outputs fail, naming the tensor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from postprocess.detection_match import ImageDetections, MatchReport, match_detections
from ssdconvert.errors import DetectionMismatchError
from ssdconvert.export import NOISE_FACTOR, VALIDATION_SEED, Validation, check_finite, float64_copy
from ssdconvert.zoo.faster_rcnn import reference
from ssdconvert.zoo.faster_rcnn.fixed import DETECTIONS, INPUT_NAMES, OUTPUT_NAMES

log = logging.getLogger(__name__)

SCORE_ATOL = 1e-4
BOX_ATOL = 1e-2  # pixels of the resized image
MATCH_IOU = 0.9
LEGACY_PIXEL = 1.0  # boxes are legacy: x2 - x1 + 1 pixels wide (x2 may be below x1)
SAMPLE_SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (427, 640), (640, 360))  # (w, h), COCO-like
EXACT_VALIDATION_IMAGES = 2  # SAMPLE_SIZES[0] and [1]: landscape and portrait, two different padded sizes
ONNX_RUNTIME = "ONNX Runtime"


@dataclass(frozen=True)
class ValidationBatch:
    """Padded images (N, 3, H, W) float32 and each image's unpadded (height, width)."""

    images: np.ndarray
    image_sizes: Sequence[tuple[int, int]]

    @property
    def im_info(self) -> np.ndarray:
        return np.asarray(self.image_sizes, dtype=np.float32).reshape(-1, 2)


def validation_batch(transform, count: int, seed: int = VALIDATION_SEED, first: int = 0) -> ValidationBatch:
    """`count` synthetic images on the transform's canvas, each as big as the transform makes a COCO-like shape
    (SAMPLE_SIZES from index `first` on). In the exact mode the canvas is the largest image's, rounded up to 32
    (the reference's batch padding)."""
    from preprocess.resize_pad import resized_size
    from ssdconvert.zoo.faster_rcnn.demo import synthetic_images

    sizes = []
    for k in range(first, first + count):
        width, height = SAMPLE_SIZES[k % len(SAMPLE_SIZES)]
        new_w, new_h = resized_size(width, height, transform.min_size, transform.max_size)
        sizes.append((new_h, new_w))
    canvases = [transform.canvas_for((w, h)) for h, w in sizes]
    canvas = tuple(max(side) for side in zip(*canvases))
    images = synthetic_images(sizes, canvas, seed + first).numpy()
    return ValidationBatch(images, sizes)


def validation_batches(transform, batch: int) -> list[ValidationBatch]:
    """What an export is validated on: batch 1 and `batch` on a fixed canvas; in the exact mode
    EXACT_VALIDATION_IMAGES images of different sizes, each alone at its own size."""
    if transform.canvas is None:
        return [validation_batch(transform, 1, first=k) for k in range(EXACT_VALIDATION_IMAGES)]
    return [validation_batch(transform, n) for n in dict.fromkeys((1, batch))]


def example_inputs(spec, batch: int) -> dict[str, np.ndarray]:
    """ModelSpec.example_inputs: `batch` different synthetic images on this spec's canvas (validation_batch)."""
    vb = validation_batch(spec.transform, batch)
    return {spec.input.name: vb.images, spec.extra_inputs[0].name: vb.im_info}


# ------------------------------------------------------------------------------------------------ detections


def as_detections(found: Sequence[reference.Detections]) -> list[ImageDetections]:
    return [ImageDetections.of(d.boxes.numpy(), d.scores.numpy(), d.labels.numpy()) for d in found]


def fixed_outputs_to_detections(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                                num_detections: np.ndarray) -> list[ImageDetections]:
    """The first num_detections[i] slots of each image of a fixed-K output."""
    return [ImageDetections.of(boxes[i, :n], scores[i, :n], labels[i, :n])
            for i, n in enumerate(np.asarray(num_detections).astype(np.int64).tolist())]


def reference_detections(net, batch: ValidationBatch) -> list[ImageDetections]:
    """reference.detect of `net` on `batch`, in `net`'s dtype (a float64 copy runs in float64); NaN or inf in a
    stage of it raises NonFiniteOutputError naming the stage's tensor."""
    dtype = next(net.parameters()).dtype
    images = torch.from_numpy(np.ascontiguousarray(batch.images)).to(dtype)
    source = "PyTorch" if dtype == torch.float32 else f"PyTorch {str(dtype).replace('torch.', '')}"

    def finite(name: str, values: torch.Tensor) -> None:
        check_finite(name, values.detach().numpy(), source, len(batch.image_sizes))

    return as_detections(reference.detect(net, images, list(batch.image_sizes), check=finite))


# -------------------------------------------------------------------------------------------------- verdict


@dataclass
class Float64Judgement:
    """Detections beyond the fixed tolerances, judged against a float64 run of the reference."""

    exported: MatchReport  # the exported model's detections against float64's
    torch: MatchReport  # PyTorch float32's detections against float64's: its own rounding
    score_atol: float
    box_atol: float

    @property
    def score_limit(self) -> float:
        return self.score_atol + NOISE_FACTOR * self.torch.max_score_diff

    @property
    def box_limit(self) -> float:
        return self.box_atol + NOISE_FACTOR * self.torch.max_box_diff

    @staticmethod
    def unpaired(report: MatchReport) -> int:
        return report.missing + report.extra

    def failure(self) -> tuple[str | None, str] | None:
        """(output, what) of the first criterion the exported model fails against float64, or None."""
        e, t = self.exported, self.torch
        if self.unpaired(e) > self.unpaired(t):
            return None, (f"against a float64 run {self.unpaired(e)} detections are unpaired, PyTorch float32's "
                          f"own rounding leaves {self.unpaired(t)}")
        own = f"{NOISE_FACTOR:g} x PyTorch float32's own error"
        if e.max_score_diff > self.score_limit:
            return "scores", (f"{e.max_score_diff:.3g} from a float64 run > {self.score_limit:.3g} "
                              f"({self.score_atol:g} + {own} {t.max_score_diff:.3g})")
        if e.max_box_diff > self.box_limit:
            return "boxes", (f"{e.max_box_diff:.3g} px from a float64 run > {self.box_limit:.3g} px "
                             f"({self.box_atol:g} px + {own} {t.max_box_diff:.3g} px)")
        return None

    def as_dict(self) -> dict:
        return {"exported": self.exported.as_dict(), "pytorch_float32": self.torch.as_dict(),
                "score_limit": self.score_limit, "box_limit": self.box_limit}


@dataclass
class BatchCheck:
    """One validated batch: the detections matched against PyTorch float32, and the float64 judgement
    where the fixed tolerances were not met."""

    report: MatchReport
    float64: Float64Judgement | None = None

    def as_dict(self) -> dict:
        record = self.report.as_dict()
        return record if self.float64 is None else {**record, "float64": self.float64.as_dict()}


def _fixed_failure(report: MatchReport, score_atol: float, box_atol: float) -> tuple[str | None, str] | None:
    """(output, what) of the first fixed-tolerance criterion `report` fails, or None."""
    what = report.failure(score_atol, box_atol)
    if what is None:
        return None
    if report.missing or report.extra:
        return None, what
    return ("scores" if report.max_score_diff > score_atol else "boxes"), what


def check_detections(expected: list[ImageDetections], actual: list[ImageDetections], runtime: str,
                     limit: int | None = DETECTIONS, score_atol: float = SCORE_ATOL, box_atol: float = BOX_ATOL,
                     exact: Callable[[], list[ImageDetections]] | None = None) -> BatchCheck:
    """Pair the detections and judge them (see the module docstring); `exact` gives the float64 reference's
    detections, run only where the fixed tolerances are not met. DetectionMismatchError names what fails."""
    report = match_detections(expected, actual, MATCH_IOU, limit, pixel_offset=LEGACY_PIXEL)
    fixed = _fixed_failure(report, score_atol, box_atol)
    judgement = None
    if fixed is not None:
        if exact is None:
            raise DetectionMismatchError(runtime, len(expected), fixed[1], output=fixed[0])
        exact_detections = exact()
        judgement = Float64Judgement(
            match_detections(exact_detections, actual, MATCH_IOU, limit, pixel_offset=LEGACY_PIXEL),
            match_detections(exact_detections, expected, MATCH_IOU, limit, pixel_offset=LEGACY_PIXEL),
            score_atol, box_atol)
        failure = judgement.failure()
        if failure is not None:
            raise DetectionMismatchError(runtime, len(expected), f"{fixed[1]}; {failure[1]}",
                                         output=failure[0] or fixed[0])
    log.info("%s vs reference at batch %d: %d matched, %d ties past the limit, max score diff %.3g, "
             "max box diff %.3g px%s", runtime, len(expected), report.matched, report.ties_past_limit,
             report.max_score_diff, report.max_box_diff, " (judged against float64)" if judgement else "")
    return BatchCheck(report, judgement)


def validate_against_reference(net, batch: ValidationBatch, run: Callable[[], list[ImageDetections]], runtime: str,
                               limit: int | None = DETECTIONS, score_atol: float | None = None) -> BatchCheck:
    """Judge `run()`, the exported model's detections on `batch`, against reference.detect of `net` (run first:
    where PyTorch itself computes NaN, that is the error)."""
    expected = reference_detections(net, batch)
    return check_detections(expected, run(), runtime, limit, SCORE_ATOL if score_atol is None else score_atol,
                            exact=lambda: reference_detections(float64_copy(net), batch))


def _finite_outputs(names: Sequence[str], outputs: Sequence[np.ndarray], batch: ValidationBatch) -> list[np.ndarray]:
    """`outputs` of the exported model, checked (NonFiniteOutputError naming the first with NaN or inf)."""
    for name, values in zip(names, outputs):
        check_finite(name, values, f"the ONNX model ({ONNX_RUNTIME})", len(batch.image_sizes))
    return list(outputs)


def validate_detector(onnx_path, net, batch: ValidationBatch, detections: int = DETECTIONS,
                      score_atol: float | None = None) -> BatchCheck:
    """Run the exported fixed detector in ONNX Runtime on `batch` and judge it against reference.detect."""
    import onnxruntime as ort

    def run() -> list[ImageDetections]:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        feeds = {INPUT_NAMES[0]: np.ascontiguousarray(batch.images, np.float32), INPUT_NAMES[1]: batch.im_info}
        return fixed_outputs_to_detections(*_finite_outputs(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), feeds),
                                                            batch))

    return validate_against_reference(net, batch, run, ONNX_RUNTIME, detections, score_atol)


def validate_split(dense_path, head_path, net, canvas: tuple[int, int], batch: ValidationBatch,
                   score_atol: float | None = None) -> BatchCheck:
    """Run the split variant (both models in ONNX Runtime, the host stage in torch) on `batch` and judge its
    detections against reference.detect; the host stage keeps the reference's ties past 100."""
    import onnxruntime as ort

    from ssdconvert.zoo.faster_rcnn.split import (DENSE_INPUTS, DENSE_OUTPUTS, HEAD_INPUTS, HEAD_OUTPUTS,
                                                  SplitDetector)

    def runner(path, inputs: Sequence[str], outputs: Sequence[str]):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: _finite_outputs(outputs, session.run(list(outputs), {inputs[0]: x}), batch)

    def run() -> list[ImageDetections]:
        detector = SplitDetector.of(net, canvas, runner(dense_path, DENSE_INPUTS, DENSE_OUTPUTS),
                                    runner(head_path, HEAD_INPUTS, HEAD_OUTPUTS))
        return as_detections(detector(np.ascontiguousarray(batch.images, np.float32), list(batch.image_sizes)))

    return validate_against_reference(net, batch, run, f"split ({ONNX_RUNTIME} + host stage)", None, score_atol)


# ------------------------------------------------------------------------------------------------ the result


@dataclass
class DetectionValidation(Validation):
    """The batches an export was validated on, each matched with the reference's detections."""

    checks: list[BatchCheck] = field(default_factory=list)
    score_atol: float = SCORE_ATOL

    @property
    def reports(self) -> list[MatchReport]:
        return [c.report for c in self.checks]

    def figure(self) -> str:
        matched = sum(r.matched for r in self.reports)
        expected = sum(r.expected for r in self.reports)
        worst = max((r.max_score_diff for r in self.reports), default=0.0)
        return f"{matched}/{expected} reference detections matched, max score diff {worst:.2g}"

    def summary(self) -> str:
        return self.figure()

    def metrics(self) -> dict:
        return {"matched": sum(r.matched for r in self.reports), "expected": sum(r.expected for r in self.reports),
                "max_score_diff": max((r.max_score_diff for r in self.reports), default=0.0),
                "max_box_diff": max((r.max_box_diff for r in self.reports), default=0.0)}

    def lines(self) -> list[str]:
        from ssdconvert.formatting import format_table

        rows = [(r.images, r.expected, r.matched, r.missing, r.extra, r.ties_past_limit, f"{r.max_score_diff:.3g}",
                 f"{r.max_box_diff:.3g}") for r in self.reports]
        lines = ["validation: detections against the PyTorch reference (ONNX Runtime CPU, matched by IoU per image "
                 "and class):",
                 format_table(["images", "reference", "matched", "missing", "extra", "ties past 100", "max score diff",
                               "max box diff px"], rows)]
        for check in (c for c in self.checks if c.float64):
            j = check.float64
            lines.append(f"  batch {check.report.images}: beyond {self.score_atol:g} / {BOX_ATOL:g} px, so judged "
                         f"against a float64 run: {Float64Judgement.unpaired(j.exported)} unpaired (PyTorch float32 "
                         f"{Float64Judgement.unpaired(j.torch)}), score {j.exported.max_score_diff:.3g} <= "
                         f"{j.score_limit:.3g}, box {j.exported.max_box_diff:.3g} <= {j.box_limit:.3g} px "
                         f"(tolerance + {NOISE_FACTOR:g} x PyTorch float32's own error {j.torch.max_score_diff:.3g} / "
                         f"{j.torch.max_box_diff:.3g} px)")
        return lines

    def record(self) -> dict:
        return {"criterion": f"detections matched per image and class by IoU >= {MATCH_IOU}: no reference detection "
                             f"unmatched (ties past 100 excepted), no extra detection, max score diff <= "
                             f"{self.score_atol:g}, max box coordinate diff <= {BOX_ATOL:g} px; beyond them, against a "
                             "float64 run of the reference: no more detections unpaired than PyTorch float32, score "
                             f"and box differences <= the tolerance + {NOISE_FACTOR:g} x PyTorch float32's own",
                "reference": "PyTorch reference path (ssdconvert.zoo.faster_rcnn.reference)",
                "runtime": "onnxruntime CPUExecutionProvider", "images": "synthetic (demo.synthetic_images)",
                "passed": True, "reports": [c.as_dict() for c in self.checks]}
