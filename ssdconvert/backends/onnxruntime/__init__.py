"""ONNX Runtime on the CPU: runs the exported .onnx as it is (no compile step); the accuracy reference.
Its INT8 model is a QDQ copy (quantize.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ssdconvert.backends.base import Backend, BackendOptions, RunOptions
from ssdconvert.backends.compiling import CompilerError


@dataclass(frozen=True)
class OnnxRuntimeOptions(BackendOptions):
    ort_types: str = "auto"  # INT8 activation/weight types: auto | s8s8 | u8s8 | u8u8 (quantize.TYPES)
    per_channel: bool = True  # INT8: per-channel weight scales (else one per tensor)
    calibration: str = "percentile"  # INT8 activation ranges: minmax | percentile | entropy (quantize.CALIBRATIONS)
    percentile: float = 99.999  # the Percentile calibration's percentile


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    label = "ONNX Runtime"
    host_cpu = True
    Options = OnnxRuntimeOptions
    build_tag = "ort"
    suffixes = (".onnx",)
    device_help = "It runs on this machine's CPU."
    shared_runner = True  # a dynamic-batch session takes any batch as is
    dynamic_image_size = True  # and any image size of an exact-mode model
    precisions = ("fp32", "int8")  # int8: a QDQ model from quantize.py; no BF16/FP16 CPU kernels
    quantized_suffix = ".onnx"
    int8_tuning = "another --calibration or --percentile, or --ort-types"

    options: OnnxRuntimeOptions

    def build(self, onnx: Path, out_dir: Path, *, batch: int, precision: str | None,
              calib: Path | None) -> list[Path]:
        """It compiles nothing: the ONNX itself (fp32), or its INT8 QDQ copy in `out_dir` (no gate here: the caller
        measures it)."""
        if precision in (None, "fp32"):
            return [onnx]
        if precision != "int8":
            raise CompilerError(f"ONNX Runtime runs fp32 or int8 models on the CPU, not {precision}")
        if calib is None:
            raise CompilerError("ONNX Runtime INT8 needs calibration data: the preprocessed bins folder")
        from ssdconvert.quantize import quantize_model

        return quantize_model(onnx, calib, out_dir / f"{onnx.stem}_int8.onnx", backend=self, gate=False).artefacts

    def runner_for(self, model: Path, options: RunOptions):
        """ONNX Runtime takes any batch of a dynamic-batch model as it is; --device does not apply."""
        from ssdconvert.backends.onnxruntime.runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model)

    def runtime_label(self, versions) -> str:
        from ssdconvert.backends.onnxruntime.runner import runtime_label

        return runtime_label(versions)

    def checks(self) -> list:
        from ssdconvert.backends.onnxruntime import doctor

        return doctor.checks()

    def missing(self) -> str | None:
        return None  # a dependency of ssdconvert: it runs wherever ssdconvert does

    def quantize(self, source: Path, samples, output: Path, exclude: Sequence[str], say) -> dict:
        """Static QDQ INT8 (onnxruntime/quantize.py) with its options' types, weight scales and calibration."""
        from ssdconvert.backends.onnxruntime.quantize import quantize

        return quantize(source, samples, output, exclude=exclude, ort_types=self.options.ort_types,
                        per_channel=self.options.per_channel, calibration=self.options.calibration,
                        percentile=self.options.percentile, say=say)

    def make_taps(self, model: Path, precision: str | None):
        from ssdconvert.backends.onnxruntime.layers import make_taps

        return make_taps(model, precision)

    def cli_options(self, command: str) -> list:
        from ssdconvert.backends.onnxruntime.commands import generic_options

        return generic_options(command)

    def options_from(self, values: Mapping[str, Any]) -> OnnxRuntimeOptions:
        values = dict(values)
        if "per_tensor" in values:
            values["per_channel"] = not values.pop("per_tensor")
        return super().options_from(values)


BACKEND = OnnxRuntimeBackend()
