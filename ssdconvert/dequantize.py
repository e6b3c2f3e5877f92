"""Fold a QDQ INT8 ONNX model back to float: the FP32 original a self-calibrating compiler wants.

A vendor's INT8 release (e.g. tf2onnx's QDQ export of a TFLite model) carries its float network
inside fake-quantization nodes. Three rewrites take it back out (ONNX operator semantics from the
onnx.ai operator docs: DequantizeLinear y = (x - x_zero_point) * x_scale, `axis` default 1 since
opset 13; QuantizeLinear the inverse with rounding and saturation):

    weights      DequantizeLinear(constant) -> a float initializer of the same name, computed as ONNX
                 Runtime does ((q - zero_point) as float32, times the scale), per-tensor or along
                 `axis` per channel, from int8/uint8/int16/uint16/int32 data
    activations  QuantizeLinear -> [layout ops] -> DequantizeLinear is removed when every
                 QuantizeLinear and DequantizeLinear of that integer region has the same scale and
                 zero point; layout ops (Transpose, Reshape, Concat, Slice, ...) between them then
                 move floats instead of integers. A region with anything else in it stays quantized.
    kept         a DequantizeLinear of a graph input (a uint8 image input dequantized by the graph
                 itself) or of constant-derived data (e.g. anchors stored as int8 and tiled by batch)
                 stays: there is no float original to restore, and its values are exact.

`dequantize_graph` does this in memory; `dequantize_model` reads, rewrites, checks and writes the
file atomically, then measures the float model against the INT8 one on ONNX Runtime (per output:
max abs diff, cosine, SNR in dB, with the float model as the reference) on the given samples.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Ops that only move or select elements: they commute with a per-tensor affine quantization.
LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Identity", "Slice",
                        "Gather", "Split", "Tile", "Expand", "DepthToSpace", "SpaceToDepth"})
SHAPE_READERS = frozenset({"Shape", "Size"})  # read only the shape: the same for floats
DEFAULT_SAMPLES = 8


@dataclass(frozen=True)
class Kept:
    node: str
    op: str
    reason: str


@dataclass
class FoldStats:
    folded_weights: int = 0
    removed: Counter = field(default_factory=Counter)  # op type -> nodes removed
    kept: list[Kept] = field(default_factory=list)


@dataclass
class DequantizeReport:
    source: Path
    output: Path
    before: Counter  # op type -> count
    after: Counter
    stats: FoldStats
    agreement: list = field(default_factory=list)  # agreement.TensorFigures per output (float = reference)
    samples: int = 0
    inputs: str = ""

    def lines(self) -> list[str]:
        total = lambda c: sum(c.values())  # noqa: E731
        qdq = ", ".join(f"{op} {self.before[op]} -> {self.after[op]}" for op in QDQ_OPS)
        out = [f"nodes: {total(self.before)} -> {total(self.after)} ({qdq})",
               f"  folded {self.stats.folded_weights} weight DequantizeLinear into float initializers",
               f"  removed {self.stats.removed['QuantizeLinear']} activation QuantizeLinear and "
               f"{self.stats.removed['DequantizeLinear'] - self.stats.folded_weights} DequantizeLinear"]
        out += [f"  kept {k.op} {k.node!r}: {k.reason}" for k in self.stats.kept]
        if self.agreement:
            out.append(f"agreement on {self.samples} samples of {self.inputs} (ONNX Runtime; float model = reference, "
                       "INT8 model = candidate):")
            out += [f"  {fig.line()}" for fig in self.agreement]
        else:
            out.append("agreement not measured: give --input BINS to compare the float and INT8 outputs")
        return out


def default_output(source: Path) -> Path:
    return source.with_name(f"{source.stem}_fp32.onnx")


def dequantize_model(model: str | Path, output: str | Path | None = None, *, inputs: str | None = None,
                     samples: int = DEFAULT_SAMPLES, say: Callable[[str], None] = lambda s: None) -> DequantizeReport:
    """Write the float version of the QDQ model `model` to `output` (atomically) and, given `inputs`
    (bins folder(s) or files, as `infer --input` takes them), measure it against the INT8 model."""
    import onnx

    from ssdconvert.fileio import atomic_path

    source = Path(model)
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise SsdConvertError(f"{source} is not an .onnx file")
    out = Path(output) if output is not None else default_output(source)
    if out.suffix.lower() != ".onnx":
        raise SsdConvertError(f"--output {out} must end in .onnx")
    if out.resolve() == source.resolve():
        raise SsdConvertError("--output must differ from the QDQ model")
    try:
        proto = onnx.load(str(source))
    except Exception as exc:  # onnx raises DecodeError and friends
        from ssdconvert.backends.base import first_line

        raise SsdConvertError(f"cannot read {source} as ONNX: {first_line(exc)}") from None
    before = Counter(n.op_type for n in proto.graph.node)
    proto, stats = dequantize_graph(proto, str(source))
    onnx.checker.check_model(proto)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    report = DequantizeReport(source, out, before, Counter(n.op_type for n in proto.graph.node), stats)
    if inputs:
        say(f"running the float and INT8 models on up to {samples} samples of {inputs} ...")
        report.agreement, report.samples = measure_agreement(out, source, inputs, samples)
        report.inputs = str(inputs)
    return report


def measure_agreement(reference: Path, candidate: Path, inputs: str, samples: int) -> tuple[list, int]:
    """Per-output TensorFigures of `candidate` against `reference` on ONNX Runtime, one sample at a time."""
    from ssdconvert.agreement import TensorStats
    from ssdconvert.backends.onnxruntime.runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(reference) as ref, OnnxRuntimeRunner(candidate) as cand:
        names = [o.name for o in ref.outputs]
        if sorted(names) != sorted(o.name for o in cand.outputs):
            raise SsdConvertError(f"{reference.name} and {candidate.name} have different outputs")
        stats = {name: TensorStats(name) for name in names}
        count = 0
        for feeds in read_samples(inputs, ref.inputs, samples):
            batch = {k: v[None] for k, v in feeds.items()}
            expected, got = ref.infer(batch), cand.infer(batch)
            for name in names:
                stats[name].update(expected[name], got[name])
            count += 1
    return [s.figures() for s in stats.values()], count


def read_samples(inputs: str, metas: Sequence, count: int) -> Iterator[dict[str, np.ndarray]]:
    """Up to `count` samples ({input name: array}) of `inputs`: a `preprocess` bins folder (its manifest
    picks them evenly), else folders or files of .bin/.npy (the first `count`, natural order)."""
    from preprocess.manifest import FILE_NAME
    from ssdconvert.layout import list_inputs
    from ssdconvert.samples import open_samples, read_tensor

    first = Path(str(inputs).split(",")[0])
    if (first / FILE_NAME).is_file():
        chosen = open_samples(inputs).pick(count)
        yield from (chosen.arrays(i, metas) for i in range(len(chosen)))
        return
    groups = list_inputs(inputs).for_model([m.name for m in metas], "the model")
    for files in list(zip(*groups))[:count]:
        yield {meta.name: read_tensor(path, meta) for meta, path in zip(metas, files)}


def dequantize_array(data: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int) -> np.ndarray:
    """DequantizeLinear on constants, as ONNX Runtime computes it: (data - zero_point) converted to the
    scale's float type, times the scale; a 1-D scale (and zero point) applies along `axis`."""
    scale = np.asarray(scale)
    zero = np.zeros((), np.int64) if zero_point is None else np.asarray(zero_point).astype(np.int64)
    if scale.ndim == 1 and data.ndim:
        shape = [1] * data.ndim
        shape[axis % data.ndim] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape if zero.size > 1 else ())
    return (data.astype(np.int64) - zero).astype(scale.dtype) * scale


class _Index:
    """Producers, consumers and constant values of a graph, read once."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.graph = graph
        self.values = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.values[node.output[0]] = node.attribute[0].t
        self._arrays: dict[str, np.ndarray] = {}
        self._to_array = numpy_helper.to_array
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.graph_inputs = {i.name for i in graph.input} - set(self.values)
        self.graph_outputs = {o.name for o in graph.output}

    def array(self, name: str) -> np.ndarray | None:
        if name not in self.values:
            return None
        if name not in self._arrays:
            self._arrays[name] = self._to_array(self.values[name])
        return self._arrays[name]

    def qparams(self, node) -> tuple | None:
        """(scale, zero point, axis) of a Quantize/DequantizeLinear, or None when not constants."""
        scale = self.array(node.input[1])
        zero = self.array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None or (len(node.input) > 2 and node.input[2] and zero is None):
            return None
        return scale, zero, attribute(node, "axis", 1)


def attribute(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def data_inputs(node) -> list[str]:
    """The inputs of a layout op that carry data (the others are shapes, indices, axes)."""
    return [n for n in node.input if n] if node.op_type == "Concat" else list(node.input[:1])


def dequantize_graph(model, name: str = "the model") -> tuple[object, FoldStats]:
    """Rewrite `model` (an onnx.ModelProto, changed in place) to float; see the module docstring."""
    graph = model.graph
    if not any(n.op_type in QDQ_OPS for n in graph.node):
        raise SsdConvertError(f"{name} has no QuantizeLinear or DequantizeLinear node: it is not a QDQ model, "
                              "there is nothing to dequantize")
    index = _Index(graph)
    stats = FoldStats()
    folded = _fold_weights(index, stats)
    quantized = _integer_tensors(index)
    removed, aliases, reasons = _activation_pairs(index, quantized, folded)
    stats.removed.update(Counter(n.op_type for n in folded + removed))
    stats.kept = _kept(index, {id(n) for n in folded + removed}, reasons)
    if not folded and not removed:
        why = "; ".join(dict.fromkeys(k.reason for k in stats.kept))
        raise SsdConvertError(f"{name} has nothing to dequantize: each of its {len(stats.kept)} QDQ node(s) stays "
                              f"({why})")
    _rewrite(index, folded + removed, aliases, quantized)
    return model, stats


def _fold_weights(index: _Index, stats: FoldStats) -> list:
    """Every DequantizeLinear whose inputs are all constants becomes a float initializer."""
    from onnx import numpy_helper

    folded = []
    for node in index.graph.node:
        if node.op_type != "DequantizeLinear" or node.output[0] in index.graph_outputs:
            continue
        data, params = index.array(node.input[0]), index.qparams(node)
        if data is None or params is None or attribute(node, "block_size", 0):
            continue
        scale, zero, axis = params
        index.graph.initializer.append(numpy_helper.from_array(dequantize_array(data, scale, zero, axis),
                                                               node.output[0]))
        folded.append(node)
        stats.folded_weights += 1
    return folded


def _integer_tensors(index: _Index) -> set[str]:
    """Tensors holding quantized integers: QuantizeLinear outputs and what layout ops make only of them."""
    quantized: set[str] = set()
    for node in index.graph.node:  # nodes are in topological order
        if node.op_type == "QuantizeLinear":
            quantized.add(node.output[0])
        elif node.op_type in LAYOUT_OPS and data_inputs(node) and all(n in quantized for n in data_inputs(node)):
            quantized.update(o for o in node.output if o)
    return quantized


def _regions(index: _Index, quantized: set[str]) -> dict[str, list[str]]:
    """Connected integer regions: tensors joined through the layout ops that move them."""
    parent = {t: t for t in quantized}

    def root(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for node in index.graph.node:
        if node.op_type in LAYOUT_OPS and node.output and node.output[0] in quantized:
            for name in data_inputs(node)[1:] + [o for o in node.output if o]:
                parent[root(name)] = root(data_inputs(node)[0])
    groups: dict[str, list[str]] = defaultdict(list)
    for t in quantized:
        groups[root(t)].append(t)
    return groups


def _activation_pairs(index: _Index, quantized: set[str], folded: list):
    """(nodes to remove, output -> input aliases, {tensor: why its region stays}) for the regions
    whose every QuantizeLinear/DequantizeLinear shares one scale and zero point."""
    done = {id(n) for n in folded}
    removed, aliases, reasons = [], {}, {}
    for tensors in _regions(index, quantized).values():
        quantizers = [index.producer[t] for t in tensors if index.producer[t].op_type == "QuantizeLinear"]
        readers = [c for t in tensors for c in index.consumers[t] if id(c) not in done]
        dequantizers = [c for c in readers if c.op_type == "DequantizeLinear"]
        why = _region_problem(index, tensors, quantizers, readers, dequantizers)
        if why:
            reasons.update(dict.fromkeys(tensors, why))
            continue
        for node in quantizers + dequantizers:
            removed.append(node)
            aliases[node.output[0]] = node.input[0]
    return removed, aliases, reasons


def _region_problem(index: _Index, tensors, quantizers, readers, dequantizers) -> str | None:
    """Why an integer region cannot go back to float, or None when it can."""
    inside = set(tensors)
    for node in readers:
        if node.op_type in LAYOUT_OPS and node.output and node.output[0] in inside:
            if any(n in inside for n in node.input if n not in data_inputs(node)):
                return f"{node.op_type} {node.name!r} reads quantized integers as shape or indices"
        elif node.op_type != "DequantizeLinear" and node.op_type not in SHAPE_READERS:
            return f"{node.op_type} {node.name!r} reads the quantized integers"
    if inside & index.graph_outputs:
        return "a graph output is quantized integers"
    params = [index.qparams(n) for n in quantizers + dequantizers]
    if any(p is None for p in params):
        return "a scale or zero point is not a constant"
    first = params[0]
    layout = len(quantizers) != len(tensors)
    for scale, zero, axis in params[1:]:
        if not (_same(scale, first[0]) and _same(zero, first[1]) and (scale.size == 1 or axis == first[2])):
            return "its QuantizeLinear and DequantizeLinear nodes use different scales or zero points"
    if layout and first[0].size > 1:
        return "per-channel scales across layout ops"
    return None


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    a = np.zeros((), np.uint8) if a is None else a
    b = np.zeros((), np.uint8) if b is None else b
    return a.dtype == b.dtype and a.size == b.size and np.array_equal(a.ravel(), b.ravel())


def _constant_derived(index: _Index) -> set[str]:
    """Tensors computed from constants only (through layout ops, only their data inputs count)."""
    derived = set(index.values)
    for node in index.graph.node:
        sources = data_inputs(node) if node.op_type in LAYOUT_OPS else [n for n in node.input if n]
        if sources and all(n in derived for n in sources):
            derived.update(o for o in node.output if o)
    return derived


def _kept(index: _Index, gone: set[int], reasons: dict[str, str]) -> list[Kept]:
    """Every Quantize/DequantizeLinear left in the graph, with why it stays."""
    derived = _constant_derived(index)
    kept = []
    for node in index.graph.node:
        if node.op_type not in QDQ_OPS or id(node) in gone:
            continue
        source = node.input[0]
        integers = node.output[0] if node.op_type == "QuantizeLinear" else source
        if integers in reasons:
            why = reasons[integers]
        elif node.op_type == "DequantizeLinear" and source in index.graph_inputs:
            why = f"dequantizes the graph input {source!r}"
        elif node.op_type == "DequantizeLinear" and source in derived:
            why = "dequantizes constant-derived data (no float original to restore; exact as it is)"
        elif node.op_type == "DequantizeLinear" and node.output[0] in index.graph_outputs:
            why = "its output is a graph output"
        else:
            why = "not part of a QuantizeLinear -> DequantizeLinear pair"
        kept.append(Kept(node.name or node.output[0], node.op_type, why))
    return kept


def _resolve(name: str, aliases: dict[str, str]) -> str:
    while name in aliases:
        name = aliases[name]
    return name


def _rewrite(index: _Index, gone: list, aliases: dict[str, str], quantized: set[str]) -> None:
    """Drop the `gone` nodes, point their readers at their inputs, keep the graph output names, and drop
    what no longer describes the graph (value_info of former integer tensors, unused initializers)."""
    from onnx import helper

    graph = index.graph
    gone_ids = {id(n) for n in gone}
    renames: dict[str, str] = {}
    identities = []
    for out in graph.output:
        if out.name not in aliases:
            continue
        target = _resolve(out.name, aliases)
        producer = index.producer.get(target)
        if producer is not None and id(producer) not in gone_ids and target not in index.graph_outputs | set(renames):
            renames[target] = out.name  # its producer now writes the graph output itself
        else:
            identities.append((target, out.name))

    def final(name: str) -> str:
        name = _resolve(name, aliases) if name else name
        return renames.get(name, name)

    for i in reversed(range(len(graph.node))):
        if id(graph.node[i]) in gone_ids:
            del graph.node[i]
    for node in graph.node:
        node.input[:] = [final(n) for n in node.input]
        node.output[:] = [renames.get(o, o) for o in node.output]
    graph.node.extend(helper.make_node("Identity", [final(t)], [o], name=f"{o}_identity") for t, o in identities)
    stale = quantized | set(aliases) | set(renames)
    _drop(graph.value_info, lambda v: v.name in stale)
    used = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
    _drop(graph.node, lambda n: n.op_type == "Constant" and not used & set(n.output))  # folded weights' sources
    _drop(graph.initializer, lambda t: t.name not in used)


def _drop(repeated, unwanted: Callable) -> None:
    """Delete the items of a protobuf repeated field that are `unwanted`, in place."""
    for i in reversed(range(len(repeated))):
        if unwanted(repeated[i]):
            del repeated[i]
