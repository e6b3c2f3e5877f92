"""torch -> ONNX export (dynamic batch), optional simplification, numeric validation.

Validation follows the optimum pattern: run ONNX Runtime and PyTorch on the same seeded input,
report max abs / max rel difference per output, and raise OutputMismatchError naming the output.
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
BATCH_AXIS_NAME = "-1"  # the symbolic batch name the Ascend reference export uses (§15)
VALIDATION_SEED = 1234


@dataclass
class OutputDiff:
    output: str
    batch: int
    max_abs: float
    max_rel: float  # max |onnx - torch| / (|torch| + atol)


@dataclass
class ValidationReport:
    atol: float
    diffs: list[OutputDiff] = field(default_factory=list)

    @property
    def max_abs(self) -> float:
        return max((d.max_abs for d in self.diffs), default=0.0)

    @property
    def passed(self) -> bool:
        return self.max_abs <= self.atol

    def first_failure(self) -> OutputDiff | None:
        return next((d for d in self.diffs if d.max_abs > self.atol), None)


@dataclass
class ExportResult:
    onnx_path: Path
    sidecar_path: Path
    validation: ValidationReport
    simplifier: str | None
    nodes_before: int
    nodes_after: int
    seconds: float


def seeded_input(spec: "ModelSpec", batch: int, seed: int = VALIDATION_SEED) -> "np.ndarray":
    """Random normal NCHW input, like the reference export's dummy tensor."""
    import numpy as np

    return np.random.default_rng(seed).standard_normal(spec.input.with_batch(batch)).astype(np.float32)


def compare_outputs(
    expected: Sequence["np.ndarray"], actual: Sequence["np.ndarray"], names: Sequence[str], batch: int, atol: float
) -> list[OutputDiff]:
    import numpy as np

    diffs = []
    for name, ref, got in zip(names, expected, actual):
        if ref.shape != got.shape:
            raise ExportError(f"output '{name}' has shape {list(got.shape)}, PyTorch gives {list(ref.shape)}")
        err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        rel = err / (np.abs(ref.astype(np.float64)) + atol)
        diffs.append(OutputDiff(name, batch, float(err.max()), float(rel.max())))
    return diffs


def validate_model_outputs(
    onnx_path: str | Path,
    model: "torch.nn.Module",
    spec: "ModelSpec",
    batches: Sequence[int],
    atol: float = DEFAULT_ATOL,
) -> ValidationReport:
    """Run ONNX Runtime and PyTorch on the same seeded input for each batch size and compare."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    report = ValidationReport(atol=atol)
    for batch in dict.fromkeys(batches):
        x = seeded_input(spec, batch)
        with torch.no_grad():
            expected = [t.numpy() for t in model(torch.from_numpy(x))]
        actual = session.run(list(spec.output_names), {spec.input.name: x})
        report.diffs += compare_outputs(expected, actual, spec.output_names, batch, atol)
        for d in report.diffs[-len(spec.outputs):]:
            log.info("validate bs=%d %s: max abs %.3g, max rel %.3g", batch, d.output, d.max_abs, d.max_rel)
    return report


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
    atol: float = DEFAULT_ATOL,
) -> ExportResult:
    """Export, simplify, validate at batch 1 and `batch`, then move into place and write `<output>.json`."""
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
        report = validate_model_outputs(tmp, model, spec, [1, batch] if dynamic_batch else [batch], atol)
        failure = report.first_failure()
        if failure:
            raise OutputMismatchError(failure.output, failure.batch, failure.max_abs, atol)
    result = ExportResult(output, Path(f"{output}.json"), report, simplifier, before, after,
                          time.perf_counter() - started)
    write_json(result.sidecar_path, _provenance(spec, result, weights, batch, opset, dynamic_batch))
    return result


def _provenance(spec, result: ExportResult, weights, batch: int, opset: int, dynamic_batch: bool) -> dict:
    import onnx
    import onnxruntime
    import torch

    from ssdconvert import __version__
    from ssdconvert.checkpoints import sha256_of

    return {
        "model": spec.name,
        "spec": spec.describe(),
        "onnx": {"path": str(result.onnx_path), "sha256": sha256_of(result.onnx_path), "opset": opset,
                 "dynamic_batch": dynamic_batch, "traced_batch": batch, "batch_axis_name": BATCH_AXIS_NAME},
        "simplifier": result.simplifier,
        "nodes": {"before": result.nodes_before, "after": result.nodes_after},
        "weights": weights.as_dict(),
        "validation": {"atol": result.validation.atol, "passed": result.validation.passed,
                       "diffs": [asdict(d) for d in result.validation.diffs]},
        "versions": {"ssdconvert": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "seconds": round(result.seconds, 2),
    }
