"""Families whose source is an ONNX file, not a torch network (ModelSpec.load_source): read, checked, exported.

`ssdconvert export --model M --checkpoint model.onnx` for such a family:

    read      the file must parse as ONNX (else one CheckpointError line)
    check     its graph inputs and outputs must be the ones the spec declares: names, element types and
              per-sample shapes, any batch (else one CheckpointError line saying what the file has)
    float     a QDQ release (a graph with QuantizeLinear nodes) is dequantized (ssdconvert.dequantize):
              the export is its FP32 original, what a self-calibrating compiler or `quantize` wants; the
              release itself is never rewritten (run or compile it as it is). A float graph is kept as it is.
    graph     outputs in the declared order; the batch axis of every graph input and output made dynamic
              under one name (BATCH_AXIS_NAME), or fixed to --bs with --static-batch; stale shape
              annotations and opset imports of domains no node uses (tf2onnx's ai.onnx.ml: ATC takes
              one) dropped; simplified with onnxslim, then converted to the requested opset
              (onnx.version_converter; default 17, what the project's compilers take)
    validate  the exported file against the source's FP32 graph, both on ONNX Runtime CPU, on the family's
              example inputs (ModelSpec.example_inputs, else seeded ones) at batch 1 and --bs: per output
              max |exported - source| <= atol + rtol * max|source|, by default atol 1e-5, rtol 0 (the
              rewrites change no arithmetic; measured 0.0 on the ST model). A source whose batch is fixed
              runs sample group by sample group. For a QDQ release, the release's outputs against its FP32
              original on the same inputs are reported (SNR, cosine): information, not a gate.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from ssdconvert.errors import CheckpointError, ExportError
from ssdconvert.export import (ExportOptions, ExportPlan, FamilyExport, GraphSpec, VALIDATION_SEED, WrittenGraph,
                               simplify)
from ssdconvert.zoo.raw_outputs import BATCH_AXIS_NAME, OutputDiff, ValidationReport
from stageio.tensor import TensorSpec

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.zoo.spec import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
DEFAULT_TOLERANCES = {"fp32": (1e-5, 0.0)}  # (atol, rtol) of the exported graph against the source graph


@dataclass
class OnnxSource:
    """A family's source file, read and checked: `graph` is its FP32 graph (`release`: the QDQ file it was
    dequantized from, with what was folded)."""

    path: Path
    graph: "onnx.ModelProto"
    release: "onnx.ModelProto | None" = None
    folded: object = None  # ssdconvert.dequantize.FoldStats of a dequantized release

    def eval(self) -> "OnnxSource":
        """What export_model asks of its model (a torch module's eval mode): nothing to do for a graph."""
        return self

    def describe(self) -> dict:
        """The export record's "source" block."""
        g = self.release if self.release is not None else self.graph
        described = {"path": str(self.path), "producer": f"{g.producer_name} {g.producer_version}".strip(),
                     "opset": _opset(g), "nodes": len(g.graph.node), "qdq_release": self.release is not None}
        if self.release is not None:
            described["dequantized"] = {"folded_weights": self.folded.folded_weights,
                                        "removed": dict(self.folded.removed), "fp32_nodes": len(self.graph.graph.node)}
        return described


def load_onnx_source(spec: "ModelSpec", path: str | Path | None, *, default: Path | None = None
                     ) -> tuple[OnnxSource, "WeightsSource"]:
    """ModelSpec.load_source of an ONNX-source family: (the checked source, where it came from); `default` is
    the file used without --checkpoint."""
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.fileio import sha256_of

    if path is None and default is None:
        raise CheckpointError(f"{spec.name} is exported from an ONNX file: pass --checkpoint model.onnx")
    path = Path(path if path is not None else default)
    proto = read_graph(path)
    problems = contract_problems(proto, spec)
    if problems:
        raise CheckpointError(f"{path} is not the {spec.name} graph: {'; '.join(problems)}")
    source = float_source(path, proto)
    return source, WeightsSource(checkpoint=str(path), checkpoint_sha256=sha256_of(path))


def read_graph(path: Path) -> "onnx.ModelProto":
    import onnx

    if not path.is_file():
        raise CheckpointError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        from ssdconvert.backends.base import first_line

        raise CheckpointError(f"{path} is not an ONNX model ({first_line(exc)})") from None


def graph_tensors(proto: "onnx.ModelProto") -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's real inputs (initializers left out) and its outputs; dims None where symbolic."""
    from onnx import helper

    def spec_of(value) -> TensorSpec:
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "undefined"
        return TensorSpec.batched(value.name, dims, dtype)

    initializers = {i.name for i in proto.graph.initializer}
    return ([spec_of(v) for v in proto.graph.input if v.name not in initializers],
            [spec_of(v) for v in proto.graph.output])


def contract_problems(proto: "onnx.ModelProto", spec: "ModelSpec") -> list[str]:
    """What differs between the graph's inputs/outputs and the spec's declaration (empty: it is the graph)."""
    inputs, outputs = graph_tensors(proto)
    problems = []
    for kind, have, declared in (("inputs", inputs, spec.inputs), ("outputs", outputs, spec.outputs)):
        found = {t.name: t for t in have}
        if set(found) != {t.name for t in declared} or any(_describe(found[t.name]) != _describe(t) for t in declared):
            problems.append(f"its {kind} are {', '.join(map(_describe, have)) or 'none'} (expected "
                            f"{', '.join(map(_describe, declared))})")
    return problems


def _describe(t: TensorSpec) -> str:
    """`'name' uint8 [N,256,256,3]`: the batch axis shown as N whatever its size."""
    return f"'{t.name}' {t.dtype} [N,{','.join('?' if d is None else str(d) for d in t.shape)}]"


def float_source(path: Path, proto: "onnx.ModelProto") -> OnnxSource:
    """The source with its FP32 graph: a QDQ release dequantized, a float graph as it is."""
    if not any(n.op_type == "QuantizeLinear" for n in proto.graph.node):
        return OnnxSource(path, proto)
    from ssdconvert.dequantize import dequantize_graph

    graph, folded = dequantize_graph(copy.deepcopy(proto), str(path))
    log.info("%s is a QDQ release: dequantized (%d weights folded)", path, folded.folded_weights)
    return OnnxSource(path, graph, release=proto, folded=folded)


def _opset(proto: "onnx.ModelProto") -> int:
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def export_graph(source: OnnxSource, spec: "ModelSpec", batch: int | None) -> "onnx.ModelProto":
    """The source's FP32 graph with the declared output order, one batch axis (dynamic, or `batch`) and no stale
    shape annotations."""
    model = copy.deepcopy(source.graph)
    graph = model.graph
    by_name = {o.name: o for o in graph.output}
    ordered = [copy.deepcopy(by_name[name]) for name in spec.output_names]
    del graph.output[:]
    graph.output.extend(ordered)
    initializers = {i.name for i in graph.initializer}
    for value in [*(v for v in graph.input if v.name not in initializers), *graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        if batch is None:
            dim.dim_param = BATCH_AXIS_NAME
        else:
            dim.dim_value = batch
    del graph.value_info[:]  # inferred for the old batch; onnxslim infers them again
    used = {node.domain for node in graph.node} | {"", "ai.onnx"}
    kept = [o for o in model.opset_import if o.domain in used]  # ATC takes one opset import (E16005)
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return model


def convert_opset(path: Path, opset: int) -> None:
    """Convert the ONNX file in place to `opset` (onnx.version_converter); ExportError where it has no adapter."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(path))
    if _opset(model) == opset:
        return
    try:
        converted = version_converter.convert_version(model, opset)
        onnx.checker.check_model(converted)
    except Exception as exc:  # noqa: BLE001 - the converter raises RuntimeError with C++ text
        why = str(exc).strip().splitlines()[-1].split("failed: ")[-1]  # "No Adapter From Version $15 for Shape"
        raise ExportError(f"cannot convert the graph from opset {_opset(model)} to {opset} (onnx version converter: "
                          f"{why}); choose a higher --opset") from None
    onnx.save(converted, str(path))


@dataclass
class SourceValidation(ValidationReport):
    """Element-wise differences of the exported graph from the source graph, and the QDQ release's agreement."""

    inputs: str = ""
    release: list = field(default_factory=list)  # agreement.TensorFigures of the QDQ release against its FP32

    def figure(self) -> str:
        return f"max abs diff vs the source graph {self.max_abs:.2g}"

    def lines(self) -> list[str]:
        from ssdconvert.formatting import format_table

        rows = [(d.batch, d.output, f"{d.max_abs:.3g}", f"{self.limit(d):.3g}") for d in self.diffs]
        lines = [f"validation against the source graph (ONNX Runtime CPU, {self.inputs}):",
                 format_table(["batch", "output", "max abs", "tolerance"], rows)]
        if self.release:
            lines.append("the QDQ release against its FP32 original (information, not a gate):")
            lines += [f"  {fig.line()}" for fig in self.release]
        return lines

    def record(self) -> dict:
        from dataclasses import asdict

        return {"atol": self.atol, "rtol": self.rtol, "reference": "the source's FP32 graph on ONNX Runtime CPU",
                "inputs": self.inputs, "criterion": "max |exported - source| <= atol + rtol * max|source| per output",
                "runtime": "onnxruntime CPUExecutionProvider", "passed": self.passed,
                "diffs": [dict(asdict(d), tolerance=self.limit(d), passed=self.passes(d)) for d in self.diffs],
                "qdq_release_agreement": [{k: _json_value(v) for k, v in asdict(f).items()} for f in self.release]}


def _json_value(value):
    """inf and NaN as text (JSON has no such numbers)."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


class OnnxSourceExport(FamilyExport):
    """FamilyExport of an ONNX-source family: the graph is the source itself (module docstring)."""

    default_opset = DEFAULT_OPSET

    def check(self, spec: "ModelSpec", options: ExportOptions) -> None:
        if options.precision != "fp32":
            raise ExportError(f"{spec.name} exports FP32 only (its source is an ONNX graph, exported as it computes); "
                              "use the compiler's precision options for FP16")

    def graph_module(self, model: OnnxSource) -> "onnx.ModelProto":
        return model.graph

    def plan(self, model: OnnxSource, spec: "ModelSpec", output: Path, options: ExportOptions) -> ExportPlan:
        batch = None if options.dynamic_batch else options.batch
        proto = export_graph(model, spec, batch)
        graph = GraphSpec("model", output, proto, (), spec.input_names, spec.output_names, None)
        layout = "dynamic batch" if batch is None else f"static batch {batch}"
        return ExportPlan([graph], layout, {"dynamic_batch": batch is None, "batch_axis_name": BATCH_AXIS_NAME,
                                            "source": model.describe()})

    def write_graph(self, graph: GraphSpec, path: Path, opset: int, simplify_model: bool) -> WrittenGraph:
        import onnx

        onnx.save(graph.module, str(path))
        before = len(graph.module.graph.node)
        simplifier, before, after = simplify(path) if simplify_model else (None, before, before)
        convert_opset(path, opset)  # after onnxslim, which folds ops some converters lack (Pad 18 into Conv)
        return WrittenGraph(graph.part, path, simplifier, before, after)

    def validate(self, model: OnnxSource, spec: "ModelSpec", files: Mapping[str, Path],
                 options: ExportOptions) -> SourceValidation:
        atol, rtol = DEFAULT_TOLERANCES["fp32"]
        atol, rtol = (atol if options.atol is None else options.atol), (rtol if options.rtol is None else options.rtol)
        batches = list(dict.fromkeys([1, options.batch] if options.dynamic_batch else [options.batch]))
        report = validate_against_source(model, spec, files["model"], batches, atol, rtol)
        failure = report.first_failure()
        if failure:
            raise ExportError(f"output '{failure.output}' of {files['model'].name} differs from the source graph at "
                              f"batch {failure.batch}: max abs diff {failure.max_abs:.3g} > tolerance "
                              f"{report.limit(failure):.3g}")
        return report


ONNX_SOURCE = OnnxSourceExport()


def validate_against_source(source: OnnxSource, spec: "ModelSpec", exported: Path, batches: Sequence[int],
                            atol: float, rtol: float) -> SourceValidation:
    """Run `exported` and the source's FP32 graph (and a QDQ release) on the same inputs at each batch."""
    from ssdconvert.agreement import TensorStats

    names = list(spec.output_names)
    reference, candidate = _session(source.graph), _session(exported)
    release = _session(source.release) if source.release is not None else None
    stats = {name: TensorStats(name) for name in names}
    which = "the family's example inputs" if spec.example_inputs is not None else f"seeded inputs (seed {VALIDATION_SEED})"
    report = SourceValidation(atol=atol, rtol=rtol, inputs=f"{which}, atol {atol:g}, rtol {rtol:g}")
    for batch in batches:
        feeds = validation_feeds(spec, batch)
        expected = _run(reference, names, feeds)
        report.diffs += _compare(expected, _run(candidate, names, feeds), names, batch, atol, rtol)
        if release is not None:
            for name, ref, got in zip(names, expected, _run(release, names, feeds)):
                stats[name].update(ref, got)
    report.release = [s.figures() for s in stats.values()] if release is not None else []
    return report


def validation_feeds(spec: "ModelSpec", batch: int) -> dict[str, "np.ndarray"]:
    """The family's example inputs for `batch` samples, else seeded random ones in each input's dtype."""
    from ssdconvert.timing import synthetic_feeds

    return spec.example_feeds(batch) or synthetic_feeds(spec.inputs, batch, seed=VALIDATION_SEED)


def _session(model: "onnx.ModelProto | Path"):
    import onnxruntime as ort

    data = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _run(session, names: list[str], feeds: dict[str, "np.ndarray"]) -> list["np.ndarray"]:
    """The outputs `names` for `feeds`; a graph with a fixed batch runs on groups of that many samples."""
    import numpy as np

    fixed = session.get_inputs()[0].shape[0]
    total = len(next(iter(feeds.values())))
    if not isinstance(fixed, int) or fixed == total:
        return session.run(names, feeds)
    if total % fixed:
        raise ExportError(f"the source graph has a fixed batch of {fixed}; validate at a multiple of it (--bs)")
    parts = [session.run(names, {k: v[s:s + fixed] for k, v in feeds.items()}) for s in range(0, total, fixed)]
    return [np.concatenate(arrays) for arrays in zip(*parts)]


def _compare(expected: Sequence["np.ndarray"], actual: Sequence["np.ndarray"], names: Sequence[str], batch: int,
             atol: float, rtol: float) -> list[OutputDiff]:
    """Per output: max abs and max rel difference from the source graph; shapes must agree, values be finite."""
    import numpy as np

    diffs = []
    for name, ref, got in zip(names, expected, actual):
        if ref.shape != got.shape:
            raise ExportError(f"output '{name}' has shape {list(got.shape)}, the source graph gives {list(ref.shape)}")
        for side, values in (("the source graph", ref), ("the exported graph", got)):
            bad = int((~np.isfinite(values)).sum())
            if bad:
                raise ExportError(f"output '{name}' of {side} has {bad} of {values.size} values not finite (NaN or inf) "
                                  f"at batch {batch}")
        ref64 = ref.astype(np.float64)
        err = np.abs(got.astype(np.float64) - ref64)
        tolerance = atol + rtol * float(np.abs(ref64).max()) if rtol else None
        diffs.append(OutputDiff(name, batch, float(err.max()), float((err / (np.abs(ref64) + atol)).max()), tolerance))
    return diffs
