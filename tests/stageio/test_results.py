"""The results layout: one stem rule, one file-name rule, what counts as a result, the batch writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stageio.results import (clear_results, is_result, parse_result_name, result_name, sample_stem, summary_path,
                             write_results)


@pytest.mark.parametrize("name, stem", [
    ("000000397133.jpg", "000000397133"), ("000000397133.jpg.bin", "000000397133"), ("a.b.c", "a"),
    ("noext", "noext"), ("sub/dir/x.jpg", "x"), (Path("/data/ssd_bin/img.001.bin"), "img"), (".hidden.bin", ""),
])
def test_the_stem_is_the_file_name_cut_at_the_first_dot(name, stem):
    assert sample_stem(name) == stem


def test_result_names_read_back():
    assert result_name("000000397133", 1) == "000000397133_1.bin"
    assert parse_result_name("000000397133_1.bin") == ("000000397133", 1)
    assert parse_result_name("img_0_12.bin") == ("img_0", 12)
    for other in ("img_0.npy", "img.bin", "img_x.bin", "img_0.bin.tmp-12", "_0.bin"):
        assert parse_result_name(other) is None


def test_the_summary_goes_beside_the_folder(tmp_path):
    assert summary_path(tmp_path / "out" / "result") == tmp_path / "out" / "result_summary.json"


def test_only_ais_bench_outputs_count_as_results(tmp_path):
    for name in ("a_0.bin", "a_1.npy", "a_2.txt", "device0_1_summary.json", "notes.txt", "a.bin", "x_summary.json"):
        (tmp_path / name).write_text("")
    for folder in ("device0", "device3_1", "logs"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a_0.bin").write_text("")
    assert sorted(p.name for p in tmp_path.iterdir() if is_result(p)) == \
        ["a_0.bin", "a_1.npy", "a_2.txt", "device0", "device0_1_summary.json", "device3_1"]
    clear_results(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "logs", "notes.txt", "x_summary.json"]


def test_a_batch_is_written_sample_by_sample_and_padding_writes_nothing(tmp_path):
    loc = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)  # a batch of 3 slots, the last one padding
    count = np.array([5, 6, 7], dtype=np.int64)
    names = write_results(tmp_path, ["img1", "img2"], [loc, count])
    assert names == ["img1_0.bin", "img1_1.bin", "img2_0.bin", "img2_1.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporaries left
    assert np.array_equal(np.fromfile(tmp_path / "img2_0.bin", np.float32).reshape(4, 2), loc[1])
    assert (tmp_path / "img1_1.bin").read_bytes() == np.int64(5).tobytes()
