"""The two small interfaces every backend implements (in the spirit of Polygraphy).

**Backend**: one device backend, declared in `backends/<name>/__init__.py`: its name (and
deprecated aliases), a label, the model files it runs, and lazy hooks into the modules of its
folder, which all backends name alike:

    compile.py   the compiler adapter, if it has one: `build(onnx, out_dir, ...)` for `run`, and
                 `build_for_batch(onnx, batch, ctx)` (+ `check_bench`) where bench builds one
                 artefact per batch size
    runner.py    `make_runner(model, options)`; optionally `folder_tool(job)`, `time_batch`,
                 `runtime_label` where it runs differently from the default
    doctor.py    `checks()` (rows of `ssdconvert doctor`) and `missing(tool)` (why it cannot run here)

Nothing heavy is imported until a hook is called, so `ssdconvert --help` stays light.

Every backend also runs composite models (backends/composite.py: a variant split into several
device models plus a host stage, `<name>.composite.json`): its own runner runs each part, its own
compiler builds each part.

**Runner**: loads a model (`activate`), runs one batch at a time (`infer`) and releases it
(`deactivate`). `infer` times only the runtime call: no file I/O, no Python-side batching.
Subclasses implement `_activate`, `_infer`, `_deactivate` and fill `inputs` / `outputs`.

    with backend.make_runner("model.onnx") as runner:
        outputs = runner.infer({"image": batch})      # dict name -> ndarray, in output order
        ms = runner.last_compute_ms                   # time of the runtime call only
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError
from stageio.tensor import TensorSpec  # a runner's inputs and outputs: one sample's shape, `batch` apart


PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # the precision names every command takes


class RunnerError(SsdConvertError):
    """A runtime cannot load or run the model."""


_SOURCE_LOCATION = re.compile(r"^(Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:?)$")


def first_line(exc: BaseException) -> str:
    """The first informative line of an exception's message: runtimes raise multi-line errors whose
    first lines are only source locations (OpenVINO: `Exception from src/inference/src/cpp/core.cpp:84:`)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    told = [line for line in lines if not _SOURCE_LOCATION.match(line)]
    return (told or lines or [type(exc).__name__])[0]


def dim_or_none(d) -> int | None:
    """Normalise a runtime's dimension (int, -1, 'N', None, Dimension) to int or None."""
    if isinstance(d, (int, np.integer)) and int(d) >= 0:
        return int(d)
    return None


class Runner(ABC):
    """Base runner: context manager, per-call compute timing, I/O metadata."""

    name = "runner"  # the backend's name (onnxruntime, openvino, ascend, magicmind)

    def __init__(self, model: str | Path):
        self.model = Path(model)
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.is_active = False
        self.last_compute_ms: float = 0.0
        self.compute_ms: list[float] = []  # every call since activation
        self.notes: list[str] = []  # what the runner decided on its own (e.g. a gear from a build record)

    # -- lifecycle ----------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if not self.is_active:
            if not self.model.exists():
                raise RunnerError(f"model not found: {self.model}")
            self._activate()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # -- inference ----------------------------------------------------------------------------
    def infer(self, feeds: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. `feeds` maps input name -> array (or a list in input order).

        Returns output name -> array in the model's output order. The time of the runtime call
        alone is kept in `last_compute_ms` and appended to `compute_ms`.
        """
        if not self.is_active:
            raise RunnerError(f"{self.name} runner is not active; use it as a context manager")
        if not isinstance(feeds, Mapping):
            feeds = {meta.name: array for meta, array in zip(self.inputs, feeds)}
        arrays, ms = self._infer(feeds)
        self.last_compute_ms = ms
        self.compute_ms.append(ms)
        return dict(zip((o.name for o in self.outputs), arrays))

    def reset_timing(self) -> None:
        self.compute_ms = []

    @property
    def static_batch(self) -> int | None:
        """The batch the model is fixed to, or None if its batch axis is dynamic."""
        return self.inputs[0].batch if self.inputs else None

    def versions(self) -> dict[str, str]:
        """Runtime name -> version string, for reports."""
        return {}

    # -- for subclasses -----------------------------------------------------------------------
    @abstractmethod
    def _activate(self) -> None:
        """Load the model; fill `inputs` and `outputs`."""

    @abstractmethod
    def _infer(self, feeds: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], float]:
        """Return (outputs in output order, compute milliseconds)."""

    def _deactivate(self) -> None:
        pass

    @staticmethod
    def _clock() -> float:
        return time.perf_counter()


# ---------------------------------------------------------------------------------------------
# The backend interface


@dataclass(frozen=True)
class RunOptions:
    """How infer and bench ask a backend for a runner."""

    batch: int | None = None  # fix a dynamic batch axis (OpenVINO reshape, Ascend gear, MagicMind shape)
    device: str = "0"  # one device: NPU/MLU id, or an OpenVINO device name
    dym_batch: bool = False  # Ascend: the .om has batch gears (atc --dynamic_batch_size)
    precision: str | None = None  # fp32 | fp16 | bf16 | int8 where the runtime chooses it (OpenVINO's CPU
    #                               inference precision); None: what the model's build record says, else fp32


@dataclass(frozen=True)
class Backend:
    """One backend: names, the model files it runs, and lazy hooks into its folder's modules."""

    name: str  # the one name: what --backend, --backends and the Python API take
    label: str  # for people: "ONNX Runtime", "Ascend (ATC + ais_bench)"
    package: str  # the backend's folder as a module, e.g. "ssdconvert.backends.ascend"
    suffixes: tuple[str, ...] = ()  # model files it runs, recognised by suffix (.om)
    built_by: tuple[str, ...] = ()  # "tool" of the build records (<model>.json) of models it runs
    also_reads: tuple[str, ...] = ()  # further suffixes its runner takes, not picked by `auto`
    aliases: tuple[str, ...] = ()  # deprecated names, accepted with a note
    device_list: bool = False  # one run may spread over several devices (--device 0,1,...)
    device_help: str = ""  # what --device means for it
    builds_per_batch: bool = False  # bench builds one artefact per batch size from an .onnx
    shared_runner: bool = False  # bench: one runner serves every batch size
    precisions: tuple[str, ...] = ("fp32",)  # what `run`/`bench --precision` can build and measure (PRECISIONS)
    default_precision: str = "fp32"  # what it builds when no precision is asked for
    int8_note: str = ""  # how INT8 is made for it when `quantize` does not do it here
    # runs models whose image height and width differ per sample (a resize-and-pad model's exact mode, batch 1)
    dynamic_image_size: bool = False

    # -- the folder's modules ---------------------------------------------------------------
    def module(self, part: str) -> ModuleType | None:
        """`<package>.<part>` (compile, runner, doctor), or None if the backend has no such file."""
        name = f"{self.package}.{part}"
        if importlib.util.find_spec(name) is None:
            return None
        return importlib.import_module(name)

    def _hook(self, part: str, function: str):
        module = self.module(part)
        return getattr(module, function, None) if module is not None else None

    # -- models and devices -----------------------------------------------------------------
    def runs(self, model: str | Path) -> bool:
        """True if `model` is a file this backend's runner takes (by suffix or build record); a composite
        if it runs every part."""
        from ssdconvert.backends import composite

        if composite.is_composite(model):
            return all(self.runs(part.path) for part in composite.read(model).parts)
        suffix = Path(model).suffix.lower()
        return suffix in self.suffixes or suffix in self.also_reads or build_tool(model) in self.built_by

    def check_model(self, model: str | Path, *, onnx_ok: bool = False) -> None:
        """Refuse a model file this backend cannot take (`onnx_ok`: bench builds from an .onnx). A
        backend whose models have no extension (MagicMind) takes any file but an .onnx when chosen.
        A composite is checked part by part."""
        from ssdconvert.backends import composite

        if composite.is_composite(model):
            for part in composite.read(model).parts:
                self.check_model(part.path, onnx_ok=onnx_ok)
            return
        is_onnx = Path(model).suffix.lower() == ".onnx"
        if self.runs(model) or (onnx_ok and is_onnx) or (not self.suffixes and not is_onnx):
            return
        takes = [*self.suffixes, *self.also_reads]
        what = " or ".join(takes) if takes else "its models (recognised by their build record <model>.json)"
        if onnx_ok and self.builds_per_batch:
            what += ", or an .onnx to build one per batch size"
        raise SsdConvertError(f"{self.label} runs {what}, not '{Path(model).name}'")

    def devices(self, text: str | int) -> list[str]:
        """--device as a list; a list is refused unless one run may use several devices."""
        items = [d.strip() for d in str(text).split(",")]
        if not all(items):
            raise SsdConvertError(f"--device {text!r}: expected one device or a comma-separated list")
        doubled = sorted({d for d in items if items.count(d) > 1})
        if doubled:
            raise SsdConvertError(f"--device {text!r} lists device {doubled[0]} twice")
        if len(items) > 1 and not self.device_list:
            raise SsdConvertError(f"{self.label} runs one device per run: --device takes one value, not the list "
                                  f"{text!r}. {self.device_help}".strip())
        return items

    def check_image_size(self, dynamic: bool, what: str) -> None:
        """Refuse `what` (a model or an input folder) in the exact mode where this backend needs a fixed canvas."""
        if dynamic and not self.dynamic_image_size:
            takes = " and ".join(b.label for b in _registered() if b.dynamic_image_size)
            raise SsdConvertError(f"{self.label} needs the fixed canvas: {what} is in the exact mode (each image at "
                                  f"its own size), which runs on {takes} only; preprocess and export with "
                                  "--canvas HxW for the device")

    # -- hooks --------------------------------------------------------------------------------
    def make_runner(self, model: str | Path, options: RunOptions = RunOptions()) -> Runner:
        """A not-yet-activated runner for `model` (a composite: its parts on this backend + its host stage)."""
        from ssdconvert.backends import composite

        self.check_model(model)
        if composite.is_composite(model):
            return composite.CompositeRunner(self, model, options)
        return self._hook("runner", "make_runner")(Path(model), options)

    def folder_tool(self, job) -> Any:
        """A callable that runs a whole infer job through the vendor tool, or None (use the runner). A
        composite always runs through the runner (the vendor tool knows one model)."""
        from ssdconvert.backends import composite

        hook = self._hook("runner", "folder_tool")
        return hook(job) if hook and not composite.is_composite(job.model) else None

    def compile(self, onnx: Path, workdir: Path, *, batch: int, soc: str | None = None,
                precision: str | None = None, tool: str | None = None, calib: Path | None = None) -> list[Path]:
        """Build what this backend runs from `onnx` into `workdir/<name>/` (the ONNX itself if no compiler)
        at `precision` (None: its default); `calib`, the preprocessed bins, for builds that calibrate.
        A composite gets each part built at its own batch and a descriptor of the built parts (listed first)."""
        from ssdconvert.backends import composite

        refusal = self.precision_refusal(precision)
        if refusal:
            raise SsdConvertError(refusal)
        hook = self._hook("compile", "build")
        if hook is None:
            return [onnx]
        out = workdir / self.name
        if composite.is_composite(onnx):
            built: list[Path] = []

            def build_part(part: Path, part_batch: int) -> Path:
                artefacts = hook(part, out, batch=part_batch, soc=soc, precision=precision, tool=tool, calib=calib)
                built.extend(artefacts)
                return artefacts[0]

            return [composite.build_parts(composite.read(onnx), out, batch, build_part), *built]
        return hook(onnx, out, batch=batch, soc=soc, precision=precision, tool=tool, calib=calib)

    def precision_refusal(self, precision: str | None) -> str | None:
        """Why this backend cannot build and measure `precision` here, or None if it can (None: its default)."""
        if precision is None or precision in self.precisions:
            return None
        note = f"; {self.int8_note}" if precision == "int8" and self.int8_note else ""
        return f"{self.label} does not build {precision} here (it builds {', '.join(self.precisions)}){note}"

    def quantize(self, source: Path, samples, output: Path, options, say) -> dict:
        """INT8 `output` from the FP32 ONNX `source`, calibrated on `samples`; returns the settings used."""
        hook = self._hook("quantize", "quantize")
        if hook is None:
            raise SsdConvertError(f"`ssdconvert quantize` does not make {self.label} INT8 models: {self.int8_note}")
        return hook(source, samples, output, options, say)

    def check_bench(self, model: Path, ctx) -> None:
        """Before a sweep: refuse what the per-batch builds will not be able to do (e.g. no --soc)."""
        hook = self._hook("compile", "check_bench") if self.builds_per_batch else None
        if hook is not None and model.suffix.lower() == ".onnx":
            hook(model, ctx)

    def build_for_batch(self, model: Path, batch: int, ctx) -> tuple[Path, dict]:
        """Bench: the artefact to time at `batch` (built from an .onnx where the backend does so; a composite
        of .onnx parts gets each part built)."""
        from ssdconvert.backends import composite

        hook = self._hook("compile", "build_for_batch") if self.builds_per_batch else None
        if hook is not None and composite.is_composite(model):
            parts = composite.read(model)
            if all(p.path.suffix.lower() == ".onnx" for p in parts.parts):
                records: dict = {"build_seconds": 0.0, "build_command": []}

                def build_part(part: Path, part_batch: int) -> Path:
                    artefact, record = hook(part, part_batch, ctx)
                    records["build_seconds"] += record.get("build_seconds") or 0.0
                    records["build_command"] += record.get("build_command") or []
                    return artefact

                return composite.build_parts(parts, ctx.workdir, batch, build_part), records
        if hook is None or model.suffix.lower() != ".onnx":
            return model, {}
        return hook(model, batch, ctx)

    def time_batch(self, artefact: Path, batch: int, ctx):
        """Bench: (row, runtime versions) for one batch size; the vendor tool where the backend needs it
        (never for a composite, whose host stage runs here)."""
        from ssdconvert.backends import composite

        hook = None if composite.is_composite(artefact) else self._hook("runner", "time_batch")
        timed = hook(artefact, batch, ctx) if hook else None
        return timed if timed is not None else self.time_with_runner(artefact, batch, ctx)

    def time_with_runner(self, artefact: Path, batch: int, ctx):
        from ssdconvert.timing import BenchRow, timed_loop

        options = RunOptions(batch=batch, device=ctx.device, dym_batch=ctx.dym_batch, precision=ctx.precision)
        with self.make_runner(artefact, options) as runner:
            versions = runner.versions()
            if runner.static_batch not in (None, batch):
                return BenchRow(batch, status="skipped",
                                error=f"{artefact.name} has a static batch of {runner.static_batch}"), versions
            return timed_loop(runner, batch, duration=ctx.duration, warmup=ctx.warmup,
                              min_runs=ctx.min_runs, feeds=ctx.feeds), versions

    def runtime_label(self, versions: Mapping[str, str], soc: str | None = None) -> str:
        hook = self._hook("runner", "runtime_label")
        return hook(versions, soc) if hook else self.label

    def checks(self) -> list:
        """Rows of `ssdconvert doctor` for this backend (tools, environment, runtime)."""
        hook = self._hook("doctor", "checks")
        return hook() if hook else []

    def missing(self, tool: str | None = None) -> str | None:
        """Why this backend cannot run here, or None when it can."""
        hook = self._hook("doctor", "missing")
        return hook(tool) if hook else None


def _registered() -> tuple["Backend", ...]:
    from ssdconvert.backends import all_backends

    return all_backends()


def has_dynamic_image_size(model: str | Path) -> bool:
    """True for a model in the exact mode: an .onnx (a composite's parts) or a built model whose record
    (<model>.json) lists an input with a dynamic dimension past the batch axis."""
    from ssdconvert.backends import composite

    if composite.is_composite(model):
        return any(has_dynamic_image_size(part.path) for part in composite.read(model).parts)
    if Path(model).suffix.lower() == ".onnx":
        from ssdconvert.backends.onnxinfo import read_onnx

        return any(None in i.dims[1:] for i in read_onnx(model).inputs)
    inputs = build_record(model).get("inputs", [])
    return any(None in (i.get("shape") or [])[1:] for i in inputs if isinstance(i, dict))


def build_record(model: str | Path) -> dict:
    """The build record `<model>.json` written by `ssdconvert atc|cnnl|openvino|quantize` ({} if there is none)."""
    import json

    try:
        record = json.loads(Path(f"{model}.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def build_tool(model: str | Path) -> str | None:
    """The `tool` recorded in `<model>.json` (None if there is none)."""
    return build_record(model).get("tool")
