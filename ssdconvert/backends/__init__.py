"""The backends: one line each below; every command and the Python API read this registry.

A backend is one folder, `ssdconvert/backends/<name>/`, with the same files in each:
`__init__.py` (the Backend: name, label, model files, deprecated aliases), `compile.py` (its
compiler adapter, if it has one), `runner.py` (how it runs: a Runner) and `doctor.py` (how
`ssdconvert doctor` probes it). See backends/base.py for the interface.

    from ssdconvert.backends import for_model, get
    with for_model("model.onnx").make_runner("model.onnx") as runner:   # picked by file type
        outputs = runner.infer({"image": batch})
"""

from __future__ import annotations

import importlib
import warnings
from functools import lru_cache
from pathlib import Path

from ssdconvert.backends.base import Backend, RunOptions, Runner, RunnerError
from ssdconvert.errors import SsdConvertError

REGISTERED = (
    "onnxruntime",  # ONNX Runtime on the CPU: runs the exported .onnx; the accuracy reference
    "openvino",  # OpenVINO: ovc -> IR (.xml), CPU
    "ascend",  # Huawei Ascend NPU: ATC -> .om, run by ais_bench
    "magicmind",  # Cambricon MLU: MagicMind build tool -> model, run by the MagicMind runtime
)
REFERENCE = "onnxruntime"  # FP32 on the CPU: the accuracy gate compares every backend with it


@lru_cache(maxsize=None)
def all_backends() -> tuple[Backend, ...]:
    """Every registered backend, in the order above (CLI choices, `run` default). An entry is a
    folder of this package, or a full module path for a backend that lives elsewhere."""
    return tuple(importlib.import_module(name if "." in name else f"{__name__}.{name}").BACKEND
                 for name in REGISTERED)


def names() -> list[str]:
    return [b.name for b in all_backends()]


def resolve(name: str) -> tuple[Backend, str | None]:
    """(backend, deprecation note or None) for a name or a deprecated alias."""
    for backend in all_backends():
        if name == backend.name:
            return backend, None
        if name in backend.aliases:
            return backend, f"'{name}' is deprecated as a backend name; use '{backend.name}'"
    raise SsdConvertError(f"unknown backend '{name}'; choose one of {', '.join(names())}")


def get(name: str) -> Backend:
    """The backend called `name`; a deprecated alias works with a FutureWarning."""
    backend, note = resolve(name)
    if note:
        warnings.warn(note, FutureWarning, stacklevel=2)
    return backend


def for_model(model: str | Path, name: str = "auto") -> Backend:
    """`name`, or with `auto` the backend whose model files `model` is (suffix, else build record)."""
    if name != "auto":
        return get(name)
    from ssdconvert.backends import composite

    if composite.is_composite(model):  # chosen by its parts
        return for_model(composite.read(model).parts[0].path, name)
    for backend in all_backends():
        if Path(model).suffix.lower() in backend.suffixes:
            return backend
    for backend in all_backends():
        if backend.runs(model):
            return backend
    known = ", ".join(f"{'/'.join(b.suffixes)} ({b.name})" for b in all_backends() if b.suffixes)
    recorded = ", ".join(b.name for b in all_backends() if b.built_by and not b.suffixes)
    raise SsdConvertError(f"cannot choose a backend for '{Path(model).name}': expected {known}, or a model with its "
                          f"build record <model>.json ({recorded}); pass --backend explicitly")


__all__ = ["Backend", "RunOptions", "Runner", "RunnerError", "REFERENCE", "all_backends", "for_model",
           "get", "names", "resolve"]
