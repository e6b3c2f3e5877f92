"""The ais_bench input layout every runner reads, and the job `infer` hands a backend.

Inputs (Ascend/tools ais-bench_workload/tool/ais_bench: `ais_bench/infer/io_oprations.py`,
`utils.py`): `--input` is a folder, one folder per model input (`dir_a,dir_b`, in the model's input
order), or comma-separated files (single-input models). Each folder's *.bin, *.BIN, *.npy and *.NPY
files (no other spelling) are natural-sorted (digit runs as numbers, case ignored: img2 < IMG10); the
i-th file of every folder together make sample i. ais_bench pairs them by that position alone; here
their stems (stageio.results.sample_stem: the name cut at the first dot) must also agree, so a missing
or extra file is an error, not a silent shift.

Outputs follow the results layout (stageio.results): `<output>/<stem>_<i>.bin`, raw output i of
sample <stem> (the stem of its input-0 file), nothing for padding slots, and `<output>_summary.json`
beside the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ssdconvert.errors import SsdConvertError
from stageio.results import result_name, sample_stem

INPUT_SUFFIXES = (".bin", ".BIN", ".npy", ".NPY")  # utils.py get_fileslist_from_dir takes these four spellings only


class InferError(SsdConvertError):
    """Inputs, model and options do not fit together."""


def natural_key(name: str) -> list:
    """Sort key comparing digit runs numerically and the rest lower-cased (img2 < IMG10), as ais_bench's
    utils.py natural_sort does (Ascend/tools 2023-06 and sync-ait); ties keep their plain sorted order."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class InputSet:
    """The files of `--input`: one list per model input (folders), or one list of files."""

    groups: tuple[tuple[Path, ...], ...]
    folders: tuple[Path, ...] = ()  # the folders given; empty when files were given

    @property
    def first(self) -> tuple[Path, ...]:
        """The files of model input 0: they name the outputs."""
        return self.groups[0]

    @property
    def home(self) -> Path:
        """Where input 0's manifest.json would be: its folder (or the folder of its first file)."""
        return self.folders[0] if self.folders else self.first[0].parent

    def argument(self) -> str:
        """What to record as `--input` (absolute: eval finds the manifest through it)."""
        return ",".join(str(f.resolve()) for f in (self.folders or (self.home,)))

    def for_model(self, input_names: Sequence[str], model_name: str) -> tuple[tuple[Path, ...], ...]:
        """The files of each model input, checked to line up (count, and stem at each position)."""
        if len(self.groups) != len(input_names):
            given = f"{len(self.folders)} folder(s)" if self.folders else "a list of files"
            raise InferError(f"{model_name} has {len(input_names)} input(s) ({', '.join(input_names)}); --input gives "
                             f"{given}: give one folder per model input, in input order (dir_a,dir_b)")
        return self.groups


def list_inputs(input: str | Path | Sequence[str | Path]) -> InputSet:
    """Read `--input`: a folder, comma-separated folders (one per model input), or comma-separated files."""
    if isinstance(input, (str, Path)):
        items = [Path(input)] if Path(input).is_dir() else [Path(s) for s in str(input).split(",") if s]
    else:
        items = [Path(s) for s in input]
    if not items:
        raise InferError("no --input given")
    if items[0].is_dir():
        not_dirs = [str(p) for p in items if not p.is_dir()]
        if not_dirs:
            raise InferError(f"--input mixes folders and other paths ({not_dirs[0]}); give one folder per model "
                             "input, or files")
        groups = tuple(_folder_files(folder) for folder in items)
        inputs = InputSet(groups, tuple(items))
        _check_pairs(inputs)
        return inputs
    missing = [str(p) for p in items if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InferError(f"input not found: {missing[0]}{more}")
    return InputSet((tuple(items),))


def _folder_files(folder: Path) -> tuple[Path, ...]:
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.name.endswith(INPUT_SUFFIXES)),
                   key=lambda p: p.name)
    files.sort(key=lambda p: natural_key(p.name))
    if not files:
        raise InferError(f"no .bin or .npy files in {folder}")
    return tuple(files)


def _check_pairs(inputs: InputSet) -> None:
    """Sample i is the i-th file of every folder: counts and stems must line up."""
    first = inputs.groups[0]
    for folder, files in zip(inputs.folders[1:], inputs.groups[1:]):
        for position, (a, b) in enumerate(zip(first, files)):
            if sample_stem(a) != sample_stem(b):
                raise InferError(f"sample {position} pairs {a.name} ({inputs.folders[0]}) with {b.name} ({folder}): "
                                 "the i-th files of the input folders (natural-sorted) go together, so their names "
                                 "must agree; is a file missing in one folder?")
        if len(files) != len(first):
            raise InferError(f"{folder} has {len(files)} input files but {inputs.folders[0]} has {len(first)}: every "
                             "input folder needs one file per sample")


def check_unique_stems(files: Sequence[Path]) -> None:
    seen: dict[str, Path] = {}
    for f in files:
        stem = sample_stem(f)
        if stem in seen:
            raise InferError(f"{seen[stem].name} and {f.name} would both write {result_name(stem, 0)} (ais_bench cuts "
                             "names at the first dot); make the names unique before the first dot")
        seen[stem] = f


def summary_lines(compute: dict, batch: float, throughput: float) -> list[str]:
    """The ais_bench console block, so scripts that parse ais_bench's stdout read ours too."""
    return [
        "[INFO] -----------------Performance Summary------------------",
        f"[INFO] NPU_compute_time (ms): min = {compute['min']}, max = {compute['max']}, mean = {compute['mean']}, "
        f"median = {compute['median']}, percentile(99%) = {compute['percentile(99%)']}",
        f"[INFO] throughput 1000*batchsize.mean({batch})/NPU_compute_time.mean({compute['mean']}): {throughput}",
        "[INFO] ------------------------------------------------------",
    ]


@dataclass
class InferJob:
    """One `infer` run as a backend receives it: checked inputs, a prepared output folder, options."""

    model: Path
    inputs: InputSet
    output: Path
    batchsize: int | None = None
    devices: tuple[str, ...] = ("0",)
    warmup: int = 1
    loop: int = 1
    progress: bool = True
    prog: str = "ssdconvert"
    echo: Callable[[str], None] | None = None
    warnings: list[str] = field(default_factory=list)
    manifests: tuple = ()  # each input folder's manifest.json (None where there is none)
    infos: tuple = ()  # what each folder's files hold: InputInfo / SideInput from a manifest, or None


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
    device_folders: list[Path] = field(default_factory=list)  # a multi-device run's per-device folders
    resumed_batches: int = 0  # batches an interrupted run had finished, kept
    ran_files: int | None = None  # files this invocation ran (None: all of them)

    @property
    def end_to_end_throughput(self) -> float:
        ran = self.files if self.ran_files is None else self.ran_files
        return ran / self.end_to_end_seconds if self.end_to_end_seconds > 0 else 0.0

    def console_lines(self) -> list[str]:
        return summary_lines(self.compute_ms, float(self.batch), self.throughput)
