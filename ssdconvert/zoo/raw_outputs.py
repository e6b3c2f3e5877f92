"""The export of a family whose network forward is the graph: raw head outputs, compared element by element.

The SSD families use it (ModelSpec's default exporter). The graph is the network itself, traced on
the seeded input at the requested batch with input `image` and the head's outputs, the batch axis
dynamic (named "-1" like Ascend ModelZoo's ssd_pth2onnx.py) unless --static-batch.

Validation follows the optimum pattern: ONNX Runtime and PyTorch run the same seeded input
(ssdconvert.export.seeded_input) at batch 1 and the traced batch; per output the max abs / max rel
difference is reported and an output beyond its tolerance raises OutputMismatchError naming it.
An FP32 output beyond `atol` is judged again against a float64 run of the same model: it passes
if its error from float64 is at most atol + NOISE_FACTOR x PyTorch float32's own error (see
ssdconvert.export). NaN or inf in either side's outputs fail (NonFiniteOutputError).

FP16 (`precision="fp16"`): the FP32 graph is exported and simplified first (BatchNorm is folded
into the convolutions in FP32), then every float tensor of the graph (weights, constants, the
input and the outputs) is rounded to float16 once. It is validated against the FP32 PyTorch model
with a looser tolerance that scales with each output's range: max abs diff <= atol + rtol * max|torch|.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from ssdconvert.errors import ExportError, OutputMismatchError
from ssdconvert.export import (NOISE_FACTOR, ExportOptions, ExportPlan, FamilyExport, GraphSpec, Validation,
                               check_finite, float64_copy, seeded_input)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ssdconvert.zoo.spec import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_ATOL = 1e-4
# (atol, rtol) per precision; an output passes if max|onnx - torch| <= atol + rtol * max|torch|.
# fp32: the historical absolute 1e-4 (rtol 0). fp16: measured on ssd-resnet50 (seed 0) at
# max abs diff / max|torch| ~ 5e-4 (one fp16 rounding), so 5e-3 leaves 10x headroom for real weights.
DEFAULT_TOLERANCES = {"fp32": (DEFAULT_ATOL, 0.0), "fp16": (1e-3, 5e-3)}
BATCH_AXIS_NAME = "-1"  # symbolic batch name of Ascend ModelZoo SSD-Resnet34 ssd_pth2onnx.py


@dataclass
class Float64Check:
    """An FP32 output judged against a float64 run of the same model on the same input."""

    onnx_error: float  # max |onnx - torch float64|
    torch_error: float  # max |torch float32 - torch float64|: PyTorch's own float32 rounding
    limit: float  # atol + NOISE_FACTOR * torch_error

    @property
    def passed(self) -> bool:
        return math.isfinite(self.limit) and self.onnx_error <= self.limit


@dataclass
class OutputDiff:
    output: str
    batch: int
    max_abs: float
    max_rel: float  # max |onnx - torch| / (|torch| + atol)
    tolerance: float | None = None  # atol + rtol * max|torch|; None means the report's atol
    float64: Float64Check | None = None  # set when max_abs alone did not pass (FP32 only)

    def detail(self, limit: float) -> str:
        """Why this output fails: the figures a user needs to judge the export."""
        if self.float64 is None:
            return f"max abs diff {self.max_abs:.3g} > tolerance {limit:.3g}"
        f = self.float64
        return (f"max abs diff {self.max_abs:.3g} from PyTorch float32, {f.onnx_error:.3g} from a float64 run > "
                f"{f.limit:.3g} (atol {limit:g} + {NOISE_FACTOR:g} x PyTorch float32's own error {f.torch_error:.3g})")


@dataclass
class ValidationReport(Validation):
    """Element-wise differences per (batch, output) and how each was judged."""

    atol: float
    diffs: list[OutputDiff] = field(default_factory=list)
    rtol: float = 0.0
    precision: str = "fp32"

    def limit(self, diff: OutputDiff) -> float:
        return self.atol if diff.tolerance is None else diff.tolerance

    @property
    def max_abs(self) -> float:
        return max((d.max_abs for d in self.diffs), default=0.0)

    def passes(self, diff: OutputDiff) -> bool:
        return diff.float64.passed if diff.float64 is not None else diff.max_abs <= self.limit(diff)

    @property
    def passed(self) -> bool:
        return all(self.passes(d) for d in self.diffs)

    def first_failure(self) -> OutputDiff | None:
        return next((d for d in self.diffs if not self.passes(d)), None)

    def error(self, diff: OutputDiff) -> OutputMismatchError:
        limit = self.limit(diff)
        return OutputMismatchError(diff.output, diff.batch, diff.max_abs, limit, diff.detail(limit))

    def figure(self) -> str:
        return f"max abs diff vs PyTorch {self.max_abs:.2g}"

    def summary(self) -> str:
        return f"max abs diff {self.max_abs:.3g}"

    def metrics(self) -> dict:
        return {"max_abs_diff": self.max_abs}

    def lines(self) -> list[str]:
        from ssdconvert.formatting import format_table

        if self.rtol:
            rows = [(d.batch, d.output, f"{d.max_abs:.3g}", f"{self.limit(d):.3g}") for d in self.diffs]
            return [f"validation against FP32 PyTorch (ONNX Runtime CPU, max abs <= {self.atol:g} + {self.rtol:g} * "
                    "max|torch|):", format_table(["batch", "output", "max abs", "tolerance"], rows)]
        rows = [(d.batch, d.output, f"{d.max_abs:.3g}", f"{d.max_rel:.3g}") for d in self.diffs]
        lines = [f"validation against PyTorch (ONNX Runtime CPU, atol {self.atol:g}):",
                 format_table(["batch", "output", "max abs", "max rel"], rows)]
        for d in (d for d in self.diffs if d.float64):
            f = d.float64
            lines.append(f"  batch {d.batch} {d.output}: beyond atol, so judged against a float64 run: error "
                         f"{f.onnx_error:.3g} <= {f.limit:.3g} (atol + {NOISE_FACTOR:g} x PyTorch float32's own "
                         f"error {f.torch_error:.3g})")
        return lines

    def record(self) -> dict:
        return {"atol": self.atol, "rtol": self.rtol,
                "criterion": "max abs diff <= atol + rtol * max|torch| per output; an fp32 output beyond it: error "
                             f"from float64 <= atol + {NOISE_FACTOR:g} x PyTorch float32's own error",
                "reference": "PyTorch float32", "runtime": "onnxruntime CPUExecutionProvider", "passed": self.passed,
                "diffs": [dict(asdict(d), tolerance=self.limit(d), passed=self.passes(d)) for d in self.diffs]}


class RawOutputsExport(FamilyExport):
    """FamilyExport of a network whose forward gives the head's raw outputs (the SSD families)."""

    variants = ("raw",)

    def graph_module(self, model: "torch.nn.Module") -> "torch.nn.Module":
        return model

    def plan(self, model: "torch.nn.Module", spec: "ModelSpec", output: Path, options: ExportOptions) -> ExportPlan:
        import torch

        names = (spec.input.name, *spec.output_names)
        axes = {name: {0: BATCH_AXIS_NAME} for name in names} if options.dynamic_batch else None
        graph = GraphSpec("model", output, model, (torch.from_numpy(seeded_input(spec, options.batch)),),
                          (spec.input.name,), spec.output_names, axes)
        layout = "dynamic batch" if options.dynamic_batch else f"static batch {options.batch}"
        return ExportPlan([graph], layout, {"dynamic_batch": options.dynamic_batch,
                                            "batch_axis_name": BATCH_AXIS_NAME})

    def validate(self, model: "torch.nn.Module", spec: "ModelSpec", files: Mapping[str, Path],
                 options: ExportOptions) -> ValidationReport:
        default_atol, default_rtol = DEFAULT_TOLERANCES[options.precision]
        batches = [1, options.batch] if options.dynamic_batch else [options.batch]
        report = validate_model_outputs(files["model"], model, spec, batches,
                                        default_atol if options.atol is None else options.atol,
                                        default_rtol if options.rtol is None else options.rtol)
        failure = report.first_failure()
        if failure:
            raise report.error(failure)
        return report


RAW_OUTPUTS = RawOutputsExport()


def compare_outputs(
    expected: Sequence["np.ndarray"], actual: Sequence["np.ndarray"], names: Sequence[str], batch: int, atol: float,
    rtol: float = 0.0,
) -> list[OutputDiff]:
    """Per output: max abs and max rel difference (NonFiniteOutputError where either side is not finite)."""
    import numpy as np

    diffs = []
    for name, ref, got in zip(names, expected, actual):
        if ref.shape != got.shape:
            raise ExportError(f"output '{name}' has shape {list(got.shape)}, PyTorch gives {list(ref.shape)}")
        check_finite(name, ref, "PyTorch", batch)
        check_finite(name, got, "the ONNX model (ONNX Runtime)", batch)  # an fp16 overflow shows up here
        ref64 = ref.astype(np.float64)
        err = np.abs(got.astype(np.float64) - ref64)
        rel = err / (np.abs(ref64) + atol)
        tolerance = atol + rtol * float(np.abs(ref64).max()) if rtol else None
        diffs.append(OutputDiff(name, batch, float(err.max()), float(rel.max()), tolerance))
    return diffs


def _numpy_dtype(ort_type: str):
    """'tensor(float16)' -> numpy.float16 (the input dtype an ONNX Runtime session expects)."""
    import numpy as np

    return {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}.get(
        ort_type, np.float32)


def validate_model_outputs(
    onnx_path: str | Path,
    model: "torch.nn.Module",
    spec: "ModelSpec",
    batches: Sequence[int],
    atol: float = DEFAULT_ATOL,
    rtol: float = 0.0,
) -> ValidationReport:
    """Run ONNX Runtime and PyTorch on the same seeded input for each batch size and compare.

    The FP32 PyTorch model is the reference; an FP32 graph output beyond `atol` is judged again
    against a float64 run (see the module docstring). The input is fed in the dtype the ONNX graph
    declares (a float16 graph gets the same seeded values rounded to float16).
    """
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_dtype = _numpy_dtype(session.get_inputs()[0].type)
    precision = "fp16" if session.get_inputs()[0].type == "tensor(float16)" else "fp32"
    report = ValidationReport(atol=atol, rtol=rtol, precision=precision)
    for batch in dict.fromkeys(batches):
        x = seeded_input(spec, batch)
        with torch.no_grad():
            expected = [t.float().numpy() for t in model(torch.from_numpy(x))]
        actual = session.run(list(spec.output_names), {spec.input.name: x.astype(input_dtype)})
        diffs = compare_outputs(expected, actual, spec.output_names, batch, atol, rtol)
        if precision == "fp32" and any(d.max_abs > report.limit(d) for d in diffs):
            with torch.no_grad():
                exact = [t.numpy() for t in float64_copy(model)(torch.from_numpy(x).double())]
            for d, ref, got, ref64 in zip(diffs, expected, actual, exact):
                torch_error, onnx_error = _max_abs(ref, ref64), _max_abs(got, ref64)
                d.float64 = Float64Check(onnx_error, torch_error, atol + NOISE_FACTOR * torch_error)
        for d in diffs:
            log.info("validate bs=%d %s: max abs %.3g, max rel %.3g%s", batch, d.output, d.max_abs, d.max_rel,
                     f", from float64 {d.float64.onnx_error:.3g} (PyTorch {d.float64.torch_error:.3g})"
                     if d.float64 else "")
        report.diffs += diffs
    return report


def _max_abs(a: "np.ndarray", b: "np.ndarray") -> float:
    """max |a - b| in float64; inf where either is not finite."""
    import numpy as np

    err = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.where(np.isfinite(err), err, np.inf).max())
