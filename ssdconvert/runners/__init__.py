"""Runners: one interface (runners.base.Runner), one module per runtime. Vendor imports are lazy.

    from ssdconvert.runners import make_runner
    with make_runner("model.onnx") as runner:          # backend chosen from the file type
        outputs = runner.infer({"image": batch})
"""

from __future__ import annotations

from pathlib import Path

from ssdconvert.errors import SsdConvertError
from ssdconvert.runners.base import Runner, RunnerError, TensorMeta

BACKENDS = ("onnxruntime", "openvino", "ais_bench")
SUFFIX_BACKEND = {".onnx": "onnxruntime", ".xml": "openvino", ".om": "ais_bench"}
BACKEND_LABELS = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO", "ais_bench": "ais_bench"}


def backend_for(model: str | Path, backend: str = "auto") -> str:
    """`auto` picks by file type: .om -> ais_bench, .onnx -> onnxruntime, .xml -> openvino."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise SsdConvertError(f"unknown backend '{backend}'; choose one of auto, {', '.join(BACKENDS)}")
        return backend
    suffix = Path(model).suffix.lower()
    try:
        return SUFFIX_BACKEND[suffix]
    except KeyError:
        raise SsdConvertError(
            f"cannot choose a backend for '{Path(model).name}': expected .om (ais_bench), .onnx (onnxruntime) "
            f"or .xml (openvino); pass --backend explicitly") from None


def make_runner(model: str | Path, backend: str = "auto", *, batch: int | None = None,
                device: str | int = 0, dym_batch: bool = False) -> Runner:
    """A not-yet-activated runner for `model`. `batch` fixes a dynamic batch axis where the
    runtime benefits (OpenVINO reshape, ais_bench gear); ONNX Runtime takes any batch as is."""
    backend = backend_for(model, backend)
    if backend == "onnxruntime":
        if Path(model).suffix.lower() != ".onnx":
            raise SsdConvertError(f"ONNX Runtime runs .onnx files, not '{Path(model).name}'")
        from ssdconvert.runners.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model)
    if backend == "openvino":
        if Path(model).suffix.lower() not in (".xml", ".onnx"):
            raise SsdConvertError(f"OpenVINO runs .xml (IR) or .onnx files, not '{Path(model).name}'")
        from ssdconvert.runners.openvino import OpenVinoRunner

        ov_device = str(device) if str(device) and not str(device).isdigit() else "CPU"
        return OpenVinoRunner(model, batch=batch, device=ov_device)
    from ssdconvert.runners.ais_bench import AisBenchRunner

    return AisBenchRunner(model, device=int(device), batch=batch, dym_batch=dym_batch)


__all__ = ["Runner", "RunnerError", "TensorMeta", "BACKENDS", "backend_for", "make_runner"]
