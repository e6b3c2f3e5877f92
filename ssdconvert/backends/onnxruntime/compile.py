"""ONNX Runtime compiles nothing: FP32 runs the exported ONNX as it is; INT8 is a QDQ copy made by quantize.py."""

from __future__ import annotations

from pathlib import Path

from ssdconvert.backends.compiling import CompilerError


def build(onnx: Path, out_dir: Path, *, batch: int, soc: str | None = None, precision: str | None = None,
          tool: str | None = None, calib: Path | None = None) -> list[Path]:
    """`ssdconvert run`'s compile step: the ONNX itself (fp32), or its INT8 QDQ copy in `out_dir` (no gate
    here: the caller measures it)."""
    if precision in (None, "fp32"):
        return [onnx]
    if precision != "int8":
        raise CompilerError(f"ONNX Runtime runs fp32 or int8 models on the CPU, not {precision}")
    if calib is None:
        raise CompilerError("ONNX Runtime INT8 needs calibration data: the preprocessed bins folder")
    from ssdconvert.quantize import quantize_model

    return quantize_model(onnx, calib, out_dir / f"{onnx.stem}_int8.onnx", backend="onnxruntime", gate=False).artefacts
