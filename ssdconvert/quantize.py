"""`ssdconvert quantize`: an INT8 model from the exported FP32 ONNX, calibrated on the preprocessed
bins, then held to the accuracy gate against ONNX Runtime FP32.

    calibration  `--calib-images N` (default 300) samples of the manifest + bins folder, chosen
                 deterministically and only from the files given (samples.SampleSet.pick)
    quantize     the backend's own quantizer (Backend.quantize, for the backends that quantize here:
                 ONNX Runtime static QDQ, OpenVINO through NNCF; the others say how INT8 is made for
                 them, e.g. Ascend's AMCT, the MagicMind builder's qint modes: Backend.int8_note)
    gate         agreement.measure on up to `gate_images` other samples of the same folder: the
                 INT8 model against the FP32 ONNX on ONNX Runtime (the project's reference)

The model and its record `<model>.json` (settings, calibration images, gate figures) are written
atomically; a model that fails the gate is kept (with `gate.passed: false` in its record) and the
result says which outputs are worst.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

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
                   say: Callable[[str], None] = lambda s: None) -> QuantizeResult:
    """Quantize `model` (an FP32 .onnx) for `backend` (a name or a Backend; `options`: its own, e.g. ONNX
    Runtime's INT8 types), `exclude`d nodes kept in float; see the module docstring."""
    from ssdconvert.backends.compiling import write_sidecar
    from ssdconvert.samples import open_samples

    started = time.perf_counter()
    source = Path(model)
    if source.suffix.lower() != ".onnx" or not source.is_file():
        raise SsdConvertError(f"{source} is not an .onnx file: quantize takes the FP32 ONNX that `export` wrote")
    target = (backend if isinstance(backend, Backend) else backends.get(backend)).configured(options)
    out = _output(source, output, target)
    everything = open_samples(calib)
    chosen = everything.pick(calib_images)
    if calib_images > len(chosen):
        say(f"note: {calib} has {len(chosen)} samples; calibrating on all of them (asked for {calib_images})")
    spec, weights = describe_source(source, everything.manifest, model_name)
    settings, artefacts = _quantize_staged(target, source, chosen, out, tuple(exclude), say)

    report = None
    if gate:
        checked = everything.pick(gate_images, avoid=chosen)
        notes = [] if not set(checked.stems) & set(chosen.stems) else [
            "the gate images include calibration images (the folder has too few others)"]
        say(f"accuracy gate: {target.name} INT8 against ONNX Runtime FP32 on {len(checked)} images ...")
        report = check_gate(source, out, target, checked, spec, thresholds, weights)
        report.notes += notes
    record = write_sidecar(out, {
        "tool": "quantize", "backend": target.name, "precision": "int8", "source": str(source.resolve()),
        "settings": settings, "calibration": {"folder": str(Path(str(calib).split(",")[0]).resolve()),
                                              "images": len(chosen), "stems": chosen.stems},
        "gate": report.to_dict() if report else None, "artefacts": [str(a) for a in artefacts],
    })
    return QuantizeResult(target.name, source, out, artefacts, settings, chosen.stems, report, record,
                          time.perf_counter() - started)


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


def _quantize_staged(target: Backend, source: Path, chosen, out: Path, exclude: tuple[str, ...],
                     say: Callable[[str], None]) -> tuple[dict, list[Path]]:
    """(settings, files): the backend's quantizer writes into a staging folder whose files then replace `out`
    and its companions (the model's path first)."""
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        settings = target.quantize(source, chosen, staging / out.name, exclude, say)
        artefacts = []
        for part in sorted(staging.iterdir()):
            final = out.with_name(part.name)
            os.replace(part, final)
            artefacts.append(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    artefacts.sort(key=lambda p: p != out)
    return settings, artefacts


def check_gate(reference_onnx: Path, candidate: Path, backend: str | Backend, samples, spec, thresholds: Thresholds,
               weights: str, precision: str | None = None) -> AgreementReport:
    """The accuracy gate of `candidate` (run by `backend`) against `reference_onnx` on ONNX Runtime FP32."""
    from ssdconvert.agreement import measure
    from ssdconvert.backends.base import RunOptions

    reference = backends.get(backends.REFERENCE).make_runner(reference_onnx)
    runner = backends.for_model(candidate, backend).make_runner(candidate, RunOptions(precision=precision))
    annotation = Path(samples.manifest.annotation_path)
    try:
        return measure(reference, runner, samples, spec, thresholds=thresholds, weights=weights,
                       annotation=annotation if annotation.is_file() else None)
    except ValueError as exc:
        raise SsdConvertError(str(exc)) from None


def describe_source(onnx: Path, manifest, model_name: str | None):
    """(zoo spec, weights) of an exported ONNX: the family from `model_name`, else the export record
    `<onnx>.json`, else the manifest; weights random | trained | unknown from the export record."""
    from ssdconvert.zoo import get_spec, model_names

    try:
        record = json.loads(Path(f"{onnx}.json").read_text())
    except (OSError, ValueError):
        record = {}
    name = model_name or record.get("model") or (manifest.model if manifest.model in model_names() else None)
    if name is None:
        raise SsdConvertError(f"cannot tell which detector {onnx.name} is (no export record {onnx.name}.json, and "
                              "the manifest names none): pass --model")
    info = record.get("weights") if isinstance(record.get("weights"), dict) else {}
    weights = "unknown" if "is_random" not in info else ("random" if info["is_random"] else "trained")
    return get_spec(name), weights
