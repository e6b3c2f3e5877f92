"""torch -> ONNX export (dynamic batch), optional simplification, numeric validation.

Validation follows the optimum pattern: run ONNX Runtime and PyTorch on the same seeded input,
report max abs / max rel difference per output, and raise OutputMismatchError naming the output.

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
# Ops whose float inputs and outputs all share one type T, so rounding every float tensor to
# float16 keeps the graph valid. Anything else is refused rather than converted blindly.
FP16_SAFE_OPS = frozenset({
    "Add", "AveragePool", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Exp", "Flatten", "Gather",
    "Gemm", "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Shape",
    "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})
FP16_MAX = 65504.0
BATCH_AXIS_NAME = "-1"  # the symbolic batch name the Ascend reference export uses (§15)
VALIDATION_SEED = 1234


@dataclass
class OutputDiff:
    output: str
    batch: int
    max_abs: float
    max_rel: float  # max |onnx - torch| / (|torch| + atol)
    tolerance: float | None = None  # atol + rtol * max|torch|; None means the report's atol


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

    @property
    def passed(self) -> bool:
        return all(d.max_abs <= self.limit(d) for d in self.diffs)

    def first_failure(self) -> OutputDiff | None:
        return next((d for d in self.diffs if d.max_abs > self.limit(d)), None)


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

    The FP32 PyTorch model is always the reference. The input is fed in the dtype the ONNX graph
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
        report.diffs += compare_outputs(expected, actual, spec.output_names, batch, atol, rtol)
        for d in report.diffs[-len(spec.outputs):]:
            log.info("validate bs=%d %s: max abs %.3g, max rel %.3g", batch, d.output, d.max_abs, d.max_rel)
    return report


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
            raise OutputMismatchError(failure.output, failure.batch, failure.max_abs, report.limit(failure))
    result = ExportResult(output, Path(f"{output}.json"), report, simplifier, before, after,
                          time.perf_counter() - started, precision)
    write_json(result.sidecar_path, _provenance(spec, result, weights, batch, opset, dynamic_batch))
    return result


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
                       "criterion": "max abs diff <= atol + rtol * max|torch| per output",
                       "reference": "PyTorch float32", "runtime": "onnxruntime CPUExecutionProvider",
                       "passed": result.validation.passed,
                       "diffs": [_diff_record(d, result.validation) for d in result.validation.diffs]},
        "versions": {"ssdconvert": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "seconds": round(result.seconds, 2),
    }


def _diff_record(diff: OutputDiff, report: ValidationReport) -> dict:
    return dict(asdict(diff), tolerance=report.limit(diff))
