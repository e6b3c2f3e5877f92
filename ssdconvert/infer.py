"""`ssdconvert infer`: run a model over a folder of input tensors and write the ais_bench layout.

Every backend produces exactly what `python3 -m ais_bench --output P --output_dirname D` does:

    P/D/<stem>_<i>.bin        raw output i of the sample read from <stem>.bin (stem = name cut at
                              the FIRST dot); nothing for padding slots
    P/D_summary.json          filesinfo, args, NPU_compute_time / H2D_latency / D2H_latency stats
                              (min, max, mean, median, percentile(99%), count; ms), throughput,
                              npu_compute_time_list, pid

Batching follows ais_bench: natural-sorted input files, as many consecutive files per inference
as fill the model input, the last batch padded with copies of its first file. Compute time is
the runtime call only (no file I/O), throughput = 1000 * batch / mean compute ms (padding
counted, as ais_bench does). End-to-end time (reading, inference, writing) is reported apart.

.om models run through the real `python3 -m ais_bench` (the tool writes the layout itself);
.onnx and .xml run in-process through the ONNX Runtime / OpenVINO runners.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError
from ssdconvert.fileio import ensure_writable_dir, write_json
from ssdconvert.runners import backend_for, make_runner
from ssdconvert.runners.base import Runner, TensorMeta


INPUT_SUFFIXES = (".bin", ".npy")
OUTPUT_FILE_RE = re.compile(r"^.+_\d+\.(bin|npy|txt)$")
TIMING_NOTE = ("NPU_compute_time is the runtime call only (no file I/O, no batching in Python); "
               "throughput = 1000 * batchsize / mean compute ms, padding slots counted (ais_bench's definition)")


class InferError(SsdConvertError):
    """Inputs, model and options do not fit together."""


# ---------------------------------------------------------------------------------------------
# Input files


def natural_key(name: str) -> list:
    """Sort key comparing digit runs numerically (img2 < img10), as ais_bench does."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def output_stem(path: str | Path) -> str:
    """ais_bench names outputs after the input file's base name cut at the FIRST dot."""
    return Path(path).name.split(".", 1)[0]


def list_inputs(input: str | Path | Sequence[str | Path]) -> list[Path]:
    """The input files: a folder (its *.bin/*.npy, natural-sorted) or comma-separated files."""
    if isinstance(input, (str, Path)) and Path(input).is_dir():
        files = [p for p in Path(input).iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES]
        files.sort(key=lambda p: natural_key(p.name))
        if not files:
            raise InferError(f"no .bin or .npy files in {input}")
        return files
    items = [Path(s) for s in str(input).split(",")] if isinstance(input, (str, Path)) else [Path(s) for s in input]
    missing = [str(p) for p in items if not p.is_file()]
    if missing:
        raise InferError(f"input not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return items


def check_unique_stems(files: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for f in files:
        stem = output_stem(f)
        if stem in seen:
            raise InferError(f"{seen[stem].name} and {f.name} would both write {stem}_0.bin (ais_bench cuts names "
                             "at the first dot); make the names unique before the first dot")
        seen[stem] = f


def file_nbytes(path: Path) -> int:
    if path.suffix.lower() == ".npy":
        return int(np.load(path, mmap_mode="r").nbytes)
    return path.stat().st_size


def input_folder(files: Sequence[Path], input: str | Path | Sequence) -> Path:
    if isinstance(input, (str, Path)) and Path(input).is_dir():
        return Path(input)
    return files[0].parent


def load_manifest_for(folder: Path):
    """The preprocess manifest beside the inputs, or None (with the reason logged)."""
    from preprocess.manifest import FILE_NAME, read_manifest

    if not (folder / FILE_NAME).is_file():
        return None
    return read_manifest(folder)


def check_inputs(meta: TensorMeta, files: Sequence[Path], manifest) -> list[str]:
    """Compare manifest / file sizes with the model input before running. Returns warnings."""
    warnings: list[str] = []
    sample = meta.sample_nbytes()
    if manifest is not None:
        info = manifest.input
        if info.dtype != meta.dtype:
            raise InferError(
                f"the input files are {info.dtype} (manifest.json) but the model input '{meta.name}' expects "
                f"{meta.dtype}: preprocess again with --dtype {meta.dtype}"
                + (", or build an om with AIPP for uint8 input" if info.dtype == "uint8" else ""))
        want = tuple(meta.sample_shape)
        if len(info.shape) != len(want) or any(w is not None and w != h for w, h in zip(want, info.shape)):
            raise InferError(
                f"the input files hold {info.layout} {'x'.join(map(str, info.shape))} (manifest.json) but the model "
                f"input '{meta.name}' is {'x'.join('?' if d is None else str(d) for d in want)} per sample")
        if info.name != meta.name:
            warnings.append(f"manifest input name '{info.name}' differs from the model input '{meta.name}'")
        wrong = [f for f in files if file_nbytes(f) != info.nbytes]
        if wrong:
            raise InferError(f"{wrong[0].name} is {file_nbytes(wrong[0]):,} bytes but manifest.json says "
                             f"{info.nbytes:,} per image ({len(wrong)} file(s) differ)")
        warnings += manifest_coverage(manifest, files)
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
    present = {output_stem(f) for f in files}
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
        foreign = [p.name for p in output.iterdir() if not OUTPUT_FILE_RE.match(p.name)]
        if foreign:
            raise InferError(f"output folder {output} holds other files ({foreign[0]}, ...); "
                             "choose an empty or new folder")
    ensure_writable_dir(output.parent)


def replace_dir(tmp: Path, target: Path) -> None:
    """Move a finished temporary output folder onto `target` (old outputs removed)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


# ---------------------------------------------------------------------------------------------
# Stats


def stats_ms(values: Sequence[float]) -> dict[str, float]:
    """ais_bench's stat block: min, max, mean, median, percentile(99%), count (ms)."""
    if not len(values):
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0, "count": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "median": float(np.median(a)),
            "percentile(99%)": float(np.percentile(a, 99)), "count": int(a.size)}


def summary_lines(compute: dict, batch: float, throughput: float) -> list[str]:
    """The ais_bench console block, so scripts that parse ais_bench's stdout read ours too."""
    return [
        "[INFO] -----------------Performance Summary------------------",
        f"[INFO] NPU_compute_time (ms): min = {compute['min']}, max = {compute['max']}, mean = {compute['mean']}, "
        f"median = {compute['median']}, percentile(99%) = {compute['percentile(99%)']}",
        f"[INFO] throughput 1000*batchsize.mean({batch})/NPU_compute_time.mean({compute['mean']}): {throughput}",
        "[INFO] ------------------------------------------------------",
    ]


# ---------------------------------------------------------------------------------------------
# The driver


@dataclass
class InferResult:
    backend: str
    model: Path
    output_dir: Path
    summary_path: Path
    files: int
    batch: int
    runs: int
    padded: int
    compute_ms: dict[str, float]
    throughput: float  # samples/s, compute only (ais_bench definition)
    end_to_end_seconds: float  # read + infer + write, after model load and warm-up
    load_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    log_path: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def end_to_end_throughput(self) -> float:
        return self.files / self.end_to_end_seconds if self.end_to_end_seconds > 0 else 0.0

    def console_lines(self) -> list[str]:
        return summary_lines(self.compute_ms, float(self.batch), self.throughput)


def run_infer(model: str | Path, input: str | Path | Sequence, output: str | Path, *, backend: str = "auto",
              batchsize: int | None = None, device: str | int = 0, warmup: int = 1, loop: int = 1,
              dym_batch: bool = False, progress: bool = True, prog: str = "ssdconvert",
              echo: Callable[[str], None] | None = None) -> InferResult:
    """Run `model` over the input files and write the ais_bench layout to `output`
    (the summary goes to `<output parent>/<output name>_summary.json`)."""
    model, output = Path(model), Path(output)
    if not model.exists():
        raise InferError(f"model not found: {model}")
    if loop < 1 or warmup < 0 or (batchsize is not None and batchsize < 1):
        raise InferError("--loop and --batchsize must be >= 1 and --warmup >= 0")
    backend = backend_for(model, backend)
    files = list_inputs(input)
    folder = input_folder(files, input)
    check_unique_stems(files)
    prepare_output(output)
    if backend == "ais_bench":
        if model.suffix.lower() != ".om":
            raise InferError(f"ais_bench runs .om models, not '{model.name}' (build one with `ssdconvert atc`)")
        return _infer_ais_bench_cli(model, files, folder, input, output, batchsize=batchsize, device=device,
                                    warmup=warmup, loop=loop, dym_batch=dym_batch, echo=echo)

    manifest = load_manifest_for(folder)
    load_started = time.perf_counter()
    runner = make_runner(model, backend, batch=batchsize, device=device)
    with runner:
        load_seconds = time.perf_counter() - load_started
        if len(runner.inputs) != 1:
            raise InferError(f"{model.name} has {len(runner.inputs)} inputs; infer supports single-input models")
        meta = runner.inputs[0]
        warnings = check_inputs(meta, files, manifest)
        batch = _choose_batch(runner, batchsize, warnings)
        argv = [prog, "infer", "--model", str(model.resolve()), "--input", str(folder.resolve()),
                "--output", str(output.resolve()), "--backend", backend, "--batchsize", str(batch),
                "--device", str(device), "--warmup", str(warmup), "--loop", str(loop)]
        result = _run_batches(runner, meta, files, output, batch=batch, warmup=warmup, loop=loop,
                              progress=progress, argv=argv)
    result.load_seconds = load_seconds
    result.warnings = warnings
    return result


def _choose_batch(runner: Runner, batchsize: int | None, warnings: list[str]) -> int:
    static = runner.static_batch
    if static is None:
        return batchsize or 1
    if batchsize and batchsize != static:
        warnings.append(f"--batchsize {batchsize} ignored: {runner.model.name} has a static batch of {static}")
    return static


def _run_batches(runner: Runner, meta: TensorMeta, files: list[Path], output: Path, *, batch: int, warmup: int,
                 loop: int, progress: bool, argv: list[str]) -> InferResult:
    from tqdm import tqdm

    dtype = np.dtype(meta.dtype)
    sample_shape = tuple(meta.sample_shape)
    if any(d is None for d in sample_shape):  # dynamic non-batch dims: take them from the file size
        raise InferError(f"model input {meta.describe()} has dynamic non-batch dimensions; export it with a fixed "
                         "image size")
    sample_nbytes = meta.sample_nbytes()
    buffer = np.empty(batch * sample_nbytes, dtype=np.uint8)
    chunks = [files[i:i + batch] for i in range(0, len(files), batch)]
    padded = len(chunks) * batch - len(files)

    tmp = output.with_name(f".{output.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        feeds = {meta.name: _read_batch(chunks[0], buffer, batch, sample_nbytes, dtype, sample_shape)}
        for _ in range(warmup):
            runner.infer(feeds)
        runner.reset_timing()

        filesinfo: dict[str, dict] = {}
        started = time.perf_counter()
        with tqdm(total=len(files), unit="img", desc=f"{runner.name} bs{batch}", disable=not progress,
                  file=sys.stderr) as bar:
            for run, chunk in enumerate(chunks):
                feeds = {meta.name: _read_batch(chunk, buffer, batch, sample_nbytes, dtype, sample_shape)}
                for _ in range(loop):
                    outputs = runner.infer(feeds)
                outfiles = _write_outputs(tmp, output, chunk, list(outputs.values()), batch)
                filesinfo[str(run)] = {"infiles": [str(f) for f in chunk], "outfiles": outfiles}
                bar.update(len(chunk))
        replace_dir(tmp, output)
        end_to_end = time.perf_counter() - started
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    compute_list = list(runner.compute_ms)
    compute = stats_ms(compute_list)
    throughput = 1000.0 * batch / compute["mean"] if compute["mean"] > 0 else 0.0
    zero = stats_ms([0.0] * len(compute_list))  # CPU runtimes: no host<->device copies
    summary_path = output.with_name(f"{output.name}_summary.json")
    versions = runner.versions()
    summary = {
        "filesinfo": filesinfo,
        "args": argv,
        "NPU_compute_time": compute,
        "H2D_latency": zero,
        "D2H_latency": zero,
        "throughput": throughput,
        "npu_compute_time_list": compute_list,
        "pid": os.getpid(),
        "ssdconvert": {
            "backend": runner.name,
            "versions": versions,
            "model": str(runner.model.resolve()),
            "input": argv[argv.index("--input") + 1],
            "batchsize": batch,
            "files": len(files),
            "runs": len(chunks),
            "loop": loop,
            "padded_slots": padded,
            "timing": TIMING_NOTE,
            "H2D_D2H": "0: the runtime runs on the host CPU, there are no device copies",
            "end_to_end_seconds": end_to_end,
            "end_to_end_throughput": len(files) / end_to_end if end_to_end > 0 else 0.0,
            "end_to_end_definition": "real images / wall time of reading inputs + inference + writing outputs "
                                     "(after model load and warm-up)",
        },
    }
    write_json(summary_path, summary)
    return InferResult(runner.name, runner.model, output, summary_path, len(files), batch, len(chunks), padded,
                       compute, throughput, end_to_end, versions=versions)


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


def _write_outputs(tmp: Path, final: Path, chunk: Sequence[Path], outputs: list[np.ndarray], batch: int) -> list[str]:
    """`<stem>_<i>.bin` for every real sample of the batch; padding slots write nothing."""
    written = []
    for i, array in enumerate(outputs):
        if array.shape[0] != batch:
            raise InferError(f"output {i} has shape {array.shape}; cannot split it into {batch} samples along axis 0")
    for slot, path in enumerate(chunk):
        stem = output_stem(path)
        for i, array in enumerate(outputs):
            name = f"{stem}_{i}.bin"
            np.ascontiguousarray(array[slot]).tofile(tmp / name)
            written.append(str(final / name))
    return written


# ---------------------------------------------------------------------------------------------
# .om through the real tool


def _infer_ais_bench_cli(model: Path, files: list[Path], folder: Path, input, output: Path, *, batchsize, device,
                         warmup, loop, dym_batch, echo) -> InferResult:
    from ssdconvert.runners.ais_bench import om_gears, run_ais_bench

    warnings: list[str] = []
    gears = om_gears(model)
    if gears:
        if batchsize not in gears:
            raise InferError(f"{model.name} was built with batch gears {','.join(map(str, gears))} (its .json "
                             f"record); pass --batchsize with one of them")
        if not dym_batch:
            dym_batch = True
            warnings.append(f"{model.name} has batch gears {gears} (its .json record): running gear {batchsize} "
                            f"with --dymBatch")
    manifest = load_manifest_for(folder)
    if manifest is None:
        warnings.append("no manifest.json beside the inputs: ais_bench will take the files as raw om input data")
    else:
        wrong = [f for f in files if file_nbytes(f) != manifest.input.nbytes]
        if wrong:
            raise InferError(f"{wrong[0].name} is {file_nbytes(wrong[0]):,} bytes but manifest.json says "
                             f"{manifest.input.nbytes:,} per image")
        warnings += manifest_coverage(manifest, files)
    # ais_bench overwrites file by file; clear earlier outputs so no stale stems survive.
    if output.is_dir():
        for p in output.iterdir():
            if OUTPUT_FILE_RE.match(p.name):
                p.unlink()
    # Absolute paths: ais_bench records its argv in the summary and `eval` finds the manifest from it.
    source = (str(folder.resolve()) if isinstance(input, (str, Path)) and Path(input).is_dir()
              else [str(f.resolve()) for f in files])
    result = run_ais_bench(model.resolve(), input=source, output=output.resolve().parent, output_dirname=output.name,
                           batchsize=batchsize, dym_batch=batchsize if dym_batch else None, device=int(device),
                           warmup=warmup, loop=loop, echo=echo)
    missing = [f.name for f in files if not (output / f"{output_stem(f)}_0.bin").is_file()]
    if missing:
        raise InferError(f"ais_bench wrote no output for {missing[0]} ({len(missing)} of {len(files)} inputs missing; "
                         f"log: {result.log_path})")
    compute = result.compute_ms
    batch = int(result.console.batchsize or batchsize or 0)
    runs = int(compute.get("count", 0)) // max(loop, 1) if compute.get("count") else 0
    padded = runs * batch - len(files) if batch and runs else 0
    return InferResult("ais_bench", model, output, result.summary_path, len(files), batch, runs, max(padded, 0),
                       compute, float(result.throughput or 0.0), result.seconds, warnings=warnings,
                       log_path=result.log_path, versions={"ais_bench": "subprocess " + " ".join(result.command[:3])})
