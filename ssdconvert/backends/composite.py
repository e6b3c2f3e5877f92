"""Composite models: one detector variant split into several device models plus a host stage.

A composite is described by `<name>.composite.json` (written by the family's exporter):

    {"schema": "ssdconvert.composite", "version": 1, "model": <zoo name>, "variant": <name>,
     "inputs": [{"name", "shape", "dtype"}], "outputs": [...],       # per sample, no batch axis
     "parts": [{"name", "file", "rows_per_image"}, ...],             # files relative to the descriptor
     "stage": {...}}                                                  # the family's host-stage settings

Every backend runs one through one wrapper, CompositeBackend (`backends.for_model` puts it around the
backend of the parts): its runner runs each part on the wrapped backend (a part with
rows_per_image r runs at r x the batch, e.g. a box head over 1000 RoIs per image), and the host
stage named by the zoo model (ModelSpec.composite[variant]) turns the model inputs into the model
outputs by calling them. So `infer`, `bench` and `run` treat it as one model with the same inputs
and outputs as the single-graph variant, and `eval` cannot tell them apart. Its parts are built in
one place (`build_parts`: each at its own batch) and the descriptor of the built files is named by
one rule, `<name>_<backend's build tag>[_bs<batch>].composite.json`. Compute time is the whole
call: device parts and host stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from ssdconvert.backends.base import Backend, BackendOptions, Runner, RunnerError, RunOptions
from stageio.tensor import TensorSpec
from ssdconvert.errors import SsdConvertError

if TYPE_CHECKING:
    from ssdconvert.timing import BenchContext

SCHEMA = "ssdconvert.composite"
VERSION = 1
SUFFIX = ".composite.json"


@dataclass(frozen=True)
class Part:
    name: str
    path: Path
    rows_per_image: int


@dataclass(frozen=True)
class Composite:
    path: Path
    model: str
    variant: str
    parts: tuple[Part, ...]
    raw: dict

    def metas(self, key: str, batch: int | None) -> list[TensorSpec]:
        return [TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], batch=batch) for t in self.raw[key]]


def is_composite(model: str | Path) -> bool:
    return Path(model).name.endswith(SUFFIX)


def read(path: str | Path) -> Composite:
    """Parse and check a descriptor (SsdConvertError naming what is wrong)."""
    from ssdconvert.fileio import read_json

    path = Path(path)
    raw = read_json(path, "composite descriptor")
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA or raw.get("version") != VERSION:
        raise SsdConvertError(f"{path} is not an {SCHEMA} version {VERSION} descriptor")
    try:
        parts = tuple(Part(p["name"], path.parent / p["file"], int(p["rows_per_image"])) for p in raw["parts"])
        composite = Composite(path, raw["model"], raw["variant"], parts, raw)
        composite.metas("inputs", None), composite.metas("outputs", None)
    except (KeyError, TypeError, ValueError) as exc:
        raise SsdConvertError(f"composite descriptor {path} is malformed: {exc}") from None
    missing = [str(p.path) for p in parts if not p.path.exists()]
    if missing:
        raise SsdConvertError(f"{path} names part file(s) that do not exist: {', '.join(missing)}")
    return composite


def write(path: Path, composite: Composite, files: Mapping[str, Path]) -> Path:
    """A copy of `composite` whose parts are `files` (part name -> file, anywhere on the same filesystem tree)."""
    from ssdconvert.fileio import write_json

    raw = dict(composite.raw)
    # relative to the descriptor, "../" included: a backend that compiles nothing (ONNX Runtime)
    # keeps the parts where they are
    raw["parts"] = [{"name": p.name, "file": os.path.relpath(Path(files[p.name]).resolve(), path.parent.resolve()),
                     "rows_per_image": p.rows_per_image} for p in composite.parts]
    return write_json(path, raw)


def host_stage(composite: Composite):
    from ssdconvert.zoo import get_spec

    factories = get_spec(composite.model).composite
    if composite.variant not in factories:
        raise SsdConvertError(f"{composite.path}: {composite.model} has no composite variant {composite.variant!r} "
                              f"(it has {', '.join(factories) or 'none'})")
    return factories[composite.variant](composite.raw)


def built_name(composite: Composite, tag: str, batch: int | None) -> str:
    """The one name of a descriptor of built parts: `<name>_<tag>[_bs<batch>].composite.json`."""
    stem = composite.path.name[:-len(SUFFIX)]
    return f"{stem}_{tag}{f'_bs{batch}' if batch else ''}{SUFFIX}"


def build_parts(composite: Composite, out_dir: Path, tag: str, batch: int | None,
                build: Callable[[Part, int | None], Path], *, dry_run: bool = False) -> Path:
    """Build every part at rows_per_image x `batch` (None: the batch stays dynamic) with `build(part, its
    batch) -> the built file`, then write the descriptor of the built files into `out_dir` (not on a
    `dry_run`) and return its path (built_name)."""
    files = {p.name: build(p, p.rows_per_image * batch if batch else None) for p in composite.parts}
    target = out_dir / built_name(composite, tag, batch)
    if not dry_run:
        out_dir.mkdir(parents=True, exist_ok=True)
        write(target, composite, files)
    return target


class CompositeRunner(Runner):
    """Runs a composite on one backend: one runner per part, the family's host stage between them."""

    def __init__(self, backend: Backend, model: str | Path, options: RunOptions = RunOptions()):
        super().__init__(model)
        self.backend, self.options = backend, options
        self.name = backend.name
        self.parts: dict[str, Runner] = {}
        self.stage = None

    def _activate(self) -> None:
        composite = read(self.model)
        self.stage = host_stage(composite)
        batch = self.options.batch
        try:
            for part in composite.parts:
                options = RunOptions(batch=batch * part.rows_per_image if batch else None, device=self.options.device)
                self.parts[part.name] = self.backend.make_runner(part.path, options).activate()
        except BaseException:
            self._deactivate()
            raise
        first = composite.parts[0]
        static = self.parts[first.name].static_batch
        for part in composite.parts[1:]:
            other = self.parts[part.name].static_batch
            if static is not None and other not in (None, static * part.rows_per_image):
                raise RunnerError(f"{composite.path.name}: part {part.name} has a static batch of {other}, not "
                                  f"{part.rows_per_image} x {static} (build it at {part.rows_per_image} x the batch)")
        self.inputs, self.outputs = composite.metas("inputs", static), composite.metas("outputs", static)

    def _call(self, part: Runner) -> Callable[..., list[np.ndarray]]:
        names = [meta.name for meta in part.inputs]
        return lambda *arrays: list(part.infer(dict(zip(names, arrays))).values())

    def _infer(self, feeds: Mapping[str, np.ndarray]):
        calls = {name: self._call(part) for name, part in self.parts.items()}
        start = self._clock()
        outputs = self.stage(dict(feeds), calls)
        return outputs, (self._clock() - start) * 1e3

    def _deactivate(self) -> None:
        for part in self.parts.values():
            part.deactivate()
        self.parts = {}

    def versions(self) -> dict[str, str]:
        first = next(iter(self.parts.values()), None)
        versions = dict(first.versions()) if first is not None else {}
        versions["composite"] = f"{len(self.parts)} parts + host stage ({self.model.name})"
        return versions


# What a composite's backend is: the facts of the backend its parts run on.
FACTS = ("name", "label", "Options", "build_tag", "suffixes", "built_by", "also_reads", "aliases", "device_list",
         "device_help", "builds_per_batch", "shared_runner", "precisions", "default_precision", "int8_note",
         "dynamic_image_size", "host_cpu", "cluster_resource")


class CompositeBackend(Backend):
    """The backend of a composite model: each part on `inner` (with its options), the host stage between them.
    It says what `inner` says about itself; it builds, runs and times the parts as one model."""

    wrapper = True

    def __init__(self, inner: Backend):
        for fact in FACTS:
            setattr(self, fact, getattr(inner, fact))
        self.inner = inner
        super().__init__(inner.options)

    def configured(self, options: BackendOptions | Mapping[str, BackendOptions] | None = None,
                   **changes) -> "CompositeBackend":
        return CompositeBackend(self.inner.configured(options, **changes))

    def runs(self, model: str | Path) -> bool:
        return all(self.inner.runs(part.path) for part in read(model).parts)

    def precision_refusal(self, precision: str | None) -> str | None:
        return self.inner.precision_refusal(precision)

    def check_model(self, model: str | Path, *, onnx_ok: bool = False) -> None:
        for part in read(model).parts:
            self.inner.check_model(part.path, onnx_ok=onnx_ok)

    def has_dynamic_image_size(self, model: str | Path) -> bool:
        return any(self.inner.has_dynamic_image_size(part.path) for part in read(model).parts)

    def build(self, onnx: Path, out_dir: Path, *, batch: int, precision: str | None,
              calib: Path | None) -> list[Path]:
        """Each part built by `inner` at its own batch; the descriptor of the built parts first."""
        built: list[Path] = []

        def build_part(part: Part, part_batch: int | None) -> Path:
            artefacts = self.inner.build(part.path, out_dir, batch=part_batch, precision=precision, calib=calib)
            built.extend(artefacts)
            return artefacts[0]

        return [build_parts(read(onnx), out_dir, self.build_tag, batch, build_part), *built]

    def bench_model(self, model: Path, batch: int, ctx: BenchContext) -> tuple[Path, dict]:
        """A composite of .onnx parts on a backend that builds per batch size: each part built at its own batch."""
        composite = read(model)
        if not self.builds_per_batch or any(p.path.suffix.lower() != ".onnx" for p in composite.parts):
            return Path(model), {}
        record: dict = {"build_seconds": 0.0, "build_command": []}

        def build_part(part: Part, part_batch: int | None) -> Path:
            artefact, built = self.inner.build_for_batch(part.path, part_batch, ctx)
            record["build_seconds"] += built.get("build_seconds") or 0.0
            record["build_command"] += built.get("build_command") or []
            return artefact

        return build_parts(composite, ctx.workdir, self.build_tag, batch, build_part), record

    def runner_for(self, model: Path, options: RunOptions) -> Runner:
        return CompositeRunner(self.inner, model, options)

    def cluster_device(self, physical: str, mask: str | None) -> str:
        return self.inner.cluster_device(physical, mask)

    def runtime_label(self, versions: Mapping[str, str]) -> str:
        return self.inner.runtime_label(versions)

    def checks(self) -> list:
        return self.inner.checks()

    def missing(self) -> str | None:
        return self.inner.missing()
