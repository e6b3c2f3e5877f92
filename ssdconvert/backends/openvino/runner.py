"""OpenVINO runner: reads OpenVINO IR (.xml + .bin) or .onnx directly, CPU by default."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ssdconvert.backends.base import Runner, RunnerError, RunOptions, build_record, first_line
from stageio.tensor import TensorSpec


class OpenVinoRunner(Runner):
    """Compiles the model once with one synchronous infer request (PERFORMANCE_HINT=LATENCY:
    one stream using every core, which is what a batch-at-a-time loop wants).

    `batch` reshapes a dynamic batch axis to a fixed size before compiling, as
    benchmark_app's -data_shape does; a static model keeps its own batch.

    `precision` sets INFERENCE_PRECISION_HINT. It defaults to f32: on CPUs with AVX512_BF16 or
    AMX the CPU plugin otherwise computes in bfloat16 (about 2 significant digits), which changes
    outputs and is not an FP32 measurement. Pass "bf16" to measure that mode on purpose, or None
    for the device default.
    """

    name = "openvino"

    def __init__(self, model: str | Path, *, batch: int | None = None, device: str = "CPU",
                 hint: str = "LATENCY", precision: str | None = "f32", config: Mapping[str, str] | None = None):
        super().__init__(model)
        self.batch = batch
        self.device = device
        self.config = {"PERFORMANCE_HINT": hint, **(config or {})}
        if precision and device.upper().startswith("CPU"):
            self.config.setdefault("INFERENCE_PRECISION_HINT", precision)
        self.precision = self.config.get("INFERENCE_PRECISION_HINT", "device default")
        self.compiled = None
        self.request = None

    def _activate(self) -> None:
        import openvino as ov

        if self.model.suffix.lower() == ".xml":
            check_ir(self.model)
        core = ov.Core()
        try:
            model = core.read_model(str(self.model))
        except Exception as exc:
            raise RunnerError(f"OpenVINO cannot read {self.model}: {first_line(exc)}") from None
        if self.batch is not None:
            first = model.inputs[0].get_partial_shape()
            if first.rank.is_static and first[0].is_static and first[0].get_length() != self.batch:
                raise RunnerError(f"{self.model.name} has a static batch of {first[0].get_length()}; "
                                  f"cannot run batch {self.batch} (export with a dynamic batch axis)")
            shapes = {}
            for port in model.inputs:
                shape = port.get_partial_shape()
                shape[0] = self.batch
                shapes[port.get_any_name()] = shape
            model.reshape(shapes)
        try:
            self.compiled = core.compile_model(model, self.device, self.config)
        except Exception as exc:
            raise RunnerError(f"OpenVINO cannot compile {self.model.name} for {self.device}: "
                              f"{first_line(exc)}") from None
        self.request = self.compiled.create_infer_request()
        asked = self.config.get("INFERENCE_PRECISION_HINT")
        try:
            effective = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        except Exception:  # devices without the property
            effective = asked or "device default"
        self.precision = effective.replace("<Type: '", "").replace("'>", "")
        self.precision = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(self.precision, self.precision)
        if asked and self.precision != asked:  # never measure one precision under the name of another
            self._deactivate()
            raise RunnerError(f"OpenVINO compiled {self.model.name} for {self.device} to compute {self.precision}, "
                              f"not the {asked} asked for (the compiled model's INFERENCE_PRECISION_HINT)")
        self.inputs = [_meta(p) for p in self.compiled.inputs]
        self.outputs = [_meta(p) for p in self.compiled.outputs]

    def _infer(self, feeds: Mapping[str, np.ndarray]):
        request = self.request
        start = self._clock()
        try:
            result = request.infer(feeds, share_inputs=True, share_outputs=False)
        except Exception as exc:
            raise RunnerError(f"OpenVINO failed on {self.model.name}: {first_line(exc)}") from None
        ms = (self._clock() - start) * 1e3
        return list(result.values()), ms

    def _deactivate(self) -> None:
        self.request = None
        self.compiled = None

    def versions(self) -> dict[str, str]:
        import openvino as ov

        return {"openvino": ov.get_version(), "device": self.device, "inference_precision": str(self.precision)}


def _meta(port) -> TensorSpec:
    shape = port.get_partial_shape()
    dims = tuple(d.get_length() if d.is_static else None for d in shape) if shape.rank.is_static else ()
    try:
        dtype = np.dtype(port.get_element_type().to_dtype()).name
    except Exception:
        dtype = str(port.get_element_type())
    return TensorSpec.batched(port.get_any_name(), dims, dtype)



HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}  # int8: what NNCF left in float runs f32


def make_runner(model: Path, options: RunOptions) -> OpenVinoRunner:
    """`batch` reshapes a dynamic batch axis; a numeric --device (the default 0) means the CPU. The
    inference precision is `options.precision`, else the one recorded at build time (`ssdconvert
    openvino --precision`), else f32; one the device cannot compute is refused (device.py)."""
    device = options.device if options.device and not options.device.isdigit() else "CPU"
    recorded = recorded_precision(model)
    precision = options.precision or recorded or "fp32"
    source = "" if options.precision or not recorded else (
        f" ({precision} is what {model.name}.json records: rebuild it with `ssdconvert openvino --precision fp32`)")
    return OpenVinoRunner(model, batch=options.batch, device=device, precision=inference_hint(precision, device,
                                                                                              source))


def inference_hint(precision: str, device: str = "CPU", source: str = "") -> str:
    """INFERENCE_PRECISION_HINT for `precision`, refused where `device` cannot compute it (`source`: where the
    precision came from, said in the refusal)."""
    from ssdconvert.backends.openvino.device import refusal

    if precision not in HINTS:
        raise RunnerError(f"OpenVINO runs fp32, bf16, fp16 or int8 models, not {precision!r}")
    why = refusal(precision, device)
    if why:
        raise RunnerError(why + source)
    return HINTS[precision]


def recorded_precision(model: Path) -> str | None:
    """The precision in the build record `<model>.json` (written by `ssdconvert openvino` and `quantize`)."""
    value = build_record(model).get("precision")
    return value if value in HINTS else None


def runtime_label(versions: Mapping[str, str]) -> str:
    ver = versions.get("openvino", "").split("-")[0]
    return f"OpenVINO {ver} {versions.get('device', 'CPU')} {versions.get('inference_precision', '')}".strip()


def check_ir(xml: Path) -> None:
    """Refuse a file that is not an OpenVINO IR before OpenVINO tries every frontend on it (its own
    message names only a source line, and its TensorFlow frontend prints parse errors)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise RunnerError(f"{xml} is not an OpenVINO IR: not well-formed XML ({exc})") from None
    if root.tag != "net":
        raise RunnerError(f"{xml} is not an OpenVINO IR: its root element is <{root.tag}>, an IR's is <net>")
    weights = xml.with_suffix(".bin")
    if not weights.is_file():
        raise RunnerError(f"{xml} has no weights file {weights.name} beside it (an IR is .xml + .bin)")
