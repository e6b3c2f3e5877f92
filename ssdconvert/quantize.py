"""`ssdconvert quantize`: an INT8 model from the exported FP32 ONNX, calibrated on the preprocessed
bins, then held to the accuracy gate against ONNX Runtime FP32.

    calibration  `--calib-images N` (default 300) samples of the manifest + bins folder, chosen
                 deterministically and only from the files given (samples.SampleSet.pick)
    quantize     the backend's own quantizer (Backend.quantize, for the backends that quantize here:
                 ONNX Runtime static QDQ, OpenVINO through NNCF; the others say how INT8 is made for
                 them, e.g. Ascend's AMCT, the MagicMind builder's qint modes: Backend.int8_note)
    gate         agreement.measure on up to `gate_images` other samples of the same folder (or of
                 `gate_bins`): the INT8 model against the FP32 ONNX on ONNX Runtime (the project's
                 reference); where those samples have real annotations and the weights are trained,
                 the first figure is the real COCO mAP drop in AP points (Thresholds.max_map_drop)

The model and its record `<model>.json` (settings, calibration images, gate figures) are written
atomically; a model that fails the gate is kept (with `gate.passed: false` in its record) and the
result says which outputs are worst.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from ssdconvert import backends
from ssdconvert.agreement import AgreementReport, Thresholds
from ssdconvert.backends.base import Backend, BackendOptions
from ssdconvert.errors import SsdConvertError
from ssdconvert.fileio import ensure_writable_dir

DEFAULT_CALIB_IMAGES = 300
DEFAULT_GATE_IMAGES = 32


@dataclass
class QuantizeResult:
    backend: str
    source: Path
    model: Path
    artefacts: list[Path]
    settings: dict
    calibration: list[str]  # stems of the calibration samples
    gate: AgreementReport | None
    record: Path
    seconds: float
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What was written, with which settings, and the gate's figures (for the console)."""
        settings = ", ".join(f"{k} {v}" for k, v in self.settings.items() if k not in ("excluded",) and v != [])
        lines = [f"wrote {' + '.join(map(str, self.artefacts))} in {self.seconds:.1f} s "
                 f"({len(self.calibration)} calibration images)", f"  settings: {settings}",
                 f"  record:   {self.record}"]
        return lines + (self.gate.lines() if self.gate is not None else [])

    def check_passed(self) -> None:
        """Raise SsdConvertError naming the worst outputs if the model failed the accuracy gate (it is kept), with
        what to try: the options every backend has, and its own (Backend.int8_tuning)."""
        if self.gate is not None and not self.gate.passed:
            own = backends.get(self.backend).int8_tuning
            raise SsdConvertError(f"{self.model} failed the accuracy gate: {'; '.join(self.gate.failures)} "
                                  f"(the model is kept; try more --calib-images{', ' if own else ' or '}--exclude for "
                                  f"the worst layers{f', or {own}' if own else ''})")


def default_output(source: Path, target: Backend) -> Path:
    return source.with_name(f"{source.stem}_int8{target.quantized_suffix}")


def quantize_model(model: str | Path, calib: str | Path, output: str | Path | None = None, *,
                   backend: str | Backend = backends.REFERENCE,
                   options: BackendOptions | Mapping[str, BackendOptions] | None = None, exclude: Sequence[str] = (),
                   calib_images: int = DEFAULT_CALIB_IMAGES, gate_images: int = DEFAULT_GATE_IMAGES,
                   thresholds: Thresholds = Thresholds(), model_name: str | None = None, gate: bool = True,
                   gate_bins: str | Path | None = None, say: Callable[[str], None] = lambda s: None) -> QuantizeResult:
    """Quantize `model` (an FP32 .onnx) for `backend` (a name or a Backend; `options`: its own, e.g. ONNX
    Runtime's INT8 types), `exclude`d nodes kept in float; the gate runs on `gate_bins` (a bins folder) where
    given, else on other samples of `calib`; see the module docstring."""
    from ssdconvert.backends.compiling import write_sidecar
    from ssdconvert.samples import open_samples

    started = time.perf_counter()
    source = Path(model)
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise SsdConvertError(f"{source} is not an .onnx file: quantize takes the FP32 ONNX that `export` wrote")
    target = (backend if isinstance(backend, Backend) else backends.get(backend)).configured(options)
    out = _output(source, output, target)
    everything = open_samples(calib)
    spec, weights = describe_source(source, everything.manifest, model_name, everything.folders[0])  # before the work
    gated = everything if gate_bins is None else open_samples(gate_bins)
    if gate_bins is not None:
        describe_source(source, gated.manifest, spec.name, gated.folders[0])  # bins of the same detector
    chosen = everything.pick(calib_images)
    if calib_images > len(chosen):
        say(f"note: {calib} has {len(chosen)} samples; calibrating on all of them (asked for {calib_images})")
    calibration = {"folder": str(Path(str(calib).split(",")[0]).resolve()), "images": len(chosen),
                   "stems": chosen.stems}
    with _staging(out) as staged:
        settings = target.quantize(source, chosen, staged, tuple(exclude), say)
        report = _gate(source, staged, target, gated, chosen, gate_images, spec, thresholds, weights,
                       say) if gate else None
        if report is not None:
            report.candidate = str(out)  # where it is published, not where it was checked
        final = sorted((out.with_name(p.name) for p in staged.parent.iterdir()), key=lambda p: p != out)
        write_sidecar(staged, {
            "tool": "quantize", "backend": target.name, "precision": "int8", "source": str(source.resolve()),
            "settings": settings, "calibration": calibration, "gate": report.to_dict() if report else None,
            "artefacts": [str(a) for a in final]})
    return QuantizeResult(target.name, source, out, final, settings, chosen.stems, report, Path(f"{out}.json"),
                          time.perf_counter() - started)


def _gate(source: Path, staged: Path, target: Backend, everything, chosen, gate_images: int, spec,
          thresholds: Thresholds, weights: str, say: Callable[[str], None]) -> AgreementReport:
    """The accuracy gate of the staged INT8 model on up to `gate_images` samples other than the calibration ones."""
    checked = everything.pick(gate_images, avoid=chosen)
    say(f"accuracy gate: {target.name} INT8 against ONNX Runtime FP32 on {len(checked)} images ...")
    report = check_gate(source, staged, target, checked, spec, thresholds, weights)
    if set(checked.stems) & set(chosen.stems):
        report.notes.append("the gate images include calibration images (the folder has too few others)")
    return report


def _output(source: Path, output: str | Path | None, target: Backend) -> Path:
    """The INT8 model's path (default: beside the source), refused unless it has the backend's suffix."""
    if not target.quantizes:
        raise SsdConvertError(target.quantize_refusal())
    out = Path(output) if output is not None else default_output(source, target)
    if out.suffix.lower() != target.quantized_suffix:
        raise SsdConvertError(f"--output {out} must end in {target.quantized_suffix} for {target.label}")
    if out.resolve() == source.resolve():
        raise SsdConvertError("--output must differ from the FP32 model")
    ensure_writable_dir(out.parent)
    return out


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """The path the backend's quantizer writes `out` to, in a hidden staging folder beside it. When the block
    finishes (model, gate, record), every file of the folder replaces its namesake beside `out`; on any error or
    Ctrl-C the folder goes and nothing half-made is left."""
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging / out.name
        for part in sorted(staging.iterdir(), key=lambda p: p.name == f"{out.name}.json"):  # the record last
            os.replace(part, out.with_name(part.name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_gate(reference_onnx: Path, candidate: Path, backend: str | Backend, samples, spec, thresholds: Thresholds,
               weights: str, precision: str | None = None) -> AgreementReport:
    """The accuracy gate of `candidate` (run by `backend`) against `reference_onnx` on ONNX Runtime FP32."""
    from ssdconvert.agreement import measure
    from ssdconvert.backends.base import RunOptions

    reference = backends.get(backends.REFERENCE).make_runner(reference_onnx)
    runner = backends.for_model(candidate, backend).make_runner(candidate, RunOptions(precision=precision))
    recorded = samples.manifest.annotation_path  # None for an image folder (a calibration set)
    annotation = Path(recorded) if recorded else None
    try:
        return measure(reference, runner, samples, spec, thresholds=thresholds, weights=weights,
                       annotation=annotation if annotation is not None and annotation.is_file() else None)
    except ValueError as exc:
        raise SsdConvertError(str(exc)) from None


def describe_source(onnx: Path, manifest, model_name: str | None, inputs: str | Path = "the input folder"):
    """(zoo spec, weights) of an exported ONNX: the family `model_name`, the export record `<onnx>.json`, the
    ONNX's output names and the manifest of `inputs` agree on (refused, naming both, where two differ);
    weights random | trained | unknown from the export record."""
    from ssdconvert.family import agree, manifest_claim, model_claim, onnx_outputs_claim, option_claim
    from ssdconvert.zoo import get_spec

    try:
        record = json.loads(Path(f"{onnx}.json").read_text())
    except (OSError, ValueError):
        record = {}
    name = agree([option_claim(model_name), model_claim(onnx), onnx_outputs_claim(onnx),
                  manifest_claim(manifest, inputs)], "name the ONNX's own detector and use bins preprocessed for it")
    if name is None:
        raise SsdConvertError(f"cannot tell which detector {onnx.name} is (no export record {onnx.name}.json, and "
                              "neither its outputs nor the manifest name one): pass --model")
    info = record.get("weights") if isinstance(record.get("weights"), dict) else {}
    weights = "unknown" if "is_random" not in info else ("random" if info["is_random"] else "trained")
    return get_spec(name), weights
