"""A few preprocessed samples, read straight from a manifest + bins folder, for calibration and comparison.

`quantize` calibrates on them, the accuracy gate (agreement.py) and `compare` run both models on
them. A sample is the i-th file of each input folder (one folder per model input, as `infer`
takes them; a single-input model has one), described by the manifest.json of the first folder.

Selection is deterministic and uses only the files given: the samples are the manifest's images
whose files are in every folder, in natural order of their file names, and `pick` takes `count`
of them evenly spaced over that order (first and last included), so the same folder always gives
the same samples and a smaller count is spread over the whole set rather than its first files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError


@dataclass(frozen=True)
class SampleSet:
    folders: tuple[Path, ...]  # one per model input, in input order
    records: tuple  # preprocess.manifest.ImageRecord per sample
    files: tuple[tuple[Path, ...], ...]  # files[i][k]: sample i's file for model input k
    manifest: object  # preprocess.manifest.Manifest of folders[0]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def stems(self) -> list[str]:
        return [r.stem for r in self.records]

    def subset(self, indices: Sequence[int]) -> "SampleSet":
        return SampleSet(self.folders, tuple(self.records[i] for i in indices), tuple(self.files[i] for i in indices),
                         self.manifest)

    def pick(self, count: int | None, avoid: "SampleSet | None" = None) -> "SampleSet":
        """`count` samples evenly spread over the set (all when count is None or larger); those of
        `avoid` are left out first when enough others remain (e.g. gate images apart from calibration)."""
        pool = list(range(len(self)))
        if avoid is not None:
            taken = set(avoid.stems)
            others = [i for i in pool if self.records[i].stem not in taken]
            if count is not None and len(others) >= count:
                pool = others
        if count is None or count >= len(pool):
            return self.subset(pool)
        if count < 1:
            raise SsdConvertError(f"the number of samples must be at least 1, got {count}")
        positions = np.unique(np.linspace(0, len(pool) - 1, count).round().astype(int))
        return self.subset([pool[p] for p in positions])

    def arrays(self, index: int, inputs: Sequence) -> dict[str, np.ndarray]:
        """Sample `index` as {input name: array of the input's per-sample shape}."""
        return {meta.name: read_tensor(path, meta, self.manifest if k == 0 else None, self.records[index])
                for k, (meta, path) in enumerate(zip(inputs, self.files[index]))}

    def batches(self, inputs: Sequence, batch: int) -> Iterator[tuple[list, dict[str, np.ndarray], int]]:
        """(records, feeds, real) per batch of `batch` samples; the last batch is padded with copies
        of its first sample (as ais_bench pads) and `real` says how many rows are samples."""
        if len(inputs) != len(self.folders):
            raise SsdConvertError(f"the model has {len(inputs)} input(s) ({', '.join(m.name for m in inputs)}) but "
                                  f"{len(self.folders)} input folder(s) were given: one folder per input, in order")
        for start in range(0, len(self), batch):
            idx = list(range(start, min(start + batch, len(self))))
            samples = [self.arrays(i, inputs) for i in idx]
            shapes = {tuple(s[m.name].shape for m in inputs) for s in samples}
            if len(shapes) > 1:
                raise SsdConvertError(f"samples {', '.join(self.records[i].stem for i in idx)} have different shapes "
                                      "(the exact mode sizes each image on its own): they cannot share a batch; "
                                      "use one sample at a time")
            real = len(idx)
            samples += [samples[0]] * (batch - real)
            feeds = {m.name: np.stack([s[m.name] for s in samples]) for m in inputs}
            yield [self.records[i] for i in idx], feeds, real


def read_tensor(path: Path, meta, manifest=None, record=None) -> np.ndarray:
    """One sample's tensor: .npy as saved, .bin as raw data of the input's dtype and per-sample shape
    (where the model leaves a dimension dynamic, the manifest's shape: in the exact mode, that of
    the image `record`)."""
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    shape = meta.shape
    if any(d is None for d in shape):
        if manifest is None:
            raise SsdConvertError(f"{meta.describe()} has dynamic dimensions and {path.parent} has no manifest.json "
                                  "giving the per-sample shape")
        from preprocess.errors import PreprocessError

        try:
            shape = tuple(manifest.image_shape(record)) if record is not None else tuple(manifest.input.tensor.shape)
        except PreprocessError as exc:
            raise SsdConvertError(str(exc)) from None
    dtype = np.dtype(manifest.input.tensor.dtype if manifest is not None else meta.dtype)
    data = np.fromfile(path, dtype=dtype)
    if data.size != int(np.prod(shape)):
        raise SsdConvertError(f"{path} holds {data.size} {dtype.name} values; the model input {meta.name} needs "
                              f"{'x'.join(map(str, shape))} = {int(np.prod(shape))} per sample")
    return data.reshape(shape).astype(meta.dtype, copy=False)


def open_samples(input: str | Path | Sequence[str | Path]) -> SampleSet:
    """The samples of `input`: a manifest + bins folder (with the side-input folders its manifest lists), or
    comma-separated folders (one per model input)."""
    from preprocess.errors import PreprocessError
    from preprocess.manifest import FILE_NAME, read_manifest
    from ssdconvert.layout import list_inputs
    from stageio.results import sample_stem

    items = [Path(s) for s in (str(input).split(",") if isinstance(input, (str, Path)) else input) if str(s)]
    for folder in items:
        if not folder.is_dir():
            raise SsdConvertError(f"{folder} is not a folder: give the preprocessed bins folder (with its {FILE_NAME})")
    if not items:
        raise SsdConvertError("no input folder given")
    if not (items[0] / FILE_NAME).is_file():
        raise SsdConvertError(f"{items[0]} has no {FILE_NAME}: give a folder written by `ssdconvert preprocess`")
    try:
        manifest = read_manifest(items[0])
    except PreprocessError as exc:
        raise SsdConvertError(str(exc)) from None
    if len(items) == 1 and manifest.side_inputs:  # e.g. Faster R-CNN's im_info/, as `infer` adds it
        items += [items[0] / side.folder for side in manifest.side_inputs]
        missing = [str(f) for f in items[1:] if not f.is_dir()]
        if missing:
            raise SsdConvertError(f"{items[0] / FILE_NAME} lists the side-input folder {missing[0]}, which does not "
                                  "exist: preprocess again")
    inputs = list_inputs(items)
    by_stem = [{sample_stem(f): f for f in group} for group in inputs.groups]
    chosen = [r for r in manifest.images if all(r.stem in files for files in by_stem)]
    chosen.sort(key=lambda r: _natural(by_stem[0][r.stem].name))
    if not chosen:
        raise SsdConvertError(f"none of the {len(manifest.images)} images of {items[0] / FILE_NAME} has its file "
                              f"in {', '.join(map(str, items))}")
    files = tuple(tuple(files[r.stem] for files in by_stem) for r in chosen)
    return SampleSet(tuple(items), tuple(chosen), files, manifest)


def _natural(name: str) -> list:
    from ssdconvert.layout import natural_key

    return natural_key(name)
