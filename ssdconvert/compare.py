"""`ssdconvert compare`: where a converted model starts to differ from its reference, layer by layer.

Each side is a model with an optional backend and precision, or a folder of dumped tensors:

    model.onnx                     ONNX Runtime (the default for .onnx)
    onnxruntime:model_int8.onnx    a backend named explicitly
    openvino:model.xml:bf16        OpenVINO at an inference precision (fp32 | fp16 | bf16 | int8)
    dumps/                         a dump folder (layout below)

Both sides run on the same samples of `--input` (a manifest + bins folder; `--images N` of them,
chosen as `quantize` chooses). The intermediate tensors are the node outputs of the ONNX graph
(the reference's, else the candidate's), in graph order, matched by tensor name on the other side:
ONNX Runtime marks them all as outputs (as Polygraphy does), OpenVINO finds the port that keeps
the ONNX tensor name (backends/openvino/layers.py), a dump folder has a file per name. Tensors are
fetched in chunks that fit `budget_mb`, so memory stays bounded whatever the model.

For every matched tensor: max abs/rel diff, SNR and cosine (agreement.TensorFigures). The **first**
tensor in graph order whose cosine or SNR crosses the threshold is named with its op type and the
figures of its inputs: inputs that already crossed mean the error was inherited, clean inputs mean
it was born there. The final outputs also get the gate's detection agreement.

Dump folder layout (documented for device dumps converted elsewhere):

    <dir>/<tensor name>.npy   the tensor for the compared samples, batch axis first, any float dtype
    <dir>/<tensor name>.bin   the same as raw float32, C order; its shape is taken from the reference
    <dir>/samples.txt         optional: the sample stems, one a line, in batch order (else the
                              selection of --input/--images is assumed)

A '/' in a tensor name (exporters write '/Conv_output_0') is '%2F' in the file name (other
characters as they are). `compare --save-dump DIR` writes the reference's tensors in this layout.
"""

from __future__ import annotations

import json
import math
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ssdconvert import backends
from ssdconvert.agreement import Accumulator, AgreementReport, TensorFigures, TensorStats, Thresholds
from ssdconvert.backends.base import PRECISIONS
from ssdconvert.errors import SsdConvertError

DEFAULT_IMAGES = 2
DEFAULT_BUDGET_MB = 512


@dataclass(frozen=True)
class Side:
    text: str
    path: Path
    backend: str | None  # None for a dump folder
    precision: str | None

    @property
    def is_dump(self) -> bool:
        return self.backend is None

    def describe(self) -> str:
        if self.is_dump:
            return f"dump folder {self.path}"
        return f"{self.path.name} on {self.backend}" + (f" ({self.precision})" if self.precision else "")


def parse_side(text: str) -> Side:
    """`[backend:]path[:precision]`, or a folder of dumped tensors."""
    if Path(text).is_dir():
        return Side(text, Path(text), None, None)
    parts = text.split(":")
    backend = parts.pop(0) if len(parts) > 1 and parts[0] in backends.names() else None
    precision = parts.pop() if len(parts) > 1 and parts[-1] in PRECISIONS else None
    path = Path(":".join(parts))
    if not path.exists():
        if len(parts) > 1 and Path(":".join(parts[:-1])).exists():
            raise SsdConvertError(f"{text}: unknown precision {parts[-1]!r}; choose from {', '.join(PRECISIONS)}")
        raise SsdConvertError(f"{text}: {path} does not exist (expected [backend:]model[:precision] or a dump folder)")
    if path.suffix.lower() in (".pt", ".pth"):
        raise SsdConvertError(f"{text}: a PyTorch checkpoint is not a model compare runs; export it first "
                              "(`ssdconvert export --checkpoint ...`) and compare the .onnx")
    target = backends.for_model(path, backend or "auto", how_to_choose=f"name its backend: <backend>:{text}")
    return Side(text, path, target.name, precision)


# -- dump folders -------------------------------------------------------------------------------

def dump_file_stem(name: str) -> str:
    return name.replace("%", "%25").replace("/", "%2F")


class DumpTaps:
    """Tensors saved as <name>.npy / <name>.bin (see the module doc)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files = {}
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in (".npy", ".bin"):
                name = path.stem.replace("%2F", "/").replace("%25", "%")
                self.files.setdefault(name, path)

    def names(self) -> list[str]:
        return list(self.files)

    def stems(self) -> list[str] | None:
        listed = self.folder / "samples.txt"
        return listed.read_text().split() if listed.is_file() else None

    def load(self, name: str, like: np.ndarray) -> np.ndarray:
        """The dumped tensor `name`, checked against the reference's tensor `like`."""
        path = self.files[name]
        if path.suffix.lower() == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise SsdConvertError(f"dump {path.name} (tensor {name}) is not a readable .npy: {exc}") from None
            if array.shape != like.shape:
                raise SsdConvertError(f"dump {path.name}: tensor {name} has shape {list(array.shape)}, the "
                                      f"reference's is {list(like.shape)} (batch of the compared samples first)")
            return array
        data = np.fromfile(path, dtype=np.float32)
        if data.size != like.size:
            raise SsdConvertError(f"dump {path.name}: tensor {name} holds {data.size} float32 values, the reference's "
                                  f"{list(like.shape)} needs {like.size}")
        return data.reshape(like.shape)


def save_dump(folder: Path, arrays: Mapping[str, np.ndarray], stems: Sequence[str]) -> None:
    from ssdconvert.fileio import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        with atomic_path(folder / f"{dump_file_stem(name)}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, array)
    with atomic_path(folder / "samples.txt") as tmp:
        tmp.write_text("".join(f"{s}\n" for s in stems))


# -- the report ---------------------------------------------------------------------------------

@dataclass
class Layer:
    index: int
    name: str
    op_type: str
    inputs: list[str]
    figures: TensorFigures | None = None
    missing: str = ""  # why it could not be compared

    def crosses(self, t: Thresholds) -> bool:
        return self.figures is not None and bool(self.figures.problems(t))


@dataclass
class CompareReport:
    reference: str
    candidate: str
    images: list[str]
    thresholds: Thresholds
    layers: list[Layer]
    final: AgreementReport
    unmatched: dict[str, list[str]] = field(default_factory=dict)
    graph_from: str = ""
    peak_rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def compared(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.figures is not None]

    @property
    def first_failing(self) -> Layer | None:
        return next((layer for layer in self.compared if layer.crosses(self.thresholds)), None)

    def input_figures(self, layer: Layer) -> list[tuple[str, TensorFigures | None]]:
        by_name = {entry.name: entry for entry in self.layers}
        return [(n, by_name[n].figures if n in by_name else None) for n in layer.inputs]

    def verdict(self) -> str:
        first = self.first_failing
        if first is None:
            return (f"all {len(self.compared)} compared tensors within the threshold "
                    f"(cosine >= {self.thresholds.min_cosine}, SNR >= {self.thresholds.min_snr_db} dB)")
        inputs = self.input_figures(first)
        born = [n for n, fig in inputs if fig is not None and fig.problems(self.thresholds)]
        unknown = [n for n, fig in inputs if fig is None and n in {la.name for la in self.layers}]
        origin = (f"inherited: its input(s) {', '.join(born)} already cross the threshold" if born else
                  "born here: its compared inputs are within the threshold")
        if unknown and not born:
            origin = (f"born here or in its input(s) {', '.join(unknown)}, which could not be compared "
                      "(see the table)")
        return (f"first layer crossing the threshold: #{first.index} {first.name} ({first.op_type}): "
                f"{', '.join(first.figures.problems(self.thresholds))}; {origin}")

    def to_dict(self) -> dict:
        def fig(f: TensorFigures | None):
            return None if f is None else {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v))
                                           for k, v in asdict(f).items()}

        first = self.first_failing
        return {
            "schema": "ssdconvert.compare", "version": 1, "reference": self.reference, "candidate": self.candidate,
            "images": self.images, "thresholds": asdict(self.thresholds), "graph_from": self.graph_from,
            "first_failing": None if first is None else {
                "index": first.index, "name": first.name, "op_type": first.op_type, "figures": fig(first.figures),
                "inputs": [{"name": n, "figures": fig(f)} for n, f in self.input_figures(first)]},
            "verdict": self.verdict(),
            "layers": [{"index": la.index, "name": la.name, "op_type": la.op_type, "inputs": la.inputs,
                        "figures": fig(la.figures), "missing": la.missing} for la in self.layers],
            "final": self.final.to_dict(), "unmatched": self.unmatched, "peak_rss_mb": round(self.peak_rss_mb, 1),
            "notes": self.notes,
        }

    def table(self) -> str:
        from ssdconvert.agreement import fmt_db
        from ssdconvert.formatting import format_table

        first = self.first_failing
        rows = []
        for la in self.layers:
            f = la.figures
            mark = "<- first" if la is first else ("x" if la.crosses(self.thresholds) else "")
            shown = la.name if len(la.name) <= 48 else "…" + la.name[-47:]
            rows.append((la.index, shown, la.op_type, *(
                (f"{f.max_abs:.3g}", f"{f.max_rel:.3g}", fmt_db(f.snr_db), f"{f.cosine:.5f}") if f else
                ("–", "–", "–", la.missing)), mark))
        return format_table(["#", "tensor", "op", "max abs", "max rel", "SNR", "cosine", ""], rows)


# -- the comparison -----------------------------------------------------------------------------

def _taps(side: Side):
    """The tensors of one side by name: its dump folder, or its backend's taps (None where it exposes none)."""
    if side.is_dump:
        return DumpTaps(side.path)
    target = backends.get(side.backend)
    return target.make_taps(side.path, side.precision) if target.exposes_layers else None


def _graph(reference: Side, candidate: Side):
    """(ONNX model, which side) giving graph order, op types and inputs: the first .onnx side."""
    from ssdconvert.backends.onnxinfo import load_onnx

    for side in (reference, candidate):
        if not side.is_dump and side.path.suffix.lower() == ".onnx":
            return load_onnx(side.path, weights=False), side.text
    for side in (reference, candidate):
        if not side.is_dump and Path(f"{side.path}.json").is_file():
            source = json.loads(Path(f"{side.path}.json").read_text()).get("source_onnx", {}).get("path")
            if source and Path(source).is_file():
                return load_onnx(source, weights=False), f"{source} (the build record of {side.path.name})"
    return None, ""


def _chunks(names: Sequence[str], sizes: Mapping[str, int], budget: int) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    total = 0
    for name in names:
        size = sizes.get(name, 0)
        if chunks[-1] and total + size > budget:
            chunks.append([])
            total = 0
        chunks[-1].append(name)
        total += size
    return [c for c in chunks if c]


def _sizes(model, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Bytes of each tensor for inputs of these `shapes` (batch included) from ONNX shape inference
    (unknown sizes: the mean of the known)."""
    from onnx import shape_inference

    copy = type(model)()
    copy.CopyFrom(model)
    for inp in copy.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if inp.name in shapes and len(dims) == len(shapes[inp.name]):
            for dim, size in zip(dims, shapes[inp.name]):
                dim.dim_value = int(size)
    try:
        inferred = shape_inference.infer_shapes(copy)
    except Exception:  # shape inference is best effort: chunk by count then
        return {}
    sizes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(dims):
            sizes[vi.name] = int(np.prod(dims)) * 4
    mean = int(np.mean(list(sizes.values()))) if sizes else 4 << 20
    return {out: sizes.get(out, mean) for node in model.graph.node for out in node.output}


def compare_models(reference: str | Side, candidate: str | Side, inputs: str | Path, *, images: int = DEFAULT_IMAGES,
                   thresholds: Thresholds = Thresholds(), model_name: str | None = None,
                   budget_mb: int = DEFAULT_BUDGET_MB, save_dump_to: Path | None = None,
                   say: Callable[[str], None] = lambda s: None) -> CompareReport:
    """Compare `candidate` with `reference` on `images` samples of `inputs` (see the module doc)."""
    ref, cand, samples, dump = _sides(reference, candidate, inputs, images)
    graph, graph_from = _graph(ref, cand)
    spec, weights = _family(ref, samples, model_name)
    with backends.get(ref.backend).make_runner(ref.path) as probe:
        input_metas = probe.inputs
    _, feeds, _ = next(samples.batches(input_metas, len(samples)))
    outputs = list(spec.output_names)
    layers = _layers(graph, outputs)
    names = [la.name for la in layers]
    taps = {"reference": _taps(ref), "candidate": dump or _taps(cand)}
    notes = ["no ONNX graph on either side: final outputs only"] if graph is None else []
    notes += [f"{side.describe()}: {side.backend} exposes no intermediate tensors here; final outputs only"
              for side, tapped in ((ref, taps["reference"]), (cand, taps["candidate"])) if tapped is None]
    available = {key: set(tapped.names()) if tapped is not None else set(outputs) for key, tapped in taps.items()}
    if dump is not None:
        missing_outputs = [n for n in outputs if n not in available["candidate"]]
        if missing_outputs:
            raise SsdConvertError(f"the dump {cand.path} has no {dump_file_stem(missing_outputs[0])}.npy or .bin "
                                  f"(final output {missing_outputs[0]}); the layout is <tensor name>.npy|.bin")
    unmatched = {key: [n for n in names if n not in have] for key, have in available.items()}
    wanted = [n for n in names if n in available["reference"] and n in available["candidate"]]
    sizes = _sizes(graph, {name: array.shape for name, array in feeds.items()}) if graph is not None else {}
    chunks = _chunks(wanted, sizes, budget_mb << 20)
    sides = {"reference": ref, "candidate": cand}
    finals = _compare_chunks(chunks, layers, sides, taps, dump, feeds, outputs, samples.stems, save_dump_to, say)
    for la in layers:
        if la.figures is None and not la.missing:
            la.missing = "; ".join(f"not in {key}" for key in sides if la.name in unmatched[key]) or "not compared"
    _complete_finals(finals, sides, dump, feeds, outputs)
    acc = Accumulator(spec, thresholds, weights)
    acc.add(list(samples.records), [finals["reference"][n] for n in outputs], [finals["candidate"][n] for n in outputs])
    final = acc.report(ref.text, cand.text)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return CompareReport(ref.text, cand.text, samples.stems, thresholds, layers, final,
                         {k: v for k, v in unmatched.items() if v}, graph_from, peak, notes)


def _sides(reference: str | Side, candidate: str | Side, inputs: str | Path, images: int):
    """(reference, candidate, the chosen samples, the candidate's DumpTaps or None), checked against each other."""
    from ssdconvert.samples import open_samples

    ref = reference if isinstance(reference, Side) else parse_side(reference)
    cand = candidate if isinstance(candidate, Side) else parse_side(candidate)
    if ref.is_dump:
        raise SsdConvertError("the reference must be a model (a dump folder can only be the candidate)")
    samples = open_samples(inputs).pick(images)
    if samples.manifest.input.tensor.dynamic and len(samples) > 1:
        raise SsdConvertError(f"{samples.folders[0]} is in the exact mode (each image has its own shape) and "
                              "compare runs its samples as one batch: pass --images 1 (or compare a fixed-canvas "
                              "export)")
    dump = _taps(cand) if cand.is_dump else None
    if dump is not None and dump.stems() is not None and dump.stems() != samples.stems:
        raise SsdConvertError(f"the dump {cand.path} holds samples {', '.join(dump.stems())} (samples.txt), but "
                              f"--input/--images select {', '.join(samples.stems)}")
    return ref, cand, samples, dump


def _family(ref: Side, samples, model_name: str | None):
    """(zoo spec, weights) of the compared model: from the reference ONNX's export record, else by name."""
    from ssdconvert.family import agree, manifest_claim, model_claim, option_claim
    from ssdconvert.quantize import describe_source
    from ssdconvert.zoo import get_spec

    if ref.path.suffix.lower() == ".onnx":
        return describe_source(ref.path, samples.manifest, model_name, samples.folders[0])
    claims = [option_claim(model_name), model_claim(ref.path), manifest_claim(samples.manifest, samples.folders[0])]
    name = agree(claims, "name the reference's own detector and use inputs preprocessed for it")
    if name is None:
        raise SsdConvertError("cannot tell which detector this is: pass --model")
    return get_spec(name), "unknown"


def _layers(graph, outputs: Sequence[str]) -> list[Layer]:
    """Every node output of the graph in graph order (Constants left out), else the final outputs alone."""
    layers: list[Layer] = []
    for node in graph.graph.node if graph is not None else ():
        if node.op_type == "Constant":
            continue
        for out in node.output:
            if out:
                layers.append(Layer(len(layers), out, node.op_type, [i for i in node.input if i]))
    return layers or [Layer(k, n, "output", []) for k, n in enumerate(outputs)]


def _compare_chunks(chunks, layers: list[Layer], sides: dict[str, Side], taps: dict, dump, feeds, outputs,
                    stems, save_dump_to: Path | None, say) -> dict[str, dict[str, np.ndarray]]:
    """Fetch each chunk of tensors from both sides and fill each layer's figures; returns the final outputs seen."""
    finals: dict[str, dict[str, np.ndarray]] = {"reference": {}, "candidate": {}}
    by_name = {la.name: la for la in layers}
    total = sum(len(chunk) for chunk in chunks)
    for k, chunk in enumerate(chunks):
        say(f"tensors {k + 1}/{len(chunks)}: {len(chunk)} of {total} ...")
        arrays = {"reference": _fetch(taps["reference"], sides["reference"], chunk, feeds, outputs)}
        if dump is not None:
            arrays["candidate"] = {n: dump.load(n, arrays["reference"][n]) for n in chunk if n in arrays["reference"]}
        else:
            arrays["candidate"] = _fetch(taps["candidate"], sides["candidate"], chunk, feeds, outputs)
        for name in chunk:
            a, b = arrays["reference"].get(name), arrays["candidate"].get(name)
            layer = by_name[name]
            if a is None or b is None:
                layer.missing = "not produced"
                continue
            if a.shape != b.shape:
                layer.missing = f"shape {list(b.shape)} vs {list(a.shape)}"
                continue
            stats = TensorStats(name)
            stats.update(a, b.astype(a.dtype, copy=False))
            layer.figures = stats.figures()
            if name in outputs:
                for key in finals:
                    finals[key][name] = arrays[key][name]
        if save_dump_to is not None:
            save_dump(save_dump_to, arrays["reference"], stems)
        del arrays
    return finals


def _complete_finals(finals: dict[str, dict[str, np.ndarray]], sides: dict[str, Side], dump, feeds, outputs) -> None:
    """The final outputs the taps did not name, from a plain run of each model side as its runner gives them."""
    for key, side in sides.items():
        absent = [n for n in outputs if n not in finals[key]]
        if absent and not (key == "candidate" and dump is not None):
            finals[key].update(_fetch(None, side, absent, feeds, outputs))
    lost = [n for n in outputs if n not in finals["candidate"] or n not in finals["reference"]]
    if lost:
        raise SsdConvertError(f"final output(s) {', '.join(lost)} could not be compared (not produced by "
                              f"{sides['candidate'].describe()} under that name)")


def _fetch(taps, side: Side, names, feeds, outputs) -> dict[str, np.ndarray]:
    """A chunk of tensors of one side; the final outputs through its runner where it has no taps."""
    if taps is not None:
        return taps.fetch(names, feeds, outputs)
    wanted = [n for n in names if n in outputs]
    if not wanted:
        return {}
    from ssdconvert.backends.base import RunOptions

    with backends.get(side.backend).make_runner(side.path, RunOptions(precision=side.precision)) as runner:
        result = runner.infer(feeds)
    return {n: result[n] for n in wanted if n in result}


def plot(report: CompareReport, target: Path) -> Path | None:
    """Relative RMS error (10^(-SNR/20), log scale) against layer index; the first failing layer marked."""
    points = [(la.index, la.figures.snr_db) for la in report.compared]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-9
    xs = [i for i, _ in points]
    ys = [max(10 ** (-snr / 20) if math.isfinite(snr) else (floor if snr > 0 else 1.0), floor) for _, snr in points]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.semilogy(xs, ys, "o-", ms=3, lw=1)
    ax.axhline(10 ** (-report.thresholds.min_snr_db / 20), color="grey", ls="--", lw=0.8,
               label=f"threshold (SNR {report.thresholds.min_snr_db:g} dB)")
    first = report.first_failing
    if first is not None:
        ax.axvline(first.index, color="red", lw=1, label=f"first failing: {first.name[-40:]} ({first.op_type})")
    ax.set_xlabel("layer index (ONNX graph order)")
    ax.set_ylabel("relative RMS error = 10^(-SNR/20)")
    ax.set_title(f"{Path(report.candidate).name} vs {Path(report.reference).name}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from ssdconvert.fileio import atomic_path

    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


def write_outputs(report: CompareReport, out_dir: Path) -> tuple[Path, Path | None]:
    from ssdconvert.fileio import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    picture = plot(report, out_dir / "compare.png")
    data = report.to_dict()
    data["plot"] = str(picture) if picture else None
    return write_json(out_dir / "compare.json", data), picture
