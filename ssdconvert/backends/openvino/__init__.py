"""OpenVINO on the CPU: `ovc` converts the ONNX to IR (.xml + .bin); the runner reads IR or .onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ssdconvert.backends.base import Backend, RunOptions
from ssdconvert.backends.compiling import CompilerError


class OpenVinoBackend(Backend):
    name = "openvino"
    label = "OpenVINO"
    host_cpu = True
    build_tag = "ov"
    suffixes = (".xml",)
    built_by = ("ovc",)
    also_reads = (".onnx",)
    device_help = "--device names one OpenVINO device (CPU, GPU); a number means CPU."
    dynamic_image_size = True  # compiles dynamic height and width (an exact-mode model)
    precisions = ("fp32", "fp16", "bf16", "int8")  # the CPU plugin's inference precision; int8 via NNCF
    quantized_suffix = ".xml"

    def build(self, onnx: Path, out_dir: Path, *, batch: int, precision: str | None,
              calib: Path | None) -> list[Path]:
        """A dynamic-batch IR for `precision` (default fp32); int8 quantizes with NNCF on `calib` (no gate here:
        the caller measures it)."""
        from ssdconvert.backends.openvino.compile import convert_ir

        precision = precision or "fp32"
        stem = out_dir / (onnx.stem if precision == "fp32" else f"{onnx.stem}_{precision}")
        if precision != "int8":
            return convert_ir(onnx, stem, precision=precision, tool=self.options.tool).artefacts
        if calib is None:
            raise CompilerError("OpenVINO INT8 needs calibration data: the preprocessed bins folder (--calib)")
        from ssdconvert.quantize import quantize_model

        return quantize_model(onnx, calib, stem.with_suffix(".xml"), backend=self, gate=False).artefacts

    def precision_refusal(self, precision: str | None) -> str | None:
        """Also refused: a precision the CPU cannot compute (device.py), e.g. bf16 on a CPU without BF16."""
        refused = super().precision_refusal(precision)
        if refused or self.missing():
            return refused
        from ssdconvert.backends.openvino.device import refusal

        return refusal(precision)

    def runner_for(self, model: Path, options: RunOptions):
        from ssdconvert.backends.openvino.runner import make_runner

        return make_runner(model, options)

    def runtime_label(self, versions) -> str:
        from ssdconvert.backends.openvino.runner import runtime_label

        return runtime_label(versions)

    def checks(self) -> list:
        from ssdconvert.backends.openvino import doctor

        return doctor.checks()

    def missing(self) -> str | None:
        from ssdconvert.backends.openvino import doctor

        return doctor.missing()

    def quantize(self, source: Path, samples, output: Path, exclude: Sequence[str], say) -> dict:
        """NNCF post-training INT8 (openvino/quantize.py)."""
        from ssdconvert.backends.openvino.quantize import quantize

        return quantize(source, samples, output, exclude, say)

    def make_taps(self, model: Path, precision: str | None):
        from ssdconvert.backends.openvino.layers import make_taps

        return make_taps(model, precision)

    def commands(self) -> list:
        from ssdconvert.backends.openvino.commands import openvino

        return [openvino]


BACKEND = OpenVinoBackend()
