"""The results layout read back (stageio.reader): names, dtype from file size, errors, bounded batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from stageio.errors import LayoutError
from stageio.reader import read_batches, scan_results
from stageio.tensor import TensorSpec


@dataclass(frozen=True)
class Sample:
    """A sample record as the reader sees it (e.g. a manifest's ImageRecord)."""

    id: int
    stem: str


OUTPUTS = (TensorSpec("ploc", (4, 6)), TensorSpec("plabel", (3, 6)))


def images(n: int) -> list[Sample]:
    return [Sample(id=100 + k, stem=f"{k:012d}") for k in range(n)]


def write(folder, ims, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    data = []
    for im in ims:
        loc, lab = rng.normal(size=(4, 6)).astype(dtype), rng.normal(size=(3, 6)).astype(dtype)
        loc.tofile(folder / f"{im.stem}_0.bin")
        lab.tofile(folder / f"{im.stem}_1.bin")
        data.append((loc, lab))
    return data


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_reads_everything_in_order_as_float32(tmp_path, dtype):
    ims = images(7)
    data = write(tmp_path, ims, dtype)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "ignored.bin").write_bytes(b"x")  # no _<index>: not a result file
    files = scan_results(tmp_path, ims, OUTPUTS)
    assert files.dtypes == (dtype, dtype) and not files.missing
    seen = []
    for batch, (loc, lab) in read_batches(files, batch_size=3):
        assert loc.dtype == lab.dtype == np.float32 and len(batch) <= 3
        for k, im in enumerate(batch):
            np.testing.assert_array_equal(loc[k], data[ims.index(im)][0].astype(np.float32))
            np.testing.assert_array_equal(lab[k], data[ims.index(im)][1].astype(np.float32))
        seen += batch
    assert seen == ims


def test_stems_with_underscores_and_dots(tmp_path):
    ims = [Sample(1, "img_0"), Sample(2, "img_0_1")]
    write(tmp_path, ims)
    assert scan_results(tmp_path, ims, OUTPUTS).present == ims


def test_missing_files_are_listed_not_fatal(tmp_path):
    ims = images(5)
    write(tmp_path, ims)
    (tmp_path / f"{ims[1].stem}_1.bin").unlink()
    (tmp_path / f"{ims[3].stem}_0.bin").unlink()
    (tmp_path / f"{ims[3].stem}_1.bin").unlink()
    files = scan_results(tmp_path, ims, OUTPUTS)
    assert files.missing == [(ims[1].stem, ("plabel",)), (ims[3].stem, ("ploc", "plabel"))]
    assert files.present == [ims[0], ims[2], ims[4]]


def test_wrong_size(tmp_path):
    ims = images(3)
    write(tmp_path, ims)
    (tmp_path / f"{ims[2].stem}_1.bin").write_bytes(b"\0" * 50)
    with pytest.raises(LayoutError, match=r"1 plabel file\(s\) .* wrong size .*000000000002_1.bin \(50 B\)"
                                                r".*72 B \(float32\) or 36 B \(float16\)"):
        scan_results(tmp_path, ims, OUTPUTS)


def test_mixed_dtypes(tmp_path):
    ims = images(3)
    write(tmp_path, ims[:2])
    write(tmp_path, ims[2:], "float16")
    with pytest.raises(LayoutError, match=r"ploc files in .* mix float32 and float16 sizes: "
                                                r"1 float16 \(000000000002_0.bin\); 2 float32 \(000000000000_0.bin, "
                                                r"000000000001_0.bin\); they come from different runs"):
        scan_results(tmp_path, ims, OUTPUTS)


def test_unknown_stems_and_output_indices(tmp_path):
    ims = images(2)
    write(tmp_path, ims)
    (tmp_path / "000000009999_0.bin").write_bytes(b"\0" * 96)
    with pytest.raises(LayoutError, match=r"1 result file\(s\) that match no image .*000000009999_0.bin"):
        scan_results(tmp_path, ims, OUTPUTS)
    (tmp_path / "000000009999_0.bin").unlink()
    (tmp_path / f"{ims[0].stem}_2.bin").write_bytes(b"\0" * 96)
    with pytest.raises(LayoutError, match="_2.bin"):
        scan_results(tmp_path, ims, OUTPUTS)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_names_the_file(tmp_path, bad):
    ims = images(4)
    write(tmp_path, ims)
    lab = np.zeros((3, 6), np.float32)
    lab[1, 2] = bad
    lab.tofile(tmp_path / f"{ims[2].stem}_1.bin")
    files = scan_results(tmp_path, ims, OUTPUTS)
    with pytest.raises(LayoutError, match=rf"{ims[2].stem}_1.bin \(plabel\) contains NaN or Inf"):
        list(read_batches(files, batch_size=2))


def test_no_results_at_all(tmp_path):
    with pytest.raises(LayoutError, match="no result files"):
        scan_results(tmp_path, images(2), OUTPUTS)
    with pytest.raises(LayoutError, match="does not exist"):
        scan_results(tmp_path / "nope", images(2), OUTPUTS)
    ims = images(2)
    write(tmp_path, ims)
    for im in ims:
        (tmp_path / f"{im.stem}_1.bin").unlink()
    with pytest.raises(LayoutError, match=r"no plabel files \(<stem>_1.bin\)"):
        scan_results(tmp_path, ims, OUTPUTS)


def test_batches_are_bounded(tmp_path, monkeypatch):
    """Only batch_size images per array and at most `prefetch` batches read ahead."""
    import stageio.reader as reader

    ims = images(20)
    write(tmp_path, ims)
    files = scan_results(tmp_path, ims, OUTPUTS)
    reads = []
    original = reader._read_batch
    monkeypatch.setattr(reader, "_read_batch", lambda f, batch: reads.append(len(batch)) or original(f, batch))
    batches = read_batches(files, batch_size=6, prefetch=1)
    first, _ = next(batches)
    assert len(first) == 6 and len(reads) <= 2
    assert [len(first)] + [len(batch) for batch, _ in batches] == [6, 6, 6, 2]


def device_run(tmp_path, ims, folders: list[str], sizes: list[int]):
    """Results spread over device folders in contiguous blocks, as ais_bench --device writes them."""
    root = tmp_path / "result"
    data, head = {}, 0
    for name, size in zip(folders, sizes):
        (root / name).mkdir(parents=True)
        for im, pair in zip(ims[head:head + size], write(root / name, ims[head:head + size], seed=head)):
            data[im.stem] = pair
        (root / f"{name}_summary.json").write_text("{}")
        head += size
    return root, data


@pytest.mark.parametrize("folders, devices", [
    (["device0_0", "device3_1", "device1_2"], ["0", "3", "1"]),  # newer: device<N>_<position in --device>
    (["device0", "device3", "device1"], ["0", "3", "1"]),  # older standalone: device<N>
])
def test_reads_the_device_folders_of_a_multi_device_run(tmp_path, folders, devices):
    ims = images(7)
    root, data = device_run(tmp_path, ims, folders, [3, 2, 2])
    files = scan_results(root, ims, OUTPUTS, devices=devices)
    assert [f.name for f in files.folders] == folders and files.present == ims and not files.missing
    assert files.folder_of[ims[4].stem].name == folders[1]
    for batch, (loc, lab) in read_batches(files, batch_size=4):
        for k, im in enumerate(batch):
            np.testing.assert_array_equal(loc[k], data[im.stem][0])
            np.testing.assert_array_equal(lab[k], data[im.stem][1])
    # without the --device list: newer names carry the list position; older ones only the device id
    unordered = [f.name for f in scan_results(root, ims, OUTPUTS).folders]
    assert unordered == (folders if "_" in folders[0] else ["device0", "device1", "device3"])


def test_device_folders_with_duplicates_or_gaps_are_refused(tmp_path):
    ims = images(6)
    root, _ = device_run(tmp_path, ims, ["device0_0", "device1_1", "device2_2"], [2, 2, 2])
    write(root / "device2_2", ims[1:2])  # a result both device 0 and device 2 wrote
    with pytest.raises(LayoutError, match=rf"{ims[1].stem}_[01]\.bin is in both device0_0/ and device2_2/.*"
                                               r"--divide_input 1"):
        scan_results(root, ims, OUTPUTS)
    (root / "device2_2" / f"{ims[1].stem}_0.bin").unlink()
    (root / "device2_2" / f"{ims[1].stem}_1.bin").unlink()
    with pytest.raises(LayoutError, match=r"no folder for device position\(s\) 3 of 4"):
        scan_results(root, ims, OUTPUTS, devices=["0", "1", "2", "3"])  # the run's --device listed a 4th NPU
    (root / "device1_1").rename(root / "device1_3")
    with pytest.raises(LayoutError, match=r"no folder for device position\(s\) 1 of 4"):
        scan_results(root, ims, OUTPUTS)
    (root / "device1_3").rename(root / "device5_1")
    with pytest.raises(LayoutError, match=r"no folder device1_1 for a device of the run's --device list 0,1,2"):
        scan_results(root, ims, OUTPUTS, devices=["0", "1", "2"])
    (root / "device5_1").rename(root / "device1_1")
    (root / "device0_2").mkdir()
    with pytest.raises(LayoutError, match=r"two folders for device position 2 \(device0_2, device2_2\)"):
        scan_results(root, ims, OUTPUTS)
    (root / "device0_2").rmdir()
    (root / "device7").mkdir()
    with pytest.raises(LayoutError, match="mixes device<N> and device<N>_<i> folders"):
        scan_results(root, ims, OUTPUTS)
    (root / "device7").rmdir()
    write(root, ims[:1])
    with pytest.raises(LayoutError, match="both result files .* and device folders"):
        scan_results(root, ims, OUTPUTS)


def test_old_device_folders_must_match_the_recorded_device_list(tmp_path):
    ims = images(4)
    root, _ = device_run(tmp_path, ims, ["device0", "device1", "device2"], [2, 1, 1])
    with pytest.raises(LayoutError, match=r"holds device2, which is not a device of the run's --device list 0,1"):
        scan_results(root, ims, OUTPUTS, devices=["0", "1"])  # left over from an earlier 3-NPU run
    with pytest.raises(LayoutError, match=r"no folder device3 for a device of the run's --device list 0,1,2,3"):
        scan_results(root, ims, OUTPUTS, devices=["0", "1", "2", "3"])


FINAL = (TensorSpec("boxes", (5, 4)), TensorSpec("labels", (5,), "int64"), TensorSpec("count", (), "int64"))


@pytest.mark.parametrize("int_dtype", ["int64", "int32"])
def test_integer_outputs_are_read_as_int64_whether_written_as_int64_or_int32(tmp_path, int_dtype):
    """A device compiler may narrow int64 outputs to int32 (MagicMind type64to32_conversion): same values."""
    ims = images(3)
    for k, im in enumerate(ims):
        np.full((5, 4), k + 0.5, np.float32).tofile(tmp_path / f"{im.stem}_0.bin")
        (np.arange(5) * 10 + k).astype(int_dtype).tofile(tmp_path / f"{im.stem}_1.bin")
        np.array(k + 2, dtype=int_dtype).tofile(tmp_path / f"{im.stem}_2.bin")
    files = scan_results(tmp_path, ims, FINAL)
    assert files.dtypes == ("float32", int_dtype, int_dtype)
    ((batch, (boxes, labels, count)),) = list(read_batches(files, batch_size=3))
    assert labels.dtype == count.dtype == np.int64 and boxes.dtype == np.float32
    assert labels[:, 1].tolist() == [10, 11, 12] and count.tolist() == [2, 3, 4] and boxes[2, 0, 0] == 2.5


def test_an_integer_output_of_a_float_size_is_refused_naming_the_integer_types(tmp_path):
    ims = images(1)
    np.zeros((5, 4), np.float32).tofile(tmp_path / f"{ims[0].stem}_0.bin")
    np.zeros(5, np.int16).tofile(tmp_path / f"{ims[0].stem}_1.bin")  # 10 bytes: neither int64 nor int32
    np.zeros((), np.int64).tofile(tmp_path / f"{ims[0].stem}_2.bin")
    with pytest.raises(LayoutError, match=r"labels file\(s\) .* wrong size .* expected 40 B \(int64\) or 20 B "
                                                r"\(int32\) for shape \(5,\)"):
        scan_results(tmp_path, ims, FINAL)


@pytest.mark.parametrize("speeds,advised", [("fast", 5), ("slow", 9), ("slow then fast", 9), ("fast then slow", 7)])
def test_readahead_is_asked_only_while_reads_are_slow(tmp_path, monkeypatch, speeds, advised):
    """Files read at page-cache speed need no readahead (asking costs the kernel a walk over every
    page): it is asked for the first READAHEAD batches, and then only after a batch read slowly,
    from then on (batches that readahead brought in read fast as well)."""
    import stageio.reader as reader

    ims = images(20)
    write(tmp_path, ims)
    files = scan_results(tmp_path, ims, OUTPUTS)
    asked, loads = [], []
    slow = {"fast": lambda k: False, "slow": lambda k: True, "slow then fast": lambda k: k == 0,
            "fast then slow": lambda k: k >= 2}[speeds]
    real_load = reader._load

    def load(files, batch, transform):  # reported read time: 1000 s (slow) or 1 ns (fast)
        loads.append(batch)
        value, _ = real_load(files, batch, transform)
        return value, 1000.0 if slow(len(loads) - 1) else 1e-9

    monkeypatch.setattr(reader, "_advise", lambda f, batch: asked.append([im.stem for im in batch]))
    monkeypatch.setattr(reader, "_load", load)
    got = [im.stem for batch, _ in read_batches(files, batch_size=2) for im in batch]
    assert got == [im.stem for im in ims]
    # 10 batches: READAHEAD (4) ahead of batch 0 and one more while batch 0 is read; then one
    # per batch (the 4th ahead) once a batch has read slowly
    assert len(asked) == advised
    assert asked[:4] == [[ims[2 * k].stem, ims[2 * k + 1].stem] for k in range(1, 5)]
