"""The backends: one line each below; every command and the Python API read this registry.

A backend is one folder, `ssdconvert/backends/<name>/`: `__init__.py` declares its Backend subclass
(backends/base.py: what it is, and the typed methods that build, run, time, quantize and probe it)
and its Options; the other files are what those methods load when they run: `compile.py` (its
compiler adapter), `runner.py` (its Runner), `doctor.py` (its `ssdconvert doctor` rows) and
`commands.py` (its own click commands, and the options it adds to run, bench, infer).

    from ssdconvert.backends import for_model, get
    with for_model("model.onnx").make_runner("model.onnx") as runner:   # picked by file type
        outputs = runner.infer({"image": batch})
    om = get("ascend").configured(soc="Ascend310P3").compile(onnx, workdir, batch=16)
"""

from __future__ import annotations

import importlib
import warnings
from functools import lru_cache
from pathlib import Path

from ssdconvert.backends.base import Backend, BackendOptions, RunOptions, Runner, RunnerError
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
    """Every registered backend (its `BACKEND`), in the order above (CLI choices, `run` default). An entry is
    a folder of this package, or a full module path for a backend that lives elsewhere."""
    found = []
    for entry in REGISTERED:
        module = importlib.import_module(entry if "." in entry else f"{__name__}.{entry}")
        backend = getattr(module, "BACKEND", None)
        if not isinstance(backend, Backend):
            raise TypeError(f"backend module {module.__name__} must define BACKEND, an instance of a Backend subclass")
        found.append(backend)
    doubled = sorted({b.name for b in found if [x.name for x in found].count(b.name) > 1})
    if doubled:
        raise TypeError(f"two registered backends are called {doubled[0]}")
    return tuple(found)


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
    """The backend called `name` (default options); a deprecated alias works with a FutureWarning."""
    backend, note = resolve(name)
    if note:
        warnings.warn(note, FutureWarning, stacklevel=2)
    return backend


def for_model(model: str | Path, backend: str | Backend = "auto", *,
              how_to_choose: str = "pass --backend explicitly") -> Backend:
    """The backend that runs `model`: `backend` (a name, or a Backend with its options), or with `auto` the
    backend whose model files `model` is (suffix, else build record). A composite model gets the wrapper
    that runs its parts on that backend (composite.CompositeBackend; `auto`: the backend of its parts).
    `how_to_choose` ends the error when `auto` finds none: how the caller's user names a backend."""
    from ssdconvert.backends import composite

    if isinstance(backend, composite.CompositeBackend):
        backend = backend.inner
    if composite.is_composite(model):
        parts = composite.read(model).parts
        return composite.CompositeBackend(for_model(parts[0].path, backend))
    if isinstance(backend, Backend):
        return backend
    if backend != "auto":
        return get(backend)
    for candidate in all_backends():
        if Path(model).suffix.lower() in candidate.suffixes:
            return candidate
    for candidate in all_backends():
        if candidate.runs(model):
            return candidate
    known = ", ".join(f"{'/'.join(b.suffixes)} ({b.name})" for b in all_backends() if b.suffixes)
    recorded = ", ".join(b.name for b in all_backends() if b.built_by and not b.suffixes)
    raise SsdConvertError(f"cannot choose a backend for '{Path(model).name}': expected {known}, or a model with its "
                          f"build record <model>.json ({recorded}); {how_to_choose}")


def quantizers() -> list[str]:
    """The backends whose INT8 models `ssdconvert quantize` makes."""
    return [b.name for b in all_backends() if b.quantizes]


__all__ = ["Backend", "BackendOptions", "RunOptions", "Runner", "RunnerError", "REFERENCE",
           "all_backends", "for_model", "get", "names", "quantizers", "resolve"]
