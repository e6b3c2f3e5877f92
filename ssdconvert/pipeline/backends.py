"""The device backends `ssdconvert run` can drive: availability, compile step, runner name."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("onnxruntime", "openvino", "atc")
REFERENCE_BACKEND = "onnxruntime"  # FP32 on the CPU: the accuracy gate compares against it


@dataclass(frozen=True)
class Backend:
    name: str  # what the user asks for: onnxruntime | openvino | atc
    runner: str  # the infer/bench backend: onnxruntime | openvino | ais_bench

    def missing_tool(self, atc_tool: str | None = None) -> str | None:
        """Why this backend cannot run here, or None when it can."""
        if self.name == "openvino" and importlib.util.find_spec("openvino") is None:
            return "the openvino package is not installed (pip install openvino)"
        if self.name == "atc":
            from ssdconvert.compilers.atc import TOOL
            from ssdconvert.compilers.base import ToolNotFoundError, locate_tool

            try:
                locate_tool(TOOL, atc_tool)
            except ToolNotFoundError as exc:
                return str(exc)
            if not _ais_bench_runs():
                return "ATC found, but ais_bench (python3 -m ais_bench) is not importable to run the .om"
        return None

    def compile(self, onnx: Path, workdir: Path, *, batch: int, soc: str, atc_tool: str | None) -> list[Path]:
        """Build the artefact this backend runs (the ONNX itself for ONNX Runtime)."""
        if self.name == "onnxruntime":
            return [onnx]
        if self.name == "openvino":
            from ssdconvert.compilers.openvino import convert_ir

            return convert_ir(onnx, workdir / "openvino" / onnx.stem).artefacts
        from ssdconvert.compilers.atc import build_om

        return build_om(onnx, soc, batch=batch, output=workdir / "atc" / f"{onnx.stem}_bs{batch}",
                        tool=atc_tool).artefacts


def _ais_bench_runs() -> bool:
    """True if the interpreter that runs `-m ais_bench` can import the .om inference tool."""
    import subprocess

    from ssdconvert.runners.ais_bench import ais_bench_python

    probe = [ais_bench_python(), "-c", "import ais_bench.infer.interface"]
    return subprocess.run(probe, capture_output=True, timeout=60).returncode == 0


def backend(name: str) -> Backend:
    runner = {"onnxruntime": "onnxruntime", "openvino": "openvino", "atc": "ais_bench"}[name]
    return Backend(name, runner)
