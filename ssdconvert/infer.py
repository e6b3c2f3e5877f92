"""`ssdconvert infer`: run a model over folders of input tensors and write the ais_bench layout.

Every backend produces exactly what `python3 -m ais_bench --output P --output_dirname D` does:

    P/D/<stem>_<i>.bin        raw output i of the sample read from <stem>.bin (stem = name cut at
                              the FIRST dot); nothing for padding slots
    P/D_summary.json          filesinfo, args, NPU_compute_time / H2D_latency / D2H_latency stats
                              (min, max, mean, median, percentile(99%), count; ms), throughput,
                              npu_compute_time_list, pid

Batching follows ais_bench: natural-sorted input files, as many consecutive files per inference
as fill the model input, the last batch padded with copies of its first file. A model with
several inputs takes one folder per input (`--input dir_a,dir_b`); sample i is the i-th file of
each folder (see ssdconvert/layout.py). A preprocess folder whose manifest lists side inputs
(Faster R-CNN's `im_info/`) may be given alone: its side-input folders are added in order. A model
whose image height and width are dynamic (a resize-and-pad model's exact mode) runs at batch 1, each
sample at its own shape, read from the manifest (resized size + padding) and checked against the
file's size; backends that need a fixed canvas refuse such a model or folder. Compute time is the
runtime call only (no file I/O), throughput = 1000 * batch / mean compute ms (padding counted, as
ais_bench does). End-to-end time (reading, inference, writing) is reported apart.

The backend decides how the folder is run (backends/<name>/runner.py): in-process through its
Runner, batch by batch, here; or, where the backend says so, by its vendor tool writing the
layout itself (Ascend: `python3 -m ais_bench` for several NPUs or without the in-process API).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ssdconvert import backends
from ssdconvert.backends.base import Backend, BackendOptions, RunOptions, Runner
from ssdconvert.family import agree, manifest_claim, model_claim, outputs_claim
from ssdconvert.fileio import ensure_writable_dir, write_json
from ssdconvert.layout import InferError, InferJob, InferResult, InputSet, check_unique_stems, list_inputs
from ssdconvert.partial import partial_output
from ssdconvert.timing import stats_ms
from stageio.results import is_result, result_name, sample_stem, summary_path
from stageio.tensor import TensorSpec, nbytes

TIMING_NOTE = ("NPU_compute_time is the runtime call only (no file I/O, no batching in Python); "
               "throughput = 1000 * batchsize / mean compute ms, padding slots counted (ais_bench's definition)")

REMEDY = ("preprocess the inputs for the model's detector (`ssdconvert preprocess --model ...`), or run that "
          "detector's model")

__all__ = ["InferError", "InferResult", "run_infer", "list_inputs"]


# ---------------------------------------------------------------------------------------------
# Input files


def file_nbytes(path: Path) -> int:
    if path.suffix.lower() == ".npy":
        return int(np.load(path, mmap_mode="r").nbytes)
    return path.stat().st_size


def load_manifest_for(folder: Path):
    """The preprocess manifest beside the inputs, or None."""
    from preprocess.manifest import FILE_NAME, read_manifest

    if not (folder / FILE_NAME).is_file():
        return None
    return read_manifest(folder)


def with_side_inputs(inputs: InputSet) -> InputSet:
    """One preprocess folder whose manifest lists side inputs -> that folder and its side-input folders."""
    if len(inputs.folders) != 1:
        return inputs
    manifest = load_manifest_for(inputs.folders[0])
    if manifest is None or not manifest.side_inputs:
        return inputs
    folders = [inputs.folders[0], *(inputs.folders[0] / side.folder for side in manifest.side_inputs)]
    missing = [str(f) for f in folders[1:] if not f.is_dir()]
    if missing:
        raise InferError(f"manifest.json in {inputs.folders[0]} lists the side-input folder {missing[0]}, which does "
                         "not exist: preprocess again")
    return list_inputs(folders)


def check_manifests(inputs: InputSet) -> tuple[list, list, list[str]]:
    """(each input folder's manifest.json or None, what each folder's files hold (the manifest's
    InputInfo, or a SideInput of the first folder's manifest, or None), warnings); every file's size
    is checked against it (in the exact mode against its own image's shape)."""
    homes = inputs.folders or (inputs.home,)
    manifests = [load_manifest_for(home) for home in homes]
    sides = {(homes[0] / side.folder).resolve(): side for side in (manifests[0].side_inputs if manifests[0] else [])}
    infos = [m.input if m is not None else sides.get(home.resolve()) for m, home in zip(manifests, homes)]
    for info, manifest, files in zip(infos, manifests, inputs.groups):
        if info is None:
            continue
        shapes = sample_shapes(manifest) if manifest is not None else {}
        expected = {f: nbytes(shapes[sample_stem(f)], info.tensor.dtype) if sample_stem(f) in shapes
                    else info.tensor.nbytes for f in files}
        wrong = [f for f in files if expected[f] is not None and file_nbytes(f) != expected[f]]
        if wrong:
            source = "manifest.json" if manifest is not None else f"{homes[0] / 'manifest.json'} ({info.tensor.name})"
            per = "for its image" if info.tensor.nbytes is None else "per image"
            raise InferError(f"{wrong[0].name} is {file_nbytes(wrong[0]):,} bytes but {source} says "
                             f"{expected[wrong[0]]:,} {per} ({len(wrong)} file(s) differ)")
    warnings = manifest_coverage(manifests[0], inputs.first) if manifests[0] is not None else []
    return manifests, infos, warnings


def sample_shapes(manifest) -> dict[str, tuple[int, ...]]:
    """stem -> the tensor shape of its image file (the same for every image unless the manifest is in the
    exact mode)."""
    return {record.stem: manifest.image_shape(record) for record in manifest.images}


def check_inputs(meta: TensorSpec, files: Sequence[Path], info) -> list[str]:
    """Compare what the files hold (a manifest's InputInfo or SideInput, or None) and their sizes with the
    model input before running. Returns warnings."""
    warnings: list[str] = []
    sample = meta.nbytes
    if info is not None:
        if info.tensor.dynamic and meta.nbytes is not None:
            raise InferError(f"the input files are in the exact mode (each image padded to its own size; "
                             f"manifest.json) but the model input {meta.describe()} has a fixed canvas: run a model "
                             "exported with --canvas exact, or preprocess with the model's canvas (--canvas HxW)")
        if info.tensor.dtype != meta.dtype:
            raise InferError(
                f"the input files are {info.tensor.dtype} (manifest.json) but the model input '{meta.name}' expects "
                f"{meta.dtype}: preprocess again with --dtype {meta.dtype}"
                + (", or build an om with AIPP for uint8 input" if info.tensor.dtype == "uint8" else ""))
        want = meta.shape
        held = info.tensor.shape
        if len(held) != len(want) or any(w is not None and w != h for w, h in zip(want, held)):
            raise InferError(
                f"the input files hold {info.layout} {'x'.join(map(str, held))} (manifest.json) but the model "
                f"input '{meta.name}' is {'x'.join('?' if d is None else str(d) for d in want)} per sample")
        if info.tensor.name != meta.name:
            warnings.append(f"manifest input name '{info.tensor.name}' differs from the model input '{meta.name}'")
    else:
        warnings.append("no manifest.json beside the inputs: assuming raw files in the model input dtype and shape "
                        f"({meta.describe()}), as ais_bench does; dtype/shape cannot be checked")
    if sample is not None:
        size = file_nbytes(files[0])
        if size != sample:
            hint = ""
            for other in ("float32", "float16", "uint8"):
                if other != meta.dtype and size * np.dtype(meta.dtype).itemsize == sample * np.dtype(other).itemsize:
                    hint = f" (that is the size of {other} data: were the files written as {other}?)"
            raise InferError(f"{files[0].name} is {size:,} bytes but one sample of the model input "
                             f"{meta.describe()} is {sample:,} bytes{hint}")
        sizes = {file_nbytes(f) for f in files}
        if len(sizes) > 1:
            raise InferError(f"input files differ in size ({', '.join(f'{s:,}' for s in sorted(sizes)[:3])} bytes); "
                             "all must hold one sample of the model input")
    return warnings


def manifest_coverage(manifest, files: Sequence[Path]) -> list[str]:
    """Warn when the folder and the manifest disagree (an interrupted preprocess, stray files)."""
    listed = {r.stem for r in manifest.images}
    present = {sample_stem(f) for f in files}
    notes = []
    if listed - present:
        notes.append(f"{len(listed - present)} image(s) listed in manifest.json have no .bin file "
                     f"(e.g. {sorted(listed - present)[0]}.bin); was preprocess interrupted?")
    if present - listed:
        notes.append(f"{len(present - listed)} .bin file(s) are not in manifest.json "
                     f"(e.g. {sorted(present - listed)[0]}.bin); they are run but eval will not score them")
    return notes


# ---------------------------------------------------------------------------------------------
# Output folder


def prepare_output(output: Path) -> None:
    """Fail early if `output` holds anything but earlier ais_bench-style outputs."""
    if output.exists():
        if not output.is_dir():
            raise InferError(f"output {output} exists and is not a directory")
        foreign = [p.name for p in output.iterdir() if not is_result(p)]
        if foreign:
            raise InferError(f"output folder {output} holds other files ({foreign[0]}, ...); "
                             "choose an empty or new folder")
    ensure_writable_dir(output.parent)


# ---------------------------------------------------------------------------------------------
# The driver


def run_infer(model: str | Path, input: str | Path | Sequence, output: str | Path, *,
              backend: str | Backend = "auto", options: BackendOptions | Mapping[str, BackendOptions] | None = None,
              batchsize: int | None = None, device: str | int = "0", warmup: int = 1, loop: int = 1,
              progress: bool = True, prog: str = "ssdconvert", echo: Callable[[str], None] | None = None) -> InferResult:
    """Run `model` over the input files and write the ais_bench layout to `output`
    (the summary goes to `<output parent>/<output name>_summary.json`). `backend`: a name, `auto` or a
    Backend; `options`: its own options (Backend.configured; e.g. `AscendOptions(dym_batch=True)`)."""
    target, job = infer_job(model, input, output, backend=backend, options=options, batchsize=batchsize, device=device,
                            warmup=warmup, loop=loop, progress=progress, prog=prog, echo=echo)
    tool = target.folder_tool(job)
    return tool(job) if tool is not None else _infer_with_runner(target, job)


def infer_job(model: str | Path, input: str | Path | Sequence, output: str | Path, *,
              backend: str | Backend = "auto", options: BackendOptions | Mapping[str, BackendOptions] | None = None,
              batchsize: int | None = None, device: str | int = "0", warmup: int = 1, loop: int = 1,
              progress: bool = True, prog: str = "ssdconvert",
              echo: Callable[[str], None] | None = None) -> tuple[Backend, InferJob]:
    """Check the model, inputs and output of an infer run and describe it (however it is then run): the
    configured backend and the job."""
    model, output = Path(model), Path(output)
    if not model.exists():
        raise InferError(f"model not found: {model}")
    if loop < 1 or warmup < 0 or (batchsize is not None and batchsize < 1):
        raise InferError("--loop and --batchsize must be >= 1 and --warmup >= 0")
    target = backends.for_model(model, backend).configured(options)
    target.check_model(model)
    devices = target.devices(device)
    _refuse_json(input)
    inputs = with_side_inputs(list_inputs(input))
    check_unique_stems(inputs.first)
    prepare_output(output)
    manifests, infos, warnings = check_manifests(inputs)
    agree([model_claim(model), manifest_claim(manifests[0], inputs.home)], REMEDY)
    if not target.dynamic_image_size:  # a device backend: refuse the exact mode's folder or model
        target.check_image_size(bool(infos and infos[0] is not None and infos[0].tensor.dynamic),
                                f"the input folder {inputs.home}")
        target.check_image_size(target.has_dynamic_image_size(model), f"the model {model.name}")
    return target, InferJob(model, inputs, output, batchsize=batchsize, devices=tuple(devices), warmup=warmup,
                            loop=loop, progress=progress, prog=prog, echo=echo, warnings=warnings,
                            manifests=tuple(manifests), infos=tuple(infos))


def _refuse_json(input: str | Path | Sequence) -> None:
    """A manifest (or any .json) given as --input is not an input tensor: ask for the folder it describes."""
    items = [Path(s) for s in str(input).split(",") if s] if isinstance(input, (str, Path)) else map(Path, input)
    found = next((p for p in items if p.suffix.lower() == ".json" and p.is_file()), None)
    if found is not None:
        raise InferError(f"--input {found} is a JSON file, not input tensors: give the folder of .bin files it "
                         f"describes ({found.parent})")


def _infer_with_runner(target: Backend, job: InferJob) -> InferResult:
    load_started = time.perf_counter()
    runner = target.make_runner(job.model, RunOptions(batch=job.batchsize, device=job.devices[0]))
    with runner:
        load_seconds = time.perf_counter() - load_started
        agree([outputs_claim(job.model, [o.name for o in runner.outputs]),
               manifest_claim(job.manifests[0] if job.manifests else None, job.inputs.home)], REMEDY)
        groups = job.inputs.for_model([m.name for m in runner.inputs], job.model.name)
        warnings = list(job.warnings) + runner.notes
        for meta, files, info in zip(runner.inputs, groups, job.infos or [None] * len(groups)):
            warnings += check_inputs(meta, files, info)
        shapes = _exact_mode_shapes(runner, job)
        batch = 1 if shapes is not None else _choose_batch(runner, job.batchsize, warnings)
        argv = [job.prog, "infer", "--model", str(job.model.resolve()), "--input", job.inputs.argument(),
                "--output", str(job.output.resolve()), "--backend", target.name, "--batchsize", str(batch),
                "--device", job.devices[0], "--warmup", str(job.warmup), "--loop", str(job.loop)]
        result = _run_batches(runner, groups, job.output, batch=batch, warmup=job.warmup, loop=job.loop,
                              progress=job.progress, argv=argv, shapes=shapes)
    result.load_seconds = load_seconds
    result.warnings = warnings
    return result


def _exact_mode_shapes(runner: Runner, job: InferJob) -> dict[str, tuple[int, ...]] | None:
    """stem -> its image file's shape for a model whose image height and width are dynamic (the exact mode:
    batch 1, each sample at its own shape); None for a model with fixed input shapes."""
    if all(m.nbytes is not None for m in runner.inputs):
        return None
    if job.batchsize not in (None, 1):
        raise InferError(f"{runner.model.name} is in the exact mode (each image at its own height and width): it runs "
                         f"batch 1, not --batchsize {job.batchsize}; a batch needs a fixed canvas (--canvas HxW)")
    manifest = job.manifests[0] if job.manifests else None
    if manifest is None:
        raise InferError(f"{runner.model.name} takes each image at its own height and width (exact mode), which "
                         f"come from the preprocess manifest: {job.inputs.home} has no manifest.json")
    return sample_shapes(manifest)


def _choose_batch(runner: Runner, batchsize: int | None, warnings: list[str]) -> int:
    static = runner.static_batch
    if static is None:
        return batchsize or 1
    if batchsize and batchsize != static:
        warnings.append(f"--batchsize {batchsize} ignored: {runner.model.name} has a static batch of {static}")
    return static


class _BatchBuffer:
    """One model input's reusable batch buffer."""

    def __init__(self, meta: TensorSpec, batch: int):
        if meta.dynamic:
            raise InferError(f"model input {meta.describe()} has dynamic non-batch dimensions; export it with a "
                             "fixed image size")
        self.meta, self.batch = meta, batch
        self.dtype, self.shape = np.dtype(meta.dtype), meta.shape
        self.sample_nbytes = meta.nbytes
        self.buffer = np.empty(batch * self.sample_nbytes, dtype=np.uint8)

    def read(self, chunk: Sequence[Path]) -> np.ndarray:
        return _read_batch(chunk, self.buffer, self.batch, self.sample_nbytes, self.dtype, self.shape)


class _SampleReader:
    """One model input with dynamic non-batch dims, batch 1: each file read at its own shape."""

    def __init__(self, meta: TensorSpec, shapes: dict[str, tuple[int, ...]]):
        self.meta, self.shapes, self.dtype = meta, shapes, np.dtype(meta.dtype)

    def read(self, chunk: Sequence[Path]) -> np.ndarray:
        (path,) = chunk
        shape = self.shapes.get(sample_stem(path))
        if shape is None:
            raise InferError(f"{path.name} is not in manifest.json, so its shape is unknown (exact mode)")
        array = np.fromfile(path, dtype=self.dtype) if path.suffix.lower() != ".npy" else np.load(path).reshape(-1)
        if array.size != int(np.prod(shape)):
            raise InferError(f"{path.name} holds {array.size:,} values, not {'x'.join(map(str, shape))} "
                             "(manifest.json)")
        return array.reshape(1, *shape)


def _run_batches(runner: Runner, groups: Sequence[Sequence[Path]], output: Path, *, batch: int, warmup: int,
                 loop: int, progress: bool, argv: list[str], shapes: dict[str, tuple[int, ...]] | None = None,
                 ) -> InferResult:
    """Run every batch into a resumable work folder (ssdconvert/partial.py), then publish it and the summary.
    `shapes`: each image file's shape, for inputs with dynamic non-batch dims (exact mode, batch 1)."""
    from tqdm import tqdm

    buffers = [_SampleReader(meta, shapes) if shapes is not None and meta.nbytes is None
               else _BatchBuffer(meta, batch) for meta in runner.inputs]
    files = groups[0]
    starts = range(0, len(files), batch)
    padded = len(starts) * batch - len(files)

    def feeds_for(start: int) -> dict[str, np.ndarray]:
        return {b.meta.name: b.read(group[start:start + batch]) for b, group in zip(buffers, groups)}

    with partial_output(output, _settings(runner, argv, groups, batch)) as work:
        todo = [k for k in range(len(starts)) if not work.finished(k)]
        ran = sum(len(files[starts[k]:starts[k] + batch]) for k in todo)
        warmed = False
        started = time.perf_counter()
        try:
            with tqdm(total=len(files), initial=len(files) - ran, unit="img", desc=f"{runner.name} bs{batch}",
                      disable=not progress, file=sys.stderr) as bar:
                for k in todo:
                    feeds = feeds_for(starts[k])
                    if not warmed:
                        for _ in range(warmup):
                            runner.infer(feeds)
                        runner.reset_timing()
                        warmed = True
                    calls = len(runner.compute_ms)
                    for _ in range(loop):
                        outputs = list(runner.infer(feeds).values())
                    _check_batch_axis(outputs, batch)
                    chunk = files[starts[k]:starts[k] + batch]
                    work.write([sample_stem(f) for f in chunk], outputs)
                    work.finish_batch(k, runner.compute_ms[calls:])
                    bar.update(len(chunk))
        except BaseException as exc:
            raise _stopped(exc, work, len(starts)) from None
        end_to_end = time.perf_counter() - started
        filesinfo = _filesinfo(files, groups, output, starts, batch, len(runner.outputs))
        compute_list = [ms for k in range(len(starts)) for ms in work.done[k]]
        work.publish()
    figures = _RunFigures(files=len(files), runs=len(starts), padded=padded, resumed=len(starts) - len(todo), ran=ran,
                          end_to_end=end_to_end, compute_ms=compute_list)
    return _write_summary(runner, output, argv, batch, loop, filesinfo, figures)


def _filesinfo(files: Sequence[Path], groups: Sequence[Sequence[Path]], output: Path, starts: range, batch: int,
               outputs: int) -> dict[str, dict]:
    """ais_bench's `filesinfo`, as io_oprations.py save_tensors_to_file writes it (Ascend/tools 2023-06, sync-ait):
    keyed by sample id (batch index x files per inference + position; padding slots have none), each sample's
    input file of every model input and its output files."""
    filesinfo: dict[str, dict] = {}
    for k, start in enumerate(starts):
        for j, f in enumerate(files[start:start + batch]):
            filesinfo[str(k * batch + j)] = {"infiles": [str(group[start + j]) for group in groups],
                                             "outfiles": [str(output / result_name(sample_stem(f), i))
                                                          for i in range(outputs)]}
    return filesinfo


@dataclass(frozen=True)
class _RunFigures:
    """What a run did: counts, and every compute time of the batches (kept ones included)."""

    files: int
    runs: int
    padded: int
    resumed: int  # batches an interrupted run had finished
    ran: int  # files this invocation ran
    end_to_end: float
    compute_ms: list[float]


def _write_summary(runner: Runner, output: Path, argv: list[str], batch: int, loop: int, filesinfo: dict,
                   run: _RunFigures) -> InferResult:
    """Write `<output>_summary.json` with ais_bench's keys (and ours under "ssdconvert"); the result record."""
    compute = stats_ms(run.compute_ms)
    throughput = 1000.0 * batch / compute["mean"] if compute["mean"] > 0 else 0.0
    zero = stats_ms([0.0] * len(run.compute_ms))  # CPU runtimes: no host<->device copies
    summary_file = summary_path(output)
    versions = runner.versions()
    summary = {
        "filesinfo": filesinfo,
        "args": argv,
        "NPU_compute_time": compute,
        "H2D_latency": zero,
        "D2H_latency": zero,
        "throughput": throughput,
        "npu_compute_time_list": run.compute_ms,
        "pid": os.getpid(),
        "ssdconvert": {
            "backend": runner.name,
            "versions": versions,
            "model": str(runner.model.resolve()),
            "input": argv[argv.index("--input") + 1],
            "batchsize": batch,
            "files": run.files,
            "runs": run.runs,
            "loop": loop,
            "padded_slots": run.padded,
            "resumed_batches": run.resumed,
            "timing": TIMING_NOTE,
            "H2D_D2H": "0: the runtime runs on the host CPU, there are no device copies",
            "end_to_end_seconds": run.end_to_end,
            "end_to_end_throughput": run.ran / run.end_to_end if run.end_to_end > 0 else 0.0,
            "end_to_end_definition": "real images / wall time of reading inputs + inference + writing outputs "
                                     "(after model load and warm-up; only the batches run by this invocation)",
        },
    }
    write_json(summary_file, summary)
    return InferResult(runner.name, runner.model, output, summary_file, run.files, batch, run.runs, run.padded,
                       compute, throughput, run.end_to_end, versions=versions, resumed_batches=run.resumed,
                       ran_files=run.ran)


def _settings(runner: Runner, argv: list[str], groups: Sequence[Sequence[Path]], batch: int) -> dict:
    """What the files of an interrupted run must have been made with to be kept."""
    stat = runner.model.stat()
    return {"model": str(runner.model.resolve()), "model_size": stat.st_size, "model_mtime_ns": stat.st_mtime_ns,
            "backend": runner.name, "batch": batch, "input": argv[argv.index("--input") + 1],
            "files": [[_identity(f) for f in group] for group in groups]}


def _identity(path: Path) -> list:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def _check_batch_axis(outputs: Sequence[np.ndarray], batch: int) -> None:
    for i, array in enumerate(outputs):
        if array.shape[0] != batch:
            raise InferError(f"output {i} has shape {array.shape}; cannot split it into {batch} samples along axis 0")


def _stopped(exc: BaseException, work, batches: int) -> BaseException:
    """Any error after the first batch: keep what is finished and say how to resume."""
    if isinstance(exc, InferError) and not work.done:
        return exc
    if isinstance(exc, KeyboardInterrupt):
        reason = "interrupted"
    elif isinstance(exc, OSError):
        reason = f"cannot write {Path(exc.filename).name if exc.filename else 'an output'}: {exc.strerror or exc}"
    else:
        reason = str(exc) or type(exc).__name__
    return InferError(f"{reason}; {len(work.done)} of {batches} batches are finished and kept in {work.folder}: "
                      "run the same command again to resume")


def _read_batch(chunk: Sequence[Path], buffer: np.ndarray, batch: int, sample_nbytes: int, dtype: np.dtype,
                shape: tuple[int, ...]) -> np.ndarray:
    """Concatenate the chunk's raw files into `buffer`; pad with copies of the chunk's first file."""
    view = memoryview(buffer)
    for slot, path in enumerate(chunk):
        piece = view[slot * sample_nbytes:(slot + 1) * sample_nbytes]
        if path.suffix.lower() == ".npy":
            piece[:] = np.ascontiguousarray(np.load(path)).view(np.uint8).reshape(-1)
        else:
            with open(path, "rb") as f:
                got = f.readinto(piece)
            if got != sample_nbytes:
                raise InferError(f"{path.name}: read {got:,} of {sample_nbytes:,} bytes")
    for slot in range(len(chunk), batch):
        buffer[slot * sample_nbytes:(slot + 1) * sample_nbytes] = buffer[:sample_nbytes]
    return buffer.view(dtype).reshape(batch, *shape)
