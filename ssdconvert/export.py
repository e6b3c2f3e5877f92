"""torch -> ONNX export (dynamic batch), optional simplification, numeric validation.

Validation follows the optimum pattern: run ONNX Runtime and PyTorch on the same seeded input,
report max abs / max rel difference per output, and raise OutputMismatchError naming the output.

A fixed absolute tolerance cannot judge outputs of every scale: with trained BatchNorm statistics
PyTorch's own float32 result is ~2e-4 away from the exact one, so a correct ONNX may differ from
it by more than 1e-4. An FP32 output that misses `atol` is therefore judged again against a
float64 run of the same model: it passes if its error from float64 is at most atol plus
NOISE_FACTOR times PyTorch float32's own error (the ONNX may be as inexact as PyTorch, not more).

FP16 (`precision="fp16"`): the FP32 graph is exported and simplified first (BatchNorm is folded
into the convolutions in FP32), then every float tensor of the graph (weights, constants, the
input and the outputs) is rounded to float16 once. It is validated against the FP32 PyTorch model
with a looser tolerance that scales with each output's range: max abs diff <= atol + rtol * max|torch|.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ssdconvert.errors import ExportError, OutputMismatchError
from ssdconvert.fileio import atomic_path, write_json

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.zoo.spec import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_OPSET = 11
SUPPORTED_OPSETS = range(11, 18)
DEFAULT_ATOL = 1e-4
PRECISIONS = ("fp32", "fp16")
# (atol, rtol) per precision; an output passes if max|onnx - torch| <= atol + rtol * max|torch|.
# fp32: the historical absolute 1e-4 (rtol 0). fp16: measured on ssd-resnet50 (seed 0) at
# max abs diff / max|torch| ~ 5e-4 (one fp16 rounding), so 5e-3 leaves 10x headroom for real weights.
DEFAULT_TOLERANCES = {"fp32": (DEFAULT_ATOL, 0.0), "fp16": (1e-3, 5e-3)}
# FP32 outputs beyond atol: allowed error from float64 = atol + NOISE_FACTOR x PyTorch float32's own
# error. Measured on ssd-resnet50 with BatchNorm statistics calibrated on data (outputs up to ~8):
# PyTorch float32 error 1.8e-4 / 2.3e-4, ONNX Runtime 1.2e-4 / 1.6e-4 (ploc / plabel); a BN eps
# of 1e-3 instead of 1e-5 moves the outputs by ~1.9, one layer's variances off by 0.1 % by ~0.06.
NOISE_FACTOR = 2.0
# Ops whose float inputs and outputs all share one type T, so rounding every float tensor to
# float16 keeps the graph valid. Anything else is refused rather than converted blindly.
FP16_SAFE_OPS = frozenset({
    "Add", "AveragePool", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Exp", "Flatten", "Gather",
    "Gemm", "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Shape",
    "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})
FP16_MAX = 65504.0
BATCH_AXIS_NAME = "-1"  # symbolic batch name of Ascend ModelZoo SSD-Resnet34 ssd_pth2onnx.py
VALIDATION_SEED = 1234


@dataclass
class Float64Check:
    """An FP32 output judged against a float64 run of the same model on the same input."""

    onnx_error: float  # max |onnx - torch float64|
    torch_error: float  # max |torch float32 - torch float64|: PyTorch's own float32 rounding
    limit: float  # atol + NOISE_FACTOR * torch_error

    @property
    def passed(self) -> bool:
        return self.onnx_error <= self.limit


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
class ValidationReport:
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


@dataclass
class ExportResult:
    onnx_path: Path
    sidecar_path: Path
    validation: ValidationReport
    simplifier: str | None
    nodes_before: int
    nodes_after: int
    seconds: float
    precision: str = "fp32"
    dynamic_batch: bool = True
    traced_batch: int = 1
    opset: int = DEFAULT_OPSET

    def figure(self) -> str:
        """One line for `ssdconvert run`."""
        return f"{self.onnx_path.name}: max abs diff vs PyTorch {self.validation.max_abs:.2g}"

    def metrics(self) -> dict:
        return {"max_abs_diff": self.validation.max_abs}

    def summary_lines(self) -> list[str]:
        """What `ssdconvert export` prints (before the weights line)."""
        from ssdconvert.formatting import format_table

        report = self.validation
        shape = "dynamic batch" if self.dynamic_batch else f"static batch {self.traced_batch}"
        simplified = (f"{self.simplifier} {self.nodes_before} -> {self.nodes_after} nodes"
                      if self.simplifier else "not simplified")
        lines = [f"wrote {self.onnx_path} ({shape}, opset {self.opset}, {simplified}, {self.seconds:.1f} s)"]
        if self.precision == "fp16":
            lines.append("precision: fp16 (weights, input `image` and outputs are float16; feed float16 tensors)")
        if report.rtol:
            lines.append(f"validation against FP32 PyTorch (ONNX Runtime CPU, max abs <= {report.atol:g} + "
                         f"{report.rtol:g} * max|torch|):")
            rows = [(d.batch, d.output, f"{d.max_abs:.3g}", f"{report.limit(d):.3g}") for d in report.diffs]
            lines.append(format_table(["batch", "output", "max abs", "tolerance"], rows))
        else:
            lines.append(f"validation against PyTorch (ONNX Runtime CPU, atol {report.atol:g}):")
            rows = [(d.batch, d.output, f"{d.max_abs:.3g}", f"{d.max_rel:.3g}") for d in report.diffs]
            lines.append(format_table(["batch", "output", "max abs", "max rel"], rows))
            for d in (d for d in report.diffs if d.float64):
                f = d.float64
                lines.append(f"  batch {d.batch} {d.output}: beyond atol, so judged against a float64 run: error "
                             f"{f.onnx_error:.3g} <= {f.limit:.3g} (atol + {NOISE_FACTOR:g} x PyTorch float32's own "
                             f"error {f.torch_error:.3g})")
        return lines

    def verdict(self) -> str:
        return f"PASSED (max abs diff {self.validation.max_abs:.3g}); details in {self.sidecar_path}"


def seeded_input(spec: "ModelSpec", batch: int, seed: int = VALIDATION_SEED) -> "np.ndarray":
    """Random normal NCHW input, like the reference export's dummy tensor."""
    import numpy as np

    return np.random.default_rng(seed).standard_normal(spec.input.with_batch(batch)).astype(np.float32)


def compare_outputs(
    expected: Sequence["np.ndarray"], actual: Sequence["np.ndarray"], names: Sequence[str], batch: int, atol: float,
    rtol: float = 0.0,
) -> list[OutputDiff]:
    import numpy as np

    diffs = []
    for name, ref, got in zip(names, expected, actual):
        if ref.shape != got.shape:
            raise ExportError(f"output '{name}' has shape {list(got.shape)}, PyTorch gives {list(ref.shape)}")
        ref64 = ref.astype(np.float64)
        err = np.abs(got.astype(np.float64) - ref64)
        if not np.isfinite(err).all():  # inf/NaN never pass (an fp16 overflow shows up here)
            err = np.where(np.isfinite(err), err, np.inf)
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
            exact = _float64_outputs(model, x)
            for d, ref, got, ref64 in zip(diffs, expected, actual, exact):
                torch_error, onnx_error = _max_abs(ref, ref64), _max_abs(got, ref64)
                d.float64 = Float64Check(onnx_error, torch_error, atol + NOISE_FACTOR * torch_error)
        for d in diffs:
            log.info("validate bs=%d %s: max abs %.3g, max rel %.3g%s", batch, d.output, d.max_abs, d.max_rel,
                     f", from float64 {d.float64.onnx_error:.3g} (PyTorch {d.float64.torch_error:.3g})"
                     if d.float64 else "")
        report.diffs += diffs
    return report


def _float64_outputs(model: "torch.nn.Module", x: "np.ndarray") -> list["np.ndarray"]:
    """The model's outputs computed in float64 (a copy of the model; the original is untouched)."""
    import copy

    import torch

    exact = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return [t.numpy() for t in exact(torch.from_numpy(x).double())]


def _max_abs(a: "np.ndarray", b: "np.ndarray") -> float:
    import numpy as np

    err = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(np.where(np.isfinite(err), err, np.inf).max())


def convert_to_fp16(path: Path) -> int:
    """Round every float32 tensor of the ONNX file (weights, constants, I/O, value_info) to float16.

    In place; returns the number of converted initializers. Refuses graphs with ops outside
    FP16_SAFE_OPS and weights that overflow float16, so nothing is converted silently wrong.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(path))
    unknown = sorted({n.op_type for n in model.graph.node
                      if n.op_type not in FP16_SAFE_OPS or n.domain not in ("", "ai.onnx")})
    if unknown:
        raise ExportError(f"FP16 conversion does not support op(s) {', '.join(unknown)}; export FP32 and use "
                          "the compiler's precision option instead")

    def half(tensor: "onnx.TensorProto") -> "onnx.TensorProto":
        values = numpy_helper.to_array(tensor)
        if np.abs(values).max(initial=0.0) > FP16_MAX:
            raise ExportError(f"tensor '{tensor.name}' has values beyond the float16 range (+-{FP16_MAX:g})")
        return numpy_helper.from_array(values.astype(np.float16), tensor.name)

    converted = 0
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(half(init))
            converted += 1
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.type == onnx.AttributeProto.TENSOR \
                    and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(half(attr.t))
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    for info in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        if info.type.tensor_type.elem_type == TensorProto.FLOAT:
            info.type.tensor_type.elem_type = TensorProto.FLOAT16
    try:
        onnx.checker.check_model(model, full_check=True)  # strict type inference catches a mixed graph
    except Exception as exc:  # noqa: BLE001 - checker errors have several types
        raise ExportError(f"the FP16 graph does not type-check: {exc}") from exc
    onnx.save(model, str(path))
    return converted


def simplify(path: Path) -> tuple[str | None, int, int]:
    """Simplify the ONNX file in place with onnxslim; keep the original if anything fails."""
    import onnx

    original = onnx.load(str(path))
    before = len(original.graph.node)
    try:
        import onnxslim

        slimmed = onnxslim.slim(original)
        onnx.checker.check_model(slimmed)
    except Exception as exc:  # noqa: BLE001 - any simplifier failure falls back to the original
        log.warning("onnxslim failed (%s); keeping the unsimplified model", exc)
        return None, before, before
    onnx.save(slimmed, str(path))
    return "onnxslim", before, len(slimmed.graph.node)


def _torch_export(model, spec: "ModelSpec", path: Path, batch: int, opset: int, dynamic_batch: bool) -> None:
    import torch

    dummy = torch.from_numpy(seeded_input(spec, batch))
    names = [spec.input.name, *spec.output_names]
    axes = {name: {0: BATCH_AXIS_NAME} for name in names} if dynamic_batch else None
    try:
        torch.onnx.export(
            model, (dummy,), str(path), input_names=[spec.input.name], output_names=list(spec.output_names),
            opset_version=opset, dynamic_axes=axes, do_constant_folding=True, dynamo=False,
        )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {exc}") from exc


def export_onnx(
    model: "torch.nn.Module",
    spec: "ModelSpec",
    output: str | Path,
    *,
    weights: "WeightsSource",
    batch: int = 1,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    simplify_model: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    precision: str = "fp32",
) -> ExportResult:
    """Export, simplify, validate at batch 1 and `batch`, then move into place and write `<output>.json`.

    `precision="fp16"` rounds the simplified FP32 graph to float16 (input and outputs included)
    before validation. `atol`/`rtol` default to DEFAULT_TOLERANCES[precision].
    """
    if precision not in PRECISIONS:
        raise ExportError(f"precision '{precision}' is not supported; use {' or '.join(PRECISIONS)}")
    default_atol, default_rtol = DEFAULT_TOLERANCES[precision]
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"opset {opset} is not supported; use {SUPPORTED_OPSETS.start}-{SUPPORTED_OPSETS.stop - 1}")
    if batch < 1:
        raise ExportError(f"batch size must be >= 1, got {batch}")
    output = Path(output)
    started = time.perf_counter()
    model = model.eval()
    with atomic_path(output) as tmp:
        _torch_export(model, spec, tmp, batch, opset, dynamic_batch)
        simplifier, before, after = simplify(tmp) if simplify_model else (None, 0, 0)
        if precision == "fp16":
            log.info("fp16: rounded %d initializers to float16", convert_to_fp16(tmp))
        report = validate_model_outputs(tmp, model, spec, [1, batch] if dynamic_batch else [batch], atol, rtol)
        failure = report.first_failure()
        if failure:
            raise report.error(failure)
    result = ExportResult(output, Path(f"{output}.json"), report, simplifier, before, after,
                          time.perf_counter() - started, precision, dynamic_batch, batch, opset)
    write_json(result.sidecar_path, _provenance(spec, result, weights, batch, opset, dynamic_batch))
    return result


def export_model(model: "torch.nn.Module", spec: "ModelSpec", output: str | Path, *, weights: "WeightsSource",
                 batch: int = 1, opset: int | None = None, variant: str | None = None, **options):
    """Export `model` for `spec` through the family's exporter (ModelSpec.exporter), or export_onnx for a
    family whose network forward is the graph (raw outputs, validated element by element).

    Returns the exporter's result: `onnx_path` (what to compile or run), `sidecar_path`, `seconds`,
    `figure()`, `summary_lines()` and `verdict()`.
    """
    if spec.exporter is not None:
        return spec.exporter(model, spec, output, weights=weights, batch=batch, opset=opset, variant=variant,
                             **options)
    if variant not in (None, "raw"):
        raise ExportError(f"{spec.name} has one export variant (raw outputs), not {variant!r}")
    return export_onnx(model, spec, output, weights=weights, batch=batch,
                       opset=DEFAULT_OPSET if opset is None else opset, **options)


def _provenance(spec, result: ExportResult, weights, batch: int, opset: int, dynamic_batch: bool) -> dict:
    import onnx
    import onnxruntime
    import torch

    from ssdconvert import __version__
    from ssdconvert.fileio import sha256_of

    described = spec.describe()
    io_dtype = "float16" if result.precision == "fp16" else "float32"
    if result.precision != "fp32":  # the I/O contract of this file, not of the PyTorch model
        described["input"]["dtype"] = io_dtype
        for out in described["outputs"]:
            out["dtype"] = io_dtype
    return {
        "model": spec.name,
        "precision": result.precision,
        "spec": described,
        "onnx": {"path": str(result.onnx_path), "sha256": sha256_of(result.onnx_path), "opset": opset,
                 "dynamic_batch": dynamic_batch, "traced_batch": batch, "batch_axis_name": BATCH_AXIS_NAME,
                 "precision": result.precision, "io_dtype": io_dtype},
        "simplifier": result.simplifier,
        "nodes": {"before": result.nodes_before, "after": result.nodes_after},
        "weights": weights.as_dict(),
        "validation": {"atol": result.validation.atol, "rtol": result.validation.rtol,
                       "criterion": "max abs diff <= atol + rtol * max|torch| per output; an fp32 output "
                                    f"beyond it: error from float64 <= atol + {NOISE_FACTOR:g} x PyTorch "
                                    "float32's own error",
                       "reference": "PyTorch float32", "runtime": "onnxruntime CPUExecutionProvider",
                       "passed": result.validation.passed,
                       "diffs": [_diff_record(d, result.validation) for d in result.validation.diffs]},
        "versions": {"ssdconvert": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "seconds": round(result.seconds, 2),
    }


def _diff_record(diff: OutputDiff, report: ValidationReport) -> dict:
    return dict(asdict(diff), tolerance=report.limit(diff), passed=report.passes(diff))
