"""The one torch -> ONNX export path (optimum's pattern): the shared work here, the differences in each family.

`export_model` is how every detector becomes ONNX. It owns what all families share: the supported
opsets, the validation seed, the `torch.onnx.export` call, onnxslim, FP16 rounding, a composite's
descriptor (through ssdconvert.backends.composite), writing every file of an export together and
atomically (a failed or interrupted export leaves nothing behind), the provenance record
`<file>.json` and one typed ExportResult. A family (`ModelSpec.exporter`, a FamilyExport)
supplies what differs: its graph(s) with their example inputs, names and axes (ExportPlan), and
`validate`, which runs the written files on the family's validation inputs against PyTorch with
the family's comparator and raises a typed ExportError naming the output and the difference:

- ssdconvert.zoo.raw_outputs: the network's forward is the graph, compared element by element
  (the SSD families);
- ssdconvert.zoo.faster_rcnn.export: the fixed-size detector, or the split variant's two models
  and host stage, compared detection by detection.

Judged against float64. A fixed tolerance cannot judge every model: with trained statistics
PyTorch's own float32 result can be further from the exact one than the tolerance, so a correct
ONNX would fail. Both comparators judge a difference beyond their fixed tolerance again against a
float64 run of the same PyTorch model (`float64_copy`): the ONNX passes if its error from float64
is at most the tolerance plus NOISE_FACTOR times PyTorch float32's own error (the ONNX may be as
inexact as PyTorch, not more). Non-finite values are never judged: a NaN or inf in PyTorch's or
the ONNX's outputs fails the export naming the output (`check_finite`, NonFiniteOutputError).
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

from ssdconvert.errors import ExportError, NonFiniteOutputError
from ssdconvert.fileio import atomic_path, write_json

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.zoo.spec import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_OPSET = 11
SUPPORTED_OPSETS = range(11, 18)
PRECISIONS = ("fp32", "fp16")
VALIDATION_SEED = 1234
# Allowed error from float64 = tolerance + NOISE_FACTOR x PyTorch float32's own error. Measured with
# statistics calibrated on data: ssd-resnet50 (outputs up to ~8) PyTorch float32 1.8e-4 / 2.3e-4,
# ONNX Runtime 1.2e-4 / 1.6e-4 from float64 (ploc / plabel); faster-rcnn-r101-fpn at 128x160
# (tests/families/faster_rcnn/test_export_tolerance.py) PyTorch float32 3.1e-4 / 0.023 px, ONNX
# Runtime 1.9e-4 / 0.016 px (score / box coordinate).
NOISE_FACTOR = 2.0
# Ops whose float inputs and outputs all share one type T, so rounding every float tensor to
# float16 keeps the graph valid. Anything else is refused rather than converted blindly.
FP16_SAFE_OPS = frozenset({
    "Add", "AveragePool", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Exp", "Flatten", "Gather",
    "Gemm", "GlobalAveragePool", "Identity", "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Shape",
    "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})
FP16_MAX = 65504.0


@dataclass(frozen=True)
class ExportOptions:
    """What the caller asks for. `opset` and `variant` None: the family's defaults (resolve_options);
    `atol` and `rtol` None: the family comparator's defaults for the precision."""

    batch: int = 1
    opset: int | None = None
    variant: str | None = None
    dynamic_batch: bool = True
    simplify_model: bool = True
    atol: float | None = None
    rtol: float | None = None
    precision: str = "fp32"


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX file a family asks for: `module(*args)` traced with these names and dynamic axes."""

    part: str  # its role: "model", or a composite part's name ("dense", "head")
    path: Path
    module: "torch.nn.Module"
    args: tuple
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]] | None
    # per-sample output shapes written into the graph where the exporter leaves them symbolic
    output_shapes: Mapping[str, tuple[int, ...]] | None = None
    rows_per_image: int = 1  # a composite part's rows per image (a box head runs 1000 RoIs per image)


@dataclass
class ExportPlan:
    """What a family exports for one request and how the files are described."""

    graphs: list[GraphSpec]
    layout: str  # the summary's words for the shapes: "dynamic batch", "fixed variant, canvas 128x160, dynamic batch"
    record: dict  # the sidecar's "onnx" fields for the shapes (dynamic_batch, batch_axis_name, canvas, ...)
    label: str = ""  # what `run`'s figure adds after the file name
    descriptor: Path | None = None  # a model in several files: its composite descriptor (ssdconvert.backends.composite)
    stage: dict | None = None  # the descriptor's host-stage settings

    @property
    def main_path(self) -> Path:
        """What to compile or run: a composite's descriptor, else the ONNX."""
        return self.descriptor if self.descriptor is not None else self.graphs[0].path


@dataclass(frozen=True)
class WrittenGraph:
    part: str
    path: Path
    simplifier: str | None
    nodes_before: int
    nodes_after: int


class Validation(ABC):
    """A family comparator's figures for exported files that agree with PyTorch (disagreement raises)."""

    @abstractmethod
    def figure(self) -> str:
        """The comparison in a few words, for `run`."""

    @abstractmethod
    def summary(self) -> str:
        """What the PASSED line says in brackets."""

    @abstractmethod
    def lines(self) -> list[str]:
        """What `ssdconvert export` prints about the comparison."""

    @abstractmethod
    def metrics(self) -> dict:
        """The figures `run` records."""

    @abstractmethod
    def record(self) -> dict:
        """The sidecar's "validation" block."""


class FamilyExport(ABC):
    """A detector family's part of the export (ModelSpec.exporter); the rest is export_model's."""

    default_opset: int = DEFAULT_OPSET
    variants: tuple[str, ...] = ("raw",)  # the first is the default

    def check(self, spec: "ModelSpec", options: ExportOptions) -> None:
        """Refuse, before any work, options this family cannot honour (ExportError)."""

    @abstractmethod
    def graph_module(self, model: "torch.nn.Module") -> "torch.nn.Module":
        """The module whose forward the main graph is (inputs in the spec's input order)."""

    @abstractmethod
    def plan(self, model: "torch.nn.Module", spec: "ModelSpec", output: Path, options: ExportOptions) -> ExportPlan:
        """The graphs to write for `output` (and their descriptor, for a composite) and how to describe them."""

    @abstractmethod
    def validate(self, model: "torch.nn.Module", spec: "ModelSpec", files: Mapping[str, Path],
                 options: ExportOptions) -> Validation:
        """Run the written files (part -> path) against PyTorch; raise a typed ExportError naming the output and
        the difference where they disagree."""


@dataclass
class ExportResult:
    """What `ssdconvert export` and `run` report about an export, for every family."""

    onnx_path: Path  # what to compile or run: the ONNX, or a composite's descriptor
    sidecar_path: Path
    graphs: list[WrittenGraph]
    validation: Validation
    options: ExportOptions  # resolved: opset and variant set
    layout: str
    label: str = ""
    seconds: float = 0.0

    @property
    def files(self) -> list[Path]:
        """Every file written but the record: the ONNX files, then a composite's descriptor."""
        paths = [g.path for g in self.graphs]
        return paths if self.onnx_path in paths else [*paths, self.onnx_path]

    @property
    def precision(self) -> str:
        return self.options.precision

    @property
    def opset(self) -> int:
        return int(self.options.opset)

    def figure(self) -> str:
        """One line for `ssdconvert run`."""
        return f"{self.onnx_path.name}{self.label}: {self.validation.figure()}"

    def metrics(self) -> dict:
        return self.validation.metrics()

    def summary_lines(self) -> list[str]:
        """What `ssdconvert export` prints (the weights line goes after the first)."""
        names = " + ".join([str(self.files[0]), *(p.name for p in self.files[1:])])
        lines = [f"wrote {names} ({self.layout}, opset {self.opset}, {self._nodes()}, {self.seconds:.1f} s)"]
        if self.precision == "fp16":
            lines.append("precision: fp16 (weights, input `image` and outputs are float16; feed float16 tensors)")
        return lines + self.validation.lines()

    def _nodes(self) -> str:
        simplifier = next((g.simplifier for g in self.graphs if g.simplifier), None)
        if simplifier is None:
            return f"not simplified, {' + '.join(str(g.nodes_after) for g in self.graphs)} nodes"
        return f"{simplifier} {', '.join(f'{g.nodes_before} -> {g.nodes_after}' for g in self.graphs)} nodes"

    def verdict(self) -> str:
        return f"PASSED ({self.validation.summary()}); details in {self.sidecar_path}"


# ----------------------------------------------------------------------------------------------- the path


def export_model(model: "torch.nn.Module", spec: "ModelSpec", output: str | Path, *, weights: "WeightsSource",
                 **options) -> ExportResult:
    """Export `model` as `spec`'s family plans it, validate it, then move every file into place with its record.

    `options`: the fields of ExportOptions. Nothing is left on disk unless the whole export passed.
    """
    family = spec.exporter
    resolved = resolve_options(family, spec, ExportOptions(**options))
    started = time.perf_counter()
    model = model.eval()
    plan = family.plan(model, spec, Path(output), resolved)
    sidecar = Path(f"{plan.main_path}.json")
    with _staged([*(g.path for g in plan.graphs), plan.main_path, sidecar]) as staged:
        written = [write_graph(g, staged[g.path], resolved.opset, resolved.simplify_model) for g in plan.graphs]
        if resolved.precision == "fp16":
            for g in plan.graphs:
                log.info("fp16: rounded %d initializers to float16", convert_to_fp16(staged[g.path]))
        validation = family.validate(model, spec, {g.part: staged[g.path] for g in plan.graphs}, resolved)
        if plan.descriptor is not None:
            _write_descriptor(plan, spec, resolved.variant, staged[plan.descriptor])
        result = ExportResult(plan.main_path, sidecar, [replace(w, path=g.path) for w, g in zip(written, plan.graphs)],
                              validation, resolved, plan.layout, plan.label, time.perf_counter() - started)
        write_json(staged[sidecar], _provenance(spec, result, weights, plan.record, staged))
    return result


def resolve_options(family: FamilyExport, spec: "ModelSpec", options: ExportOptions) -> ExportOptions:
    """`options` with the family's default opset and variant; refuse what cannot be exported (ExportError)."""
    options = replace(options, opset=family.default_opset if options.opset is None else options.opset,
                      variant=options.variant or family.variants[0])
    if options.precision not in PRECISIONS:
        raise ExportError(f"precision '{options.precision}' is not supported; use {' or '.join(PRECISIONS)}")
    if options.opset not in SUPPORTED_OPSETS:
        raise ExportError(f"opset {options.opset} is not supported; use {SUPPORTED_OPSETS.start}-"
                          f"{SUPPORTED_OPSETS.stop - 1}")
    if options.batch < 1:
        raise ExportError(f"batch size must be >= 1, got {options.batch}")
    if options.variant not in family.variants:
        raise ExportError(f"{spec.name} has the export variant(s) {', '.join(family.variants)}, not "
                          f"{options.variant!r}")
    family.check(spec, options)
    return options


@contextlib.contextmanager
def _staged(targets: Sequence[Path]) -> Iterator[dict[Path, Path]]:
    """A temporary file beside each target (fileio.atomic_path); all are renamed onto their targets, in the
    order given (the record last), only if the block succeeds, and removed on any error or Ctrl-C."""
    with contextlib.ExitStack() as stack:
        ordered = list(dict.fromkeys(targets))
        # an ExitStack leaves its contexts last-entered first: enter the last target first
        staged = {target: stack.enter_context(atomic_path(target)) for target in reversed(ordered)}
        yield staged


def write_graph(graph: GraphSpec, path: Path, opset: int, simplify_model: bool) -> WrittenGraph:
    """torch.onnx.export `graph` to `path`, then simplify it and declare its output shapes."""
    torch_export(graph, path, opset)
    if simplify_model:
        simplifier, before, after = simplify(path)
    else:
        simplifier, before, after = None, _node_count(path), _node_count(path)
    if graph.output_shapes:
        declare_output_shapes(path, graph.output_shapes)
    return WrittenGraph(graph.part, path, simplifier, before, after)


def torch_export(graph: GraphSpec, path: Path, opset: int) -> None:
    """The TorchScript exporter (dynamo=False), constants folded; ExportError on any failure."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings(), torch.no_grad():
            # every size the tracer sees as a Python int is a constant of the family's graph (a fixed canvas);
            # the dynamic axes are declared, and sizes that must follow them are computed in the graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(graph.module.eval(), graph.args, str(path), input_names=list(graph.input_names),
                              output_names=list(graph.output_names), opset_version=opset,
                              dynamic_axes=None if graph.dynamic_axes is None else dict(graph.dynamic_axes),
                              do_constant_folding=True, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise ExportError(f"torch.onnx.export failed at opset {opset}: {exc}") from exc


def _node_count(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path)).graph.node)


def _write_descriptor(plan: ExportPlan, spec: "ModelSpec", variant: str, path: Path) -> None:
    """The composite descriptor naming the plan's files (ssdconvert.backends.composite writes it)."""
    from ssdconvert.backends import composite

    def tensors(specs) -> list[dict]:
        return [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in specs]

    raw = {"schema": composite.SCHEMA, "version": composite.VERSION, "model": spec.name, "variant": variant,
           "inputs": tensors(spec.inputs), "outputs": tensors(spec.outputs), "parts": [], "stage": plan.stage or {}}
    parts = tuple(composite.Part(g.part, g.path, g.rows_per_image) for g in plan.graphs)
    composite.write(path, composite.Composite(plan.main_path, spec.name, variant, parts, raw),
                    {p.name: p.path for p in parts})


# ------------------------------------------------------------------------------------ shared by comparators


def seeded_input(spec: "ModelSpec", batch: int, seed: int = VALIDATION_SEED) -> "np.ndarray":
    """Random normal NCHW input of `spec`'s image shape, like the reference export's dummy tensor."""
    import numpy as np

    return np.random.default_rng(seed).standard_normal(spec.input.with_batch(batch)).astype(np.float32)


def float64_copy(model: "torch.nn.Module") -> "torch.nn.Module":
    """A float64 copy of `model` (the original is untouched): the exact run comparators judge against."""
    import copy

    return copy.deepcopy(model).double().eval()


def check_finite(output: str, values: "np.ndarray", source: str, batch: int) -> None:
    """NonFiniteOutputError naming `output` if `values` (from `source`, e.g. "PyTorch") hold NaN or inf."""
    import numpy as np

    values = np.asarray(values)
    if values.dtype.kind != "f":
        return
    bad = ~np.isfinite(values)
    if bad.any():
        raise NonFiniteOutputError(output, batch, source, int(bad.sum()), int(values.size))


# -------------------------------------------------------------------------------------------- graph steps


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


def declare_output_shapes(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Write fixed per-sample output shapes into the graph's outputs where the exporter left them symbolic
    (torch names a Where's output dims `Whereboxes_dim_1`): compilers and readers see the static sizes."""
    import onnx

    model = onnx.load(str(path))
    changed = False
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        for dim, size in zip(list(dims)[1:], shapes.get(output.name, ())):
            if not dim.HasField("dim_value") or dim.dim_value != size:
                dim.Clear()
                dim.dim_value = size
                changed = True
    if changed:
        onnx.save(model, str(path))


def convert_to_fp16(path: Path) -> int:
    """Round every float32 tensor of the ONNX file (weights, constants, I/O, value_info) to float16.

    In place; returns the number of converted initializers. Refuses graphs with ops outside
    FP16_SAFE_OPS and weights that overflow float16, so nothing is converted silently wrong.
    """
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path))
    unknown = sorted({n.op_type for n in model.graph.node
                      if n.op_type not in FP16_SAFE_OPS or n.domain not in ("", "ai.onnx")})
    if unknown:
        raise ExportError(f"FP16 conversion does not support op(s) {', '.join(unknown)}; export FP32 and use "
                          "the compiler's precision option instead")
    converted = 0
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(_half(init))
            converted += 1
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.type == onnx.AttributeProto.TENSOR \
                    and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(_half(attr.t))
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


def _half(tensor: "onnx.TensorProto") -> "onnx.TensorProto":
    import numpy as np
    from onnx import numpy_helper

    values = numpy_helper.to_array(tensor)
    if np.abs(values).max(initial=0.0) > FP16_MAX:
        raise ExportError(f"tensor '{tensor.name}' has values beyond the float16 range (+-{FP16_MAX:g})")
    return numpy_helper.from_array(values.astype(np.float16), tensor.name)


# --------------------------------------------------------------------------------------------- provenance


def _provenance(spec: "ModelSpec", result: ExportResult, weights: "WeightsSource", shapes: dict,
                staged: Mapping[Path, Path]) -> dict:
    """The record `<file>.json`: what was exported, from which weights, how it was validated, with what."""
    import onnx
    import onnxruntime
    import torch

    from ssdconvert import __version__
    from ssdconvert.fileio import sha256_of

    options = result.options
    io_dtype = "float16" if options.precision == "fp16" else "float32"
    described = spec.describe()
    if options.precision != "fp32":  # the I/O contract of this file, not of the PyTorch model
        described["input"]["dtype"] = io_dtype
        for out in described["outputs"]:
            out["dtype"] = io_dtype
    files = {path.name: sha256_of(staged[path]) for path in result.files}
    return {
        "model": spec.name,
        "variant": options.variant,
        "precision": options.precision,
        "spec": described,
        "onnx": {"path": str(result.onnx_path), "sha256": files[result.onnx_path.name], "files": files,
                 "opset": options.opset, **shapes, "traced_batch": options.batch, "precision": options.precision,
                 "io_dtype": io_dtype},
        "simplifier": next((g.simplifier for g in result.graphs if g.simplifier), None),
        "nodes": {"before": sum(g.nodes_before for g in result.graphs),
                  "after": sum(g.nodes_after for g in result.graphs)},
        "weights": weights.as_dict(),
        "validation": result.validation.record(),
        "versions": {"ssdconvert": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "python": platform.python_version()},
        "seconds": round(result.seconds, 2),
    }
