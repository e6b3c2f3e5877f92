"""The two small interfaces every backend implements (in the spirit of Polygraphy).

**Backend**: one device backend, an ABC subclassed in `backends/<name>/__init__.py`. Its class
attributes say what it is (name, deprecated aliases, label, the model files it runs, the
precisions it builds); its methods are the seam, typed, each with one job:

    build            `run`'s compile step (abstract; the ONNX itself where it compiles nothing)
    build_for_batch  bench's per-batch build from an .onnx (with `builds_per_batch`), and
    check_bench      what it refuses before such a sweep
    runner_for       its Runner factory (abstract); `folder_tool`, `time_batch` and `runtime_label`
                     where it runs a folder or a bench row through its vendor tool
    checks, missing  its rows of `ssdconvert doctor`, and why it cannot run here (abstract)
    cluster_resource what one of its `--cluster` cells holds on a Ray node (CPU cores, an NPU, an MLU),
                     and `cluster_device` the --device such a cell passes for the device it holds
    quantize         its INT8 model for `ssdconvert quantize` (with `quantized_suffix`)
    make_taps        its intermediate tensors for `ssdconvert compare`
    commands         its own click commands (`atc`, `cnnl`, `openvino`); `cli_options` the
                     options it adds to `run`, `bench`, `infer` and `quantize`

Its own settings (Ascend's chip, MagicMind's MLU architecture, the compiler executable) are its
`Options` dataclass; an instance carries them (`backend.options`, `backend.configured(...)`), so
no generic type names a backend's option. A class that declares `builds_per_batch` without
implementing `build_for_batch` (or the reverse) fails when it is defined, not when bench runs.
Nothing heavy is imported until a method needs it, so `ssdconvert --help` stays light. A
composite model (several device models and a host stage) is run by one wrapper backend around
any of these (backends/composite.py).

**Runner**: loads a model (`activate`), runs one batch at a time (`infer`) and releases it
(`deactivate`). `infer` times only the runtime call: no file I/O, no Python-side batching.
Subclasses implement `_activate`, `_infer`, `_deactivate` and fill `inputs` / `outputs`.

    with backend.make_runner("model.onnx") as runner:
        outputs = runner.infer({"image": batch})      # dict name -> ndarray, in output order
        ms = runner.last_compute_ms                   # time of the runtime call only
"""

from __future__ import annotations

import copy
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError
from stageio.tensor import TensorSpec  # a runner's inputs and outputs: one sample's shape, `batch` apart

if TYPE_CHECKING:  # click and the stage modules stay lazy imports
    import click

    from ssdconvert.doctor import Check
    from ssdconvert.layout import InferJob, InferResult
    from ssdconvert.timing import BenchContext, BenchRow

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
    """How infer and bench ask any backend for a runner (a backend's own settings are its options)."""

    batch: int | None = None  # fix a dynamic batch axis (OpenVINO reshape, Ascend gear, MagicMind shape)
    device: str = "0"  # one device: NPU/MLU id, or an OpenVINO device name
    precision: str | None = None  # fp32 | fp16 | bf16 | int8 where the runtime chooses it (OpenVINO's CPU
    #                               inference precision); None: what the model's build record says, else fp32


@dataclass(frozen=True)
class BackendOptions:
    """What a user sets for one backend (`run`, `bench`, `infer`, `quantize`, the Python API). A backend
    with settings of its own subclasses it (Ascend's chip, MagicMind's MLU architecture) as its `Options`."""

    tool: str | None = None  # its compiler executable [default: PATH, then the vendor environment]


@dataclass(frozen=True)
class ClusterResource:
    """What one `--cluster` cell of a backend holds on a Ray node while it runs (ssdconvert/cluster).

    A visible-devices mask renumbers devices: with `ASCEND_RT_VISIBLE_DEVICES=3` the NPU that npu-smi
    calls 3 is device 0 for ACL and ais_bench, so a cell records the host's id and passes its position
    in the mask (Backend.cluster_device)."""

    name: str  # the Ray resource: CPU (cores), an accelerator resource Ray knows (NPU), or a custom one (MLU)
    visible_env: str | None = None  # the vendor runtime's visible-devices mask
    ray_assigns_ids: bool = False  # Ray hands out device ids (its accelerator resources), else a cell claims a slot
    device: bool = True  # False: CPU cores, no device id


CPU_CORES = ClusterResource("CPU", device=False)


class Backend(ABC):
    """One backend (see the module doc). A subclass declares the class attributes below and implements the
    abstract methods; an instance carries its options."""

    # -- what it is, declared by each backend -------------------------------------------------
    name: ClassVar[str]  # the one name: what --backend, --backends and the Python API take
    label: ClassVar[str]  # for people: "ONNX Runtime", "Ascend (ATC + ais_bench)"
    Options: ClassVar[type[BackendOptions]] = BackendOptions  # its options dataclass
    build_tag: ClassVar[str] = ""  # names what it builds (a composite's descriptor): atc, ov, mm [default: its name]
    suffixes: ClassVar[tuple[str, ...]] = ()  # model files it runs, recognised by suffix (.om)
    built_by: ClassVar[tuple[str, ...]] = ()  # "tool" of the build records (<model>.json) of models it runs
    also_reads: ClassVar[tuple[str, ...]] = ()  # further suffixes its runner takes, not picked by `auto`
    aliases: ClassVar[tuple[str, ...]] = ()  # deprecated names, accepted with a note
    device_list: ClassVar[bool] = False  # one run may spread over several devices (--device 0,1,...)
    device_help: ClassVar[str] = ""  # what --device means for it
    builds_per_batch: ClassVar[bool] = False  # bench builds one model per batch size from an .onnx (build_for_batch)
    shared_runner: ClassVar[bool] = False  # bench: one runner serves every batch size
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)  # what `run`/`bench --precision` build and measure
    default_precision: ClassVar[str] = "fp32"  # what it builds when no precision is asked for
    int8_note: ClassVar[str] = ""  # how INT8 is made for it when `quantize` does not do it here
    quantized_suffix: ClassVar[str] = ""  # the INT8 model `quantize` writes for it (.onnx); "": it does not
    int8_tuning: ClassVar[str] = ""  # its own options worth trying when its INT8 model fails the gate
    # runs models whose image height and width differ per sample (a resize-and-pad model's exact mode, batch 1)
    dynamic_image_size: ClassVar[bool] = False
    wrapper: ClassVar[bool] = False  # its facts are another backend's (composite.CompositeBackend)
    host_cpu: ClassVar[bool] = False  # it computes on this machine's CPU: its figures depend on the CPU's features
    cluster_resource: ClassVar[ClusterResource] = CPU_CORES  # what one of its --cluster cells holds on a node

    def __init__(self, options: BackendOptions | None = None):
        options = self.Options() if options is None else options
        if not isinstance(options, self.Options):
            raise SsdConvertError(f"{self.label} takes {self.Options.__name__}, not {type(options).__name__}")
        self.options = options

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        abstract = any(getattr(getattr(cls, method), "__isabstractmethod__", False)
                       for method in Backend.__abstractmethods__)  # (ABCMeta marks the class only after this)
        problem = None if abstract or cls.wrapper else cls._declaration_problem()
        if problem:
            raise TypeError(f"backend class {cls.__qualname__} {problem}")
        if not abstract and not cls.wrapper and not cls.build_tag:
            cls.build_tag = cls.name

    @classmethod
    def _declaration_problem(cls) -> str | None:
        """What is wrong with a concrete subclass's declaration, or None."""
        missing = [fact for fact in ("name", "label") if not isinstance(getattr(cls, fact, None), str)]
        if missing:
            return f"declares no {' or '.join(missing)}"
        options = cls.Options
        if not (isinstance(options, type) and issubclass(options, BackendOptions) and is_dataclass(options)):
            return "Options must be a dataclass subclassing BackendOptions"
        if cls.default_precision not in cls.precisions:
            return f"builds {', '.join(cls.precisions)}, not its default precision {cls.default_precision}"
        for flag, method in (("builds_per_batch", "build_for_batch"), ("quantized_suffix", "quantize")):
            if bool(getattr(cls, flag)) != cls._overrides(method):
                return (f"sets {flag} but does not implement {method}" if getattr(cls, flag)
                        else f"implements {method} but does not set {flag}")
        return None

    @classmethod
    def _overrides(cls, method: str) -> bool:
        return getattr(cls, method) is not getattr(Backend, method)

    def __repr__(self) -> str:
        return f"<{self.name} backend {self.options}>"

    # -- its options ----------------------------------------------------------------------------
    def configured(self, options: BackendOptions | Mapping[str, BackendOptions] | None = None,
                   **changes: Any) -> "Backend":
        """This backend with other options: its Options, or {backend name: options} (its own taken; its current
        ones kept where the mapping has none), and/or fields of them changed (`configured(soc="Ascend310P3")`)."""
        if isinstance(options, Mapping):
            options = options.get(self.name)
        chosen = self.options if options is None else options
        if changes:
            known = {f.name for f in fields(self.Options)}
            unknown = sorted(set(changes) - known)
            if unknown:
                raise SsdConvertError(f"{self.label} has no option {unknown[0]} (it has {', '.join(sorted(known))})")
            chosen = replace(chosen, **changes)
        clone = copy.copy(self)
        Backend.__init__(clone, chosen)
        return clone

    # -- models and devices ---------------------------------------------------------------------
    def runs(self, model: str | Path) -> bool:
        """True if `model` is a file this backend's runner takes (by suffix or build record)."""
        suffix = Path(model).suffix.lower()
        return suffix in self.suffixes or suffix in self.also_reads or build_tool(model) in self.built_by

    def check_model(self, model: str | Path, *, onnx_ok: bool = False) -> None:
        """Refuse a model file this backend cannot take (`onnx_ok`: bench builds from an .onnx). A
        backend whose models have no extension (MagicMind) takes any file but an .onnx when chosen."""
        is_onnx = Path(model).suffix.lower() == ".onnx"
        if self.runs(model) or (onnx_ok and is_onnx) or (not self.suffixes and not is_onnx):
            return
        takes = [*self.suffixes, *self.also_reads]
        what = " or ".join(takes) if takes else "its models (recognised by their build record <model>.json)"
        if onnx_ok and self.builds_per_batch:
            what += ", or an .onnx to build one per batch size"
        raise SsdConvertError(f"{self.label} runs {what}, not '{Path(model).name}'")

    def has_dynamic_image_size(self, model: str | Path) -> bool:
        """True for a model in the exact mode (each image at its own height and width)."""
        return has_dynamic_image_size(model)

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

    def cluster_device(self, physical: str, mask: str | None) -> str:
        """The --device of a `--cluster` cell that holds the host's device `physical` where the process sees the
        visible-devices mask `mask` (cluster_resource.visible_env): its position there, or `physical` unmasked."""
        if mask is None or not mask.strip():
            return physical
        visible = [d.strip() for d in mask.split(",")]
        if physical not in visible:
            raise SsdConvertError(f"device {physical} is not in the visible-devices mask {mask!r} of this process")
        return str(visible.index(physical))

    def check_image_size(self, dynamic: bool, what: str) -> None:
        """Refuse `what` (a model or an input folder) in the exact mode where this backend needs a fixed canvas."""
        if dynamic and not self.dynamic_image_size:
            takes = " and ".join(b.label for b in _registered() if b.dynamic_image_size)
            raise SsdConvertError(f"{self.label} needs the fixed canvas: {what} is in the exact mode (each image at "
                                  f"its own size), which runs on {takes} only; preprocess and export with "
                                  "--canvas HxW for the device")

    # -- build ----------------------------------------------------------------------------------
    def compile(self, onnx: Path, workdir: Path, *, batch: int, precision: str | None = None,
                calib: Path | None = None) -> list[Path]:
        """Build what this backend runs from `onnx` into `workdir/<name>/` at `precision` (None: its default);
        `calib`, the preprocessed bins, for builds that calibrate. The file its runner loads comes first."""
        refusal = self.precision_refusal(precision)
        if refusal:
            raise SsdConvertError(refusal)
        builder = _for_model(onnx, self)  # a composite model: the wrapper that builds its parts on this backend
        return builder.build(Path(onnx), Path(workdir) / self.name, batch=batch, precision=precision, calib=calib)

    @abstractmethod
    def build(self, onnx: Path, out_dir: Path, *, batch: int, precision: str | None,
              calib: Path | None) -> list[Path]:
        """`run`'s compile step: the model files built from `onnx` in `out_dir` at `batch` (the one its runner
        loads first), or [onnx] where it compiles nothing."""

    def precision_refusal(self, precision: str | None) -> str | None:
        """Why this backend cannot build and measure `precision` here, or None if it can (None: its default)."""
        if precision is None or precision in self.precisions:
            return None
        note = f"; {self.int8_note}" if precision == "int8" and self.int8_note else ""
        return f"{self.label} does not build {precision} here (it builds {', '.join(self.precisions)}){note}"

    # -- bench ----------------------------------------------------------------------------------
    def check_bench(self, model: Path, ctx: BenchContext) -> None:
        """Before a sweep of `model`: refuse what its per-batch builds will not be able to do (e.g. no chip)."""

    def build_for_batch(self, onnx: Path, batch: int, ctx: BenchContext) -> tuple[Path, dict]:
        """With `builds_per_batch`: the model bench times at `batch`, built from `onnx`, and what the row records
        of the build (build_seconds, build_command)."""
        raise NotImplementedError(f"{self.name} builds nothing per batch size")

    def bench_model(self, model: Path, batch: int, ctx: BenchContext) -> tuple[Path, dict]:
        """The model bench times at `batch`: built from an .onnx where the backend builds per batch size, else
        `model` itself."""
        if self.builds_per_batch and Path(model).suffix.lower() == ".onnx":
            return self.build_for_batch(Path(model), batch, ctx)
        return Path(model), {}

    def time_batch(self, artefact: Path, batch: int, ctx: BenchContext) -> tuple[BenchRow, dict] | None:
        """(row, runtime versions) for one batch size through its vendor tool, or None: its runner times it."""
        return None

    def bench_row(self, artefact: Path, batch: int, ctx: BenchContext) -> tuple[BenchRow, dict]:
        """Bench: (row, runtime versions) for one batch size, timed by its vendor tool or its runner."""
        return self.time_batch(artefact, batch, ctx) or self.time_with_runner(artefact, batch, ctx)

    def time_with_runner(self, artefact: Path, batch: int, ctx: BenchContext) -> tuple[BenchRow, dict]:
        from ssdconvert.timing import BenchRow, timed_loop

        with self.make_runner(artefact, RunOptions(batch=batch, device=ctx.device, precision=ctx.precision)) as runner:
            versions = runner.versions()
            if runner.static_batch not in (None, batch):
                return BenchRow(batch, status="skipped",
                                error=f"{artefact.name} has a static batch of {runner.static_batch}"), versions
            return timed_loop(runner, batch, duration=ctx.duration, warmup=ctx.warmup,
                              min_runs=ctx.min_runs, feeds=ctx.feeds), versions

    def runtime_label(self, versions: Mapping[str, str]) -> str:
        """What ran, for reports (e.g. `OpenVINO 2026.4.1 CPU f32`)."""
        return self.label

    # -- run ------------------------------------------------------------------------------------
    def make_runner(self, model: str | Path, options: RunOptions = RunOptions()) -> Runner:
        """A not-yet-activated runner for `model` (refused if it is not a file this backend runs; a composite
        model's runs its parts on this backend)."""
        target = _for_model(model, self)
        target.check_model(model)
        return target.runner_for(Path(model), options)

    @abstractmethod
    def runner_for(self, model: Path, options: RunOptions) -> Runner:
        """Its runner factory: a not-yet-activated runner for `model`, a file it runs."""

    def folder_tool(self, job: InferJob) -> Callable[[InferJob], InferResult] | None:
        """A callable that runs a whole infer job through its vendor tool, or None: its runner does."""
        return None

    # -- doctor ---------------------------------------------------------------------------------
    @abstractmethod
    def checks(self) -> list[Check]:
        """Its rows of `ssdconvert doctor` (tools, environment, runtime)."""

    @abstractmethod
    def missing(self) -> str | None:
        """Why this backend cannot run here (its compiler: `options.tool`, else the usual places), or None."""

    # -- INT8 and layers ------------------------------------------------------------------------
    @property
    def quantizes(self) -> bool:
        """True if `ssdconvert quantize` makes its INT8 models."""
        return bool(self.quantized_suffix)

    def quantize(self, source: Path, samples, output: Path, exclude: Sequence[str], say: Callable[[str], None]) -> dict:
        """With `quantized_suffix`: the INT8 `output` from the FP32 ONNX `source`, calibrated on `samples`
        (samples.SampleSet), `exclude`d nodes kept in float; returns the settings used."""
        raise SsdConvertError(self.quantize_refusal())

    def quantize_refusal(self) -> str:
        """Why `ssdconvert quantize` does not make its INT8 models, and how they are made."""
        return f"`ssdconvert quantize` does not make {self.label} INT8 models: {self.int8_note}"

    @property
    def exposes_layers(self) -> bool:
        """True if `ssdconvert compare` can read its intermediate tensors here."""
        return self._overrides("make_taps")

    def make_taps(self, model: Path, precision: str | None):
        """Its intermediate tensors by ONNX tensor name, for `ssdconvert compare` (`fetch(names, feeds,
        outputs)`); only where `exposes_layers`."""
        raise NotImplementedError(f"{self.name} exposes no intermediate tensors")

    # -- its command line -----------------------------------------------------------------------
    def commands(self) -> list[click.Command]:
        """Its own click commands (its compiler: `ssdconvert atc`), loaded only by the CLI."""
        return []

    def cli_options(self, command: str) -> list[click.Option]:
        """The options it adds to the generic command `command` (run, bench, infer, quantize), each named by the
        field of its Options it fills (`options_from`)."""
        return []

    def options_from(self, values: Mapping[str, Any]) -> BackendOptions:
        """Its Options from the values of its cli_options (by name; a field not given keeps its default)."""
        known = {f.name for f in fields(self.Options)}
        return self.Options(**{name: value for name, value in values.items() if name in known})


def _registered() -> tuple["Backend", ...]:
    from ssdconvert.backends import all_backends

    return all_backends()


def _for_model(model: str | Path, backend: Backend) -> Backend:
    from ssdconvert.backends import for_model

    return for_model(model, backend)


def has_dynamic_image_size(model: str | Path) -> bool:
    """True for a model in the exact mode: an .onnx or a built model whose record (<model>.json) lists an
    input with a dynamic dimension past the batch axis."""
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
