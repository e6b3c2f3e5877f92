"""The ais_bench result layout: what every runner writes and eval reads, named by one rule.

Ascend/tools ais-bench_workload/tool/ais_bench (`ais_bench/infer/__main__.py`; `io_oprations.py`
save_tensors_to_file) writes, for the sample read from input file `<stem>.<anything>`:

    <folder>/<stem>_<i>.bin           raw output i of that sample (nothing for padding slots); ais_bench
                                      may also write .npy or .txt (--outfmt)
    <folder>_summary.json             beside the folder: timing stats and the command line

where `<stem>` is the input file's name without folders, cut at the FIRST dot (`img.jpg.bin` ->
`img`); preprocess names its `<stem>.bin` by the same rule, so a COCO file name leads to its result
files. A multi-device run (`--device 0,1,...`) writes no result files at the top of the folder but
one subfolder per device (read in Ascend/tools and sync-ait `ais_bench/infer`): `device<N>/` (older
standalone tool) or `device<N>_<i>/` (newer, i = the device's position in the --device list), each
beside its own `<subfolder>_summary.json`. stageio.reader reads the layout back.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

from stageio.files import write_atomic

RESULT_FILE = re.compile(r"^(.+)_(\d+)\.(bin|npy|txt)$")  # <stem>_<output index>.<format>
DEVICE_FOLDER = re.compile(r"^device(\d+)(?:_(\d+))?$")  # device<N> or device<N>_<position>
SUMMARY_SUFFIX = "_summary.json"


def sample_stem(name: str | PurePosixPath) -> str:
    """The stem that names a sample's files: its file name without folders, cut at the FIRST dot
    (000000397133.jpg -> 000000397133; 000000397133.jpg.bin too)."""
    return PurePosixPath(name).name.split(".", 1)[0]


def result_name(stem: str, index: int) -> str:
    """The file of output `index` of sample `stem`: `<stem>_<index>.bin`."""
    return f"{stem}_{index}.bin"


def parse_result_name(name: str) -> tuple[str, int] | None:
    """(stem, output index) of a raw result file name `<stem>_<i>.bin`; None for any other name."""
    match = RESULT_FILE.match(name)
    if match is None or match.group(3) != "bin":
        return None
    return match.group(1), int(match.group(2))


def summary_path(folder: Path) -> Path:
    """The summary json a runner writes beside its result folder: `<folder>_summary.json`."""
    return folder.parent / f"{folder.name}{SUMMARY_SUFFIX}"


def is_device_summary(path: Path) -> bool:
    """True for the summary json of a device folder of a multi-device run."""
    return path.name.endswith(SUMMARY_SUFFIX) and bool(DEVICE_FOLDER.match(path.name[:-len(SUMMARY_SUFFIX)]))


def is_result(path: Path) -> bool:
    """An ais_bench output: a result file, a device folder of a multi-device run, or its summary."""
    if path.is_dir():
        return bool(DEVICE_FOLDER.match(path.name))
    return bool(RESULT_FILE.match(path.name)) or is_device_summary(path)


def clear_results(folder: Path) -> None:
    """Remove earlier ais_bench outputs from `folder`: the tool overwrites file by file, so stale
    stems (or device folders) of another run would survive."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if is_result(p):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def write_results(folder: Path, stems: Sequence[str], outputs: Sequence[np.ndarray]) -> list[str]:
    """Write each sample's outputs into `folder`: slot k of every batched output is sample `stems[k]`
    (padding slots past the stems write nothing), output i to `<stem>_<i>.bin`, raw and crash-safe
    (stageio.files). Returns the names written, sample by sample."""
    names = []
    for slot, stem in enumerate(stems):
        for index, array in enumerate(outputs):
            name = result_name(stem, index)
            write_atomic(folder / name, array[slot])
            names.append(name)
    return names
