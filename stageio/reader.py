"""Reading the ais_bench result layout (stageio.results) back: `<stem>_<i>.bin`, one file per output.

For SSD: `<stem>_0.bin` is ploc, `<stem>_1.bin` is plabel. The outputs are TensorSpecs (one image's
shape, the model's element type). The dtype of each output is detected from the file size among the
variants of its declared type (ON_DISK): a float32 output may be float16 on disk (an FP16 model), an
int64 one int32 (device compilers narrow 64-bit integers: MagicMind's type64to32_conversion, ATC's
int32 NMS indices). Batches are handed on in the declared type. Files are read in bounded batches
on a background thread, so memory does not grow with the number of images.

The inputs of a multi-device run were split between devices in contiguous blocks, so every result
file is in exactly one device folder: a file found in two is an error (the devices ran the same
inputs, or two runs share the folder), and so is a device of the list without its folder.
"""

from __future__ import annotations

import mmap
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from stageio.errors import LayoutError
from stageio.results import DEVICE_FOLDER, parse_result_name, result_name
from stageio.tensor import TensorSpec

DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32}
ON_DISK = {"float32": ("float32", "float16"), "int64": ("int64", "int32")}  # declared type -> file variants
_SHOW = 5  # names listed in messages
READAHEAD = 4  # batches whose files the kernel is asked to start reading early
# Mapping and checking files from the page cache runs at 5-10 GB/s here, from disk below 1 GB/s.
# Asking for readahead costs ~0.1 ms per cached 3 MB file (the kernel walks its pages), ~0.4 s
# of CPU over COCO's 9904 files, for nothing when they are cached. So once the batches read
# faster than this, it is no longer asked, unless a batch reads slower: then it is asked to the end
# (a batch that readahead brought in reads fast too, so fast batches after a slow one prove nothing).
CACHED_BYTES_PER_S = 1.5e9


class Sample(Protocol):
    """What the reader needs of a sample (e.g. preprocess.manifest.ImageRecord): the stem of its files."""

    stem: str


@dataclass
class ResultFiles:
    """A scanned result directory: which samples have every output, and the outputs' dtypes on disk."""

    directory: Path
    outputs: tuple[TensorSpec, ...]
    dtypes: tuple[str, ...]
    present: list = field(default_factory=list)  # samples with every output file, in the given order
    missing: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (stem, missing output names)
    folders: tuple[Path, ...] = ()  # the device folders of a multi-device run (empty: one folder)
    folder_of: dict[str, Path] = field(default_factory=dict)  # stem -> its device folder

    def path(self, stem: str, index: int) -> Path:
        return self.folder_of.get(stem, self.directory) / result_name(stem, index)


def _listing(items: Sequence[str]) -> str:
    more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def device_folders(directory: str | Path, devices: Sequence[str] | None = None) -> list[Path] | None:
    """The per-device result folders of a multi-device run in device-list order, or None if
    `directory` holds one device's results. `devices` (the run's --device list, when known)
    must each have their folder, and no other device folder may be there."""
    directory = Path(directory)
    with os.scandir(directory) as entries:  # names first: a result folder holds ~10k files
        named = sorted((entry.name, match) for entry in entries
                       if (match := DEVICE_FOLDER.match(entry.name)) and entry.is_dir())
    found = [(directory / name, m.group(1), m.group(2)) for name, m in named]
    if not found:
        return None
    loose = sorted(p.name for p in directory.iterdir() if p.is_file() and parse_result_name(p.name))
    if loose:
        raise LayoutError(f"{directory} holds both result files ({_listing(loose)}) and device folders "
                          f"({_listing([f.name for f, _, _ in found])}); results of two runs?")
    if len({position is None for _, _, position in found}) > 1:
        raise LayoutError(f"{directory} mixes device<N> and device<N>_<i> folders "
                          f"({_listing([f.name for f, _, _ in found])}): results of two ais_bench versions?")
    if found[0][2] is not None:  # newer naming: device<N>_<position in the --device list>
        folders = _by_position(directory, found, devices)
        names = {folder.name for folder in folders}
        expected = [f"device{d}_{p}" for p, d in enumerate(devices)] if devices is not None else sorted(names)
    else:  # older naming: device<N>
        folders = sorted((f for f, _, _ in found), key=lambda f: int(f.name[len("device"):]))
        names = {folder.name for folder in folders}
        expected = [f"device{d}" for d in devices] if devices is not None else sorted(names)
    absent = [name for name in expected if name not in names]
    if absent:
        raise LayoutError(f"{directory} has no folder {_listing(absent)} for a device of the run's --device "
                          f"list {','.join(devices or [])}")
    stray = sorted(names - set(expected))
    if stray:
        raise LayoutError(f"{directory} holds {_listing(stray)}, which is not a device of the run's --device "
                          f"list {','.join(devices or [])} (left over from an earlier run?)")
    return [directory / name for name in expected] if devices is not None else folders


def _by_position(directory: Path, found: list[tuple[Path, str, str]], devices: Sequence[str] | None) -> list[Path]:
    """The device<N>_<i> folders in position order: one per position, none missing."""
    by_position: dict[int, list[Path]] = {}
    for folder, _, position in found:
        by_position.setdefault(int(position), []).append(folder)
    doubled = next((p for p, folders in sorted(by_position.items()) if len(folders) > 1), None)
    if doubled is not None:
        raise LayoutError(f"{directory} has two folders for device position {doubled} "
                          f"({_listing([f.name for f in by_position[doubled]])}): results of two runs?")
    count = len(devices) if devices is not None else max(by_position) + 1
    gaps = [str(p) for p in range(count) if p not in by_position]
    if gaps:
        raise LayoutError(f"{directory} has no folder for device position(s) {_listing(gaps)} of "
                          f"{count} (a device of the run wrote nothing, or the folder was moved)")
    return [by_position[p][0] for p in sorted(by_position)]


def scan_results(directory: str | Path, images: Sequence[Sample], outputs: Sequence[TensorSpec],
                 devices: Sequence[str] | None = None) -> ResultFiles:
    """Match the result files of `directory` (or of its device folders) to `images`; check names,
    sizes and dtypes.

    Raises LayoutError for a missing directory, files of unknown stems or output indices,
    a file in two device folders, sizes that fit none of an output's on-disk types (ON_DISK), mixed dtypes, or no
    complete image at all. Images with some output file missing are listed in `missing`; the
    caller decides.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LayoutError(f"result directory {directory} does not exist")
    if not images:
        raise LayoutError("no images to evaluate")
    outputs = tuple(outputs)
    folders = device_folders(directory, devices)
    sizes, folder_of = _file_sizes(directory, folders or [directory], {im.stem for im in images}, len(outputs))
    if not sizes:
        raise LayoutError(
            f"no result files in {directory} for the {len(images)} image(s) of the manifest (expected "
            f"{', '.join(result_name('<stem>', i) for i in range(len(outputs)))}, "
            f"e.g. {result_name(images[0].stem, 0)})")
    dtypes = tuple(_dtype_on_disk(directory, index, out, sizes) for index, out in enumerate(outputs))
    files = ResultFiles(directory, outputs, dtypes, folders=tuple(folders or ()),
                        folder_of=folder_of if folders else {})
    for im in images:
        absent = tuple(out.name for i, out in enumerate(outputs) if (im.stem, i) not in sizes)
        if absent:
            files.missing.append((im.stem, absent))
        else:
            files.present.append(im)
    if not files.present:
        raise LayoutError(f"no image in {directory} has all of its {len(outputs)} result files")
    return files


def _file_sizes(directory: Path, folders: Sequence[Path], stems: set[str], outputs: int
                ) -> tuple[dict[tuple[str, int], int], dict[str, Path]]:
    """(stem, output index) -> size of every result file of `folders`, and stem -> its folder; a file of an
    unknown stem or index, or a stem in two folders, is an error."""
    sizes: dict[tuple[str, int], int] = {}
    folder_of: dict[str, Path] = {}
    unknown: list[str] = []
    for folder in folders:
        with os.scandir(folder) as entries:
            for entry in entries:
                parsed = parse_result_name(entry.name)
                if not parsed or not entry.is_file():
                    continue
                stem, index = parsed
                if stem not in stems or index >= outputs:
                    unknown.append(entry.name)
                    continue
                if folder_of.get(stem, folder) != folder:
                    raise LayoutError(
                        f"{entry.name} is in both {folder_of[stem].name}/ and {folder.name}/ of {directory}: each "
                        "input must go to one device (newer ais_bench and msit split the inputs only with "
                        "--divide_input 1), and each result folder must hold one run")
                sizes[stem, index] = entry.stat().st_size
                folder_of[stem] = folder
    if unknown:
        unknown.sort()
        raise LayoutError(
            f"{directory} holds {len(unknown)} result file(s) that match no image of the manifest or no output "
            f"of the model ({_listing(unknown)}); wrong manifest, or stale files from another run?")
    return sizes, folder_of


def _dtype_on_disk(directory: Path, index: int, out: TensorSpec, sizes: dict[tuple[str, int], int]) -> str:
    """The one on-disk variant of `out`'s type (ON_DISK) that every file of output `index` has, by size."""
    found = [(stem, size) for (stem, i), size in sizes.items() if i == index]
    if not found:
        raise LayoutError(f"no {out.name} files ({result_name('<stem>', index)}) in {directory}")
    allowed = {out.size * np.dtype(DTYPES[name]).itemsize: name for name in ON_DISK[out.dtype]}
    wrong = sorted(f"{result_name(s, index)} ({n} B)" for s, n in found if n not in allowed)
    if wrong:
        expected = " or ".join(f"{n} B ({name})" for n, name in allowed.items())
        raise LayoutError(f"{len(wrong)} {out.name} file(s) in {directory} have the wrong size "
                          f"({_listing(wrong)}); expected {expected} for shape {out.shape}")
    by_kind: dict[str, list[str]] = {}
    for stem, n in sorted(found):
        by_kind.setdefault(allowed[n], []).append(result_name(stem, index))
    if len(by_kind) > 1:
        parts = sorted(by_kind.items(), key=lambda kv: len(kv[1]))  # the odd ones out first
        described = "; ".join(f"{len(names)} {kind} ({_listing(names)})" for kind, names in parts)
        raise LayoutError(f"{out.name} files in {directory} mix {' and '.join(ON_DISK[out.dtype])} sizes: "
                          f"{described}; they come from different runs")
    return next(iter(by_kind))


def _map(path: Path, nbytes: int) -> memoryview:
    """The file's `nbytes` bytes, mapped read-only (no copy: pages come straight from the page cache).

    The size is checked on the open file first; our own writers replace files by renaming, so a
    mapped file does not change under the reader."""
    try:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size != nbytes:
                raise LayoutError(f"{path} changed size while reading (expected {nbytes} B, found {size} B)")
            return memoryview(mmap.mmap(fh.fileno(), nbytes, access=mmap.ACCESS_READ))
    except OSError as exc:
        raise LayoutError(f"cannot read {path}: {exc.strerror}") from None


def _read_images(files: ResultFiles, batch: Sequence[Sample]) -> list[list[np.ndarray]]:
    """Per output, one read-only array per image (its per-image shape, its declared type): a view of
    the mapped file when the file holds the declared type, else a converted copy (float16 ->
    float32, int32 -> int64). Each file is checked (size, NaN/Inf) right after it is mapped."""
    arrays: list[list[np.ndarray]] = [[] for _ in files.outputs]
    for im in batch:
        for index, (out, on_disk) in enumerate(zip(files.outputs, files.dtypes)):
            path = files.path(im.stem, index)
            data = np.frombuffer(_map(path, out.size * np.dtype(DTYPES[on_disk]).itemsize),
                                 dtype=DTYPES[on_disk]).reshape(out.shape)
            if data.dtype.kind == "f" and not np.isfinite(data).all():
                raise LayoutError(f"{path} ({out.name}) contains NaN or Inf values")
            arrays[index].append(data if on_disk == out.dtype else data.astype(DTYPES[out.dtype]))
    return arrays


def _read_batch(files: ResultFiles, batch: Sequence[Sample]) -> list[np.ndarray]:
    """(B, *shape) per output in its declared type (float32, int64), copied out of the files."""
    return [np.stack(per_image) if per_image else np.empty((0, *out.shape), DTYPES[out.dtype])
            for per_image, out in zip(_read_images(files, batch), files.outputs)]


def _advise(files: ResultFiles, batch: Sequence[Sample]) -> None:
    """Ask the kernel to start reading these files now (asynchronous readahead), where supported."""
    if not hasattr(os, "posix_fadvise"):
        return
    for im in batch:
        for index in range(len(files.outputs)):
            try:
                fd = os.open(files.path(im.stem, index), os.O_RDONLY)
            except OSError:
                continue  # reported when the file is read
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)


def _load(files: ResultFiles, batch: Sequence[Sample], transform) -> tuple[Any, float]:
    """The batch (stacked, or the transform's result) and the seconds its files took to read."""
    started = time.perf_counter()
    read = _read_batch(files, batch) if transform is None else _read_images(files, batch)
    read_s = time.perf_counter() - started
    # the transform copies what it keeps; the maps close after
    return (read if transform is None else transform(read)), read_s


def read_batches(files: ResultFiles, batch_size: int = 16, prefetch: int = 1,
                 transform: Callable[[list[np.ndarray]], Any] | None = None) -> Iterator[tuple[list, Any]]:
    """Yield (images, [array (B, *shape) per output, in its declared type]) for files.present, in order.

    At most `prefetch` further batches are read ahead on a background thread. NaN or Inf in any
    file raises LayoutError naming it. With `transform`, the thread also applies it to each
    batch and yields its result instead of the arrays; the transform gets, per output, one
    read-only array per image mapped straight from its file (no copy), and must copy what it keeps.
    """
    images = files.present
    chunks = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    image_bytes = sum(out.size * np.dtype(DTYPES[d]).itemsize for out, d in zip(files.outputs, files.dtypes))
    seen_fast = from_disk = False

    def collect(chunk, future):
        nonlocal seen_fast, from_disk
        value, read_s = future.result()
        fast = len(chunk) * image_bytes > CACHED_BYTES_PER_S * read_s
        seen_fast, from_disk = seen_fast or fast, from_disk or not fast
        return chunk, value

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="result-reader") as pool:
        pending: deque = deque()
        try:
            for k, chunk in enumerate(chunks):
                pending.append((chunk, pool.submit(_load, files, chunk, transform)))
                # keep the kernel reading the next READAHEAD batches while this one is processed
                for ahead in chunks[k + 1:k + 1 + READAHEAD] if k == 0 else chunks[k + READAHEAD:k + READAHEAD + 1]:
                    if from_disk or not seen_fast:
                        _advise(files, ahead)
                if len(pending) > prefetch:
                    yield collect(*pending.popleft())
            while pending:
                yield collect(*pending.popleft())
        finally:
            for _, future in pending:
                future.cancel()
