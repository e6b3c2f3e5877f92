"""How Ascend runs: in-process through ais_bench's Python API (`InferSession`) where this Python
can import it, else through `python3 -m ais_bench` (ascend/ais_bench.py), which writes the
ais_bench layout itself; several NPUs (`--device 0,1,...`) always go through the tool, which
starts one process per NPU and splits the inputs between them.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Mapping

import numpy as np

from ssdconvert.backends.ascend.ais_bench import api_available, om_gears, run_ais_bench
from ssdconvert.backends.base import Runner, RunnerError, RunOptions, dim_or_none, first_line
from stageio.tensor import TensorSpec


def make_runner(model: Path, options: RunOptions, dym_batch: bool = False) -> "AisBenchRunner":
    """The in-process runner; a gear .om (`ssdconvert atc --dynamic-bs`, or `dym_batch`) runs gear `options.batch`."""
    dym_batch, notes = gear_choice(model, options.batch, dym_batch)
    if not options.device.isdigit():
        raise RunnerError(f"--device for Ascend is an NPU id (0, 1, ...), not {options.device!r}")
    runner = AisBenchRunner(model, device=int(options.device), batch=options.batch, dym_batch=dym_batch)
    runner.notes += notes
    return runner


def gear_choice(model: Path, batch: int | None, dym_batch: bool) -> tuple[bool, list[str]]:
    """(run with --dymBatch?, notes): the gears recorded in `<om>.json` decide for a gear .om."""
    gears = om_gears(model)
    if not gears:
        return dym_batch, []
    if batch not in gears:
        raise RunnerError(f"{model.name} was built with batch gears {','.join(map(str, gears))} (its .json record); "
                          "pass --batchsize with one of them")
    if dym_batch:
        return True, []
    return True, [f"{model.name} has batch gears {gears} (its .json record): running gear {batch} with --dymBatch"]


_ACL_DTYPES = {"float32": "float32", "float": "float32", "float16": "float16", "uint8": "uint8", "int8": "int8",
               "int32": "int32", "int64": "int64", "double": "float64", "float64": "float64", "bool": "bool"}


class AisBenchRunner(Runner):
    """Runs an .om in-process through `ais_bench.infer.interface.InferSession` (device compute
    time from the session's own exec_time_list, like the CLI's NPU_compute_time).

    `dym_batch`/`batch`: for an om built with dynamic batch gears, run gear `batch` (else each call's batch).
    The gear is set with `session.set_dynamic_batchsize(n)`, present in both API generations: in the standalone
    Ascend/tools interface.py (git 9d6da90, 2023-06) `infer(..., mode="dymbatch")` sets nothing, and aclruntime
    then wants the largest gear's bytes (ModelInferenceProcessor.cpp: realsize = size * n / max batch only
    after SetDynamicBatchsize); sync-ait's interface.py (AIT 6.0.RC2/RC3) sets it itself in mode "dymbatch" and
    resets it in mode "static", so calls keep mode "dymbatch". [Read in the sources; not run on an NPU here]
    """

    name = "ascend"

    def __init__(self, model: str | Path, *, device: int = 0, batch: int | None = None, dym_batch: bool = False):
        super().__init__(model)
        self.device = device
        self.batch = batch
        self.dym_batch = dym_batch
        self.session = None
        self._gear: int | None = None  # the batch gear set on the session

    def _activate(self) -> None:
        if not api_available():
            raise RunnerError("the ais_bench Python API (ais_bench.infer.interface) is not importable here; "
                              "install the aclruntime and ais_bench wheels")
        from ais_bench.infer.interface import InferSession

        try:
            self.session = InferSession(self.device, str(self.model))
        except Exception as exc:
            raise RunnerError(f"ais_bench cannot load {self.model}: {first_line(exc)}") from None
        self.inputs = [_acl_meta(t) for t in self.session.get_inputs()]
        self.outputs = [_acl_meta(t) for t in self.session.get_outputs()]
        if self.inputs and self.inputs[0].batch is None:
            self.dym_batch = True
        if self.dym_batch and self.batch:
            self._set_gear(self.batch)
            self.inputs = [TensorSpec(m.name, m.shape, m.dtype, batch=self.batch) for m in self.inputs]

    def _set_gear(self, batch: int) -> None:
        try:
            self.session.set_dynamic_batchsize(int(batch))
        except Exception as exc:
            raise RunnerError(f"{self.model.name} cannot run batch gear {batch}: {first_line(exc)}") from None
        self._gear = int(batch)

    def _infer(self, feeds: Mapping[str, np.ndarray]):
        arrays = [np.ascontiguousarray(feeds[m.name]) for m in self.inputs]
        session = self.session
        if self.dym_batch and arrays and arrays[0].shape[0] != self._gear:
            self._set_gear(arrays[0].shape[0])
        start = self._clock()
        try:
            outputs = session.infer(arrays, mode="dymbatch") if self.dym_batch else session.infer(arrays)
        except Exception as exc:
            raise RunnerError(f"ais_bench inference failed: {first_line(exc)}") from None
        wall_ms = (self._clock() - start) * 1e3
        return list(outputs), _last_exec_ms(session, wall_ms)

    def _deactivate(self) -> None:
        session, self.session = self.session, None
        for name in ("free_resource", "finalize"):
            if session is not None and hasattr(session, name):
                getattr(session, name)()
                break

    def versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return {"ais_bench": version("ais_bench"), "interface": "python API (InferSession)"}
        except PackageNotFoundError:
            return {"ais_bench": "unknown", "interface": "python API (InferSession)"}


def _acl_meta(tensor) -> TensorSpec:
    dtype = getattr(tensor, "datatype", "float32")
    dtype = str(getattr(dtype, "name", dtype)).split(".")[-1].lower()
    return TensorSpec.batched(tensor.name, [dim_or_none(d) for d in tensor.shape], _ACL_DTYPES.get(dtype, dtype))


def _last_exec_ms(session, fallback_ms: float) -> float:
    """The last NPU compute time: newer `summary()`, older `sumary()`; entries are ms or (start, end)."""
    for name in ("summary", "sumary"):
        fn = getattr(session, name, None)
        if fn is None:
            continue
        try:
            times = list(fn().exec_time_list)
        except Exception:
            continue
        if times:
            last = times[-1]
            if isinstance(last, (tuple, list)) and len(last) == 2:
                return float(last[1]) - float(last[0])
            return float(last)
    return fallback_ms


# ---------------------------------------------------------------------------------------------
# Through the tool: infer folders and bench rows


def folder_tool(job, dym_batch: bool = False):
    """Infer through `python3 -m ais_bench` for several NPUs, or when this Python cannot import its API."""
    if len(job.devices) > 1 or not api_available():
        return partial(infer_with_tool, dym_batch=dym_batch)
    return None


def infer_with_tool(job, dym_batch: bool = False):
    """Run the job with the real tool: it batches, pads and writes the layout (per device) itself; `dym_batch`:
    the .om has batch gears (else its build record says whether it has)."""
    from ssdconvert.layout import InferError, InferResult
    from stageio.results import clear_results, result_name, sample_stem

    files = job.inputs.first
    try:
        dym_batch, warnings = gear_choice(job.model, job.batchsize, dym_batch)
    except RunnerError as exc:
        raise InferError(str(exc)) from None
    warnings = list(job.warnings) + warnings
    if job.manifests and job.manifests[0] is None:
        warnings.append("no manifest.json beside the inputs: ais_bench will take the files as raw om input data")
    if len(job.devices) > len(files):
        raise InferError(f"{len(files)} input file(s) cannot be split across {len(job.devices)} NPUs "
                         f"({','.join(job.devices)}): ais_bench would give a device nothing to run")
    clear_results(job.output)
    # Absolute paths: ais_bench records its argv in the summary and `eval` finds the manifest from it.
    source = job.inputs.argument() if job.inputs.folders else [str(f.resolve()) for f in files]
    result = run_ais_bench(job.model.resolve(), input=source, output=job.output.resolve().parent,
                           output_dirname=job.output.name, batchsize=job.batchsize,
                           dym_batch=job.batchsize if dym_batch else None, device=",".join(job.devices),
                           warmup=job.warmup, loop=job.loop, echo=job.echo)
    folders = _device_folders(job.output, job.devices) if len(job.devices) > 1 else [job.output]
    written: dict[str, list[str]] = {}
    for folder in folders:
        for path in folder.glob(result_name("*", 0)):
            written.setdefault(path.name, []).append(folder.name)
    twice = next((name for name, where in written.items() if len(where) > 1), None)
    if twice:
        raise InferError(f"ais_bench wrote {twice} in {' and '.join(written[twice])}: it ran every input on every NPU "
                         "(ais_bench from AIT 6.0.RC3 and msit split the inputs only with --divide_input 1, which "
                         "this one's --help does not list)")
    missing = [f.name for f in files if result_name(sample_stem(f), 0) not in written]
    if missing:
        raise InferError(f"ais_bench wrote no output for {missing[0]} ({len(missing)} of {len(files)} inputs missing; "
                         f"log: {result.log_path})")
    compute = result.compute_ms
    batch = int(result.console.batchsize or job.batchsize or 0)
    runs = int(compute.get("count", 0)) // max(job.loop, 1) if compute.get("count") else 0
    padded = runs * batch - len(files) if batch and runs else 0
    summary_path = result.summary_path or folders[0].with_name(f"{folders[0].name}_summary.json")
    return InferResult("ascend", job.model, job.output, summary_path, len(files), batch, runs, max(padded, 0),
                       compute, float(result.throughput or 0.0), result.seconds, warnings=warnings,
                       log_path=result.log_path, versions={"ais_bench": "subprocess " + " ".join(result.command[:3])},
                       device_folders=folders if len(job.devices) > 1 else [])


def _device_folders(output: Path, devices) -> list[Path]:
    from ssdconvert.layout import InferError
    from stageio.errors import LayoutError
    from stageio.reader import device_folders

    try:
        return device_folders(output, list(devices)) or []
    except LayoutError as exc:
        raise InferError(f"ais_bench's device folders: {exc}") from None


def time_batch(om: Path, batch: int, ctx, dym_batch: bool = False):
    """Bench through `python3 -m ais_bench --loop L --batchsize N` (how Ascend ModelZoo's SSD-ResNet34
    README table was measured) when the Python API is not importable here; None lets the in-process
    runner time it."""
    if api_available():
        return None
    from ssdconvert.timing import BenchRow, stats_ms

    dym_batch, _ = gear_choice(om, batch, dym_batch)
    kwargs = dict(output=ctx.workdir, batchsize=batch, dym_batch=batch if dym_batch else None, device=ctx.device)
    # a 10-loop probe sizes the loop count to fill the duration
    result = run_ais_bench(om, output_dirname=f"bs{batch}_probe", warmup=ctx.warmup, loop=10, **kwargs)
    mean = result.compute_ms.get("mean") or 0.0
    loops = math.ceil(ctx.duration * 1000.0 / mean) if mean > 0 else 10
    if loops > 10:
        result = run_ais_bench(om, output_dirname=f"bs{batch}", warmup=ctx.warmup, loop=min(loops, 100000), **kwargs)
    latency = stats_ms(result.compute_ms_list) if result.compute_ms_list else dict(result.compute_ms)
    row = BenchRow(batch, throughput=result.throughput, wall_throughput=None, latency_ms=latency,
                   runs=int(latency.get("count", 0)), seconds=result.seconds)
    return row, {"ais_bench": "subprocess python3 -m ais_bench"}
