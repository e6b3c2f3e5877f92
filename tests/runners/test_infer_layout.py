"""`ssdconvert infer` with the in-process runners writes ais_bench's layout exactly."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli
from ssdconvert.infer import InferError, _read_batch, list_inputs, run_infer
from stageio.results import sample_stem
from ssdconvert.backends.ascend.ais_bench import parse_console

SUMMARY_KEYS = ["filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency", "throughput",
                "npu_compute_time_list", "pid"]
STAT_KEYS = {"min", "max", "mean", "median", "percentile(99%)", "count"}


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_layout_summary_and_padding(tmp_path, tiny_onnx, backend, tiny):
    files = tiny.write_inputs(tmp_path / "ssd_bin", 10)  # 10 files at batch 4: 3 runs, 2 padding slots
    result = run_infer(tiny_onnx, tmp_path / "ssd_bin", tmp_path / "out" / "result", backend=backend, batchsize=4,
                       progress=False)
    out = tmp_path / "out" / "result"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{f.name.split('.')[0]}_{i}.bin" for f in files for i in (0, 1))
    assert (result.runs, result.padded, result.batch) == (3, 2, 4)
    for f in (files[0], files[-1]):  # first file, and the last real file of the padded batch
        x = np.fromfile(f, np.float32).reshape(3, 8, 8)
        loc, cls = tiny.reference_outputs(x)
        stem = f.name.split(".")[0]
        np.testing.assert_allclose(np.fromfile(out / f"{stem}_0.bin", np.float32).reshape(4, 64), loc, atol=1e-5)
        np.testing.assert_allclose(np.fromfile(out / f"{stem}_1.bin", np.float32).reshape(tiny.CLASSES, 64), cls, atol=1e-5)

    summary_path = tmp_path / "out" / "result_summary.json"
    assert result.summary_path == summary_path
    summary = json.loads(summary_path.read_text())
    assert list(summary)[:8] == SUMMARY_KEYS
    for key in ("NPU_compute_time", "H2D_latency", "D2H_latency"):
        assert set(summary[key]) == STAT_KEYS
    compute = summary["NPU_compute_time"]
    assert compute["count"] == 3 == len(summary["npu_compute_time_list"])
    assert compute["min"] <= compute["median"] <= compute["max"]
    assert summary["throughput"] == pytest.approx(1000 * 4 / compute["mean"])
    args = summary["args"]
    assert args[args.index("--input") + 1] == str((tmp_path / "ssd_bin").resolve())
    assert list(summary["filesinfo"]) == [str(k) for k in range(10)]  # one per sample, none for padding
    assert summary["filesinfo"]["9"] == {"infiles": [str(files[9])],
                                         "outfiles": [str(out / f"{files[9].stem}_{i}.bin") for i in (0, 1)]}
    assert summary["pid"] == os.getpid()
    assert "no file I/O" in summary["ssdconvert"]["timing"]
    assert summary["ssdconvert"]["end_to_end_seconds"] > 0
    assert not list(tmp_path.glob("out/.*"))  # no temporary leftovers


def test_padding_slots_repeat_the_first_file_of_the_batch(tmp_path, tiny):
    files = tiny.write_inputs(tmp_path, 2, manifest=False)
    nbytes = 3 * 8 * 8 * 4
    buffer = np.empty(4 * nbytes, np.uint8)
    batch = _read_batch(files[1:], buffer, 4, nbytes, np.dtype("float32"), (3, 8, 8))
    first = np.fromfile(files[1], np.float32).reshape(3, 8, 8)
    for slot in range(4):
        np.testing.assert_array_equal(batch[slot], first)


def test_static_model_batch_wins_and_five_files_pad_three_slots(tmp_path, tiny_onnx_bs4, tiny):
    tiny.write_inputs(tmp_path / "in", 5)
    result = run_infer(tiny_onnx_bs4, tmp_path / "in", tmp_path / "res", batchsize=16, progress=False)
    assert (result.batch, result.runs, result.padded) == (4, 2, 3)
    assert any("static batch of 4" in w for w in result.warnings)
    assert len(list((tmp_path / "res").iterdir())) == 10


def test_natural_sort_and_first_dot_stems(tmp_path, tiny, tiny_onnx):
    tiny.write_inputs(tmp_path / "a", 3, manifest=False, names=["img10.bin", "img2.bin", "img1.bin"])
    assert [p.name for p in list_inputs(tmp_path / "a").first] == ["img1.bin", "img2.bin", "img10.bin"]
    assert sample_stem("000000397133.jpg.bin") == "000000397133"
    tiny.write_inputs(tmp_path / "b", 2, manifest=False, names=["img.001.bin", "img.002.bin"])
    with pytest.raises(InferError, match="img.001.bin and img.002.bin would both write img_0.bin"):
        run_infer(tiny_onnx, tmp_path / "b", tmp_path / "o", progress=False)


def test_manifest_dtype_and_shape_are_checked_before_running(tmp_path, tiny_onnx, tiny):
    tiny.write_inputs(tmp_path / "u8", 2, dtype="uint8")
    with pytest.raises(InferError, match=r"uint8 \(manifest.json\) but the model input 'image' expects float32"):
        run_infer(tiny_onnx, tmp_path / "u8", tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_without_manifest_sizes_are_checked_like_ais_bench(tmp_path, tiny_onnx, tiny):
    tiny.write_inputs(tmp_path / "f16", 2, dtype="float16", manifest=False)
    with pytest.raises(InferError, match="size of float16 data"):
        run_infer(tiny_onnx, tmp_path / "f16", tmp_path / "o", progress=False)
    tiny.write_inputs(tmp_path / "ok", 3, manifest=False)
    result = run_infer(tiny_onnx, tmp_path / "ok", tmp_path / "o", progress=False)
    assert any("no manifest.json" in w for w in result.warnings)
    assert result.batch == 1 and result.runs == 3


def test_rerun_replaces_stale_outputs_but_never_foreign_files(tmp_path, tiny_onnx, tiny):
    tiny.write_inputs(tmp_path / "in", 2)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "old_0.bin").write_bytes(b"stale")
    run_infer(tiny_onnx, tmp_path / "in", tmp_path / "o", progress=False)
    assert not (tmp_path / "o" / "old_0.bin").exists()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    with pytest.raises(InferError, match="holds other files"):
        run_infer(tiny_onnx, tmp_path / "in", tmp_path / "o", progress=False)


def test_loop_multiplies_the_timed_runs(tmp_path, tiny_onnx, tiny):
    tiny.write_inputs(tmp_path / "in", 3)
    result = run_infer(tiny_onnx, tmp_path / "in", tmp_path / "o", loop=2, warmup=0, progress=False)
    assert result.compute_ms["count"] == 6 and result.runs == 3


def test_cli_prints_ais_bench_summary_lines_the_adapter_can_parse(tmp_path, tiny_onnx, tiny):
    tiny.write_inputs(tmp_path / "ssd_bin", 6)
    res = CliRunner().invoke(cli, ["infer", "--model", str(tiny_onnx), "--input", str(tmp_path / "ssd_bin"),
                                   "--output", str(tmp_path / "result"), "--batchsize", "4"])
    assert res.exit_code == 0, res.output
    parsed = parse_console(res.output)
    summary = json.loads((tmp_path / "result_summary.json").read_text())
    assert parsed.batchsize == 4
    assert parsed.throughput == pytest.approx(summary["throughput"])
    assert parsed.compute_ms["mean"] == pytest.approx(summary["NPU_compute_time"]["mean"])
    assert "no file I/O" in res.output and "end to end" in res.output

    bad = CliRunner().invoke(cli, ["infer", "--model", str(tiny_onnx), "--input", str(tmp_path / "ssd_bin"),
                                   "--output", str(tmp_path / "x"), "--backend", "ais_bench"])
    assert bad.exit_code == 1 and "Ascend (ATC + ais_bench) runs .om" in bad.output and "not 'tiny_dyn.onnx'" in bad.output
    assert bad.output.count("'ais_bench' is deprecated as a backend name; use 'ascend'") == 1


def test_manifest_and_folder_disagreeing_is_reported(tmp_path, tiny, tiny_onnx):
    files = tiny.write_inputs(tmp_path / "in", 3)
    files[1].unlink()
    result = run_infer(tiny_onnx, tmp_path / "in", tmp_path / "o", progress=False)
    assert any("have no .bin file (e.g. 000000000002.bin)" in w for w in result.warnings)


def test_real_ssd_resnet34_outputs_have_the_reference_sizes(tmp_path, exported_onnx):
    """The real export (shared session fixture): ploc 139,712 B and plabel 2,829,168 B per image
    (4 x 8732 and 81 x 8732 float32)."""
    rng = np.random.default_rng(0)
    for name in ("000000397133.bin", "000000037777.bin"):
        rng.standard_normal((3, 300, 300)).astype(np.float32).tofile(tmp_path / name)
    result = run_infer(exported_onnx, tmp_path, tmp_path.parent / f"{tmp_path.name}_result", batchsize=2,
                       progress=False)
    sizes = {p.name: p.stat().st_size for p in result.output_dir.iterdir()}
    assert sizes == {"000000037777_0.bin": 139712, "000000037777_1.bin": 2829168,
                     "000000397133_0.bin": 139712, "000000397133_1.bin": 2829168}


def test_cpu_runners_refuse_a_device_list(tmp_path, tiny_onnx, tiny):
    tiny.write_inputs(tmp_path / "in", 2)
    res = CliRunner().invoke(cli, ["infer", "--model", str(tiny_onnx), "--input", str(tmp_path / "in"), "--output",
                                   str(tmp_path / "o"), "--device", "0,1"])
    assert res.exit_code == 1
    assert "Error: ONNX Runtime runs one device per run: --device takes one value, not the list '0,1'" in res.output
    assert not (tmp_path / "o").exists()
