"""The ais_bench adapter against the ais_bench contract and the fake tool in tests/fakes/ais_bench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli
from ssdconvert.infer import run_infer
from ssdconvert.backends.ascend.ais_bench import (AisBenchError, build_argv, explain_failure, normalise_stats,
                                                 parse_console, read_summary, run_ais_bench, supports_divide_input)
from ssdconvert.backends.ascend.runner import AisBenchRunner
from ssdconvert.backends.base import RunnerError
from ssdconvert.layout import InferError

CONSOLE = """[INFO] try get model batchsize:1
[INFO] -----------------Performance Summary------------------
[INFO] H2D_latency (ms): min = 0.05, max = 0.05, mean = 0.05, median = 0.05, percentile(99%) = 0.05
[INFO] NPU_compute_time (ms): min = 0.6610000133514404, max = 0.661, mean = 0.6610000133514404, median = 0.661, percentile(99%) = 0.661
[INFO] D2H_latency (ms): min = 0.02, max = 0.02, mean = 0.02, median = 0.02, percentile(99%) = 0.02
[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(0.6610000133514404): 1512.8592735267011
[INFO] ------------------------------------------------------
"""


def test_argv_uses_the_standalone_spellings_and_explicit_batch_and_dirname():
    argv = build_argv("ssd_bs16.om", python="python3", input="ssd_bin/", output="out", output_dirname="result",
                      batchsize=16, dym_batch=8, device=1, warmup=2, loop=3)
    assert argv == ["python3", "-m", "ais_bench", "--model", "ssd_bs16.om", "--input", "ssd_bin/", "--output", "out",
                    "--output_dirname", "result", "--outfmt", "BIN", "--batchsize", "16", "--dymBatch", "8",
                    "--device", "1", "--warmup_count", "2", "--loop", "3"]


def test_console_summary_is_parsed_from_the_documented_lines():
    parsed = parse_console(CONSOLE + "[INFO] summary throughput:557.93\n")
    assert parsed.compute_ms["mean"] == pytest.approx(0.6610000133514404)
    assert parsed.compute_ms["percentile(99%)"] == pytest.approx(0.661)
    assert (parsed.batchsize, parsed.throughput) == (1.0, pytest.approx(1512.8592735267011))
    assert parsed.multi_device_throughput == pytest.approx(557.93)


def test_percentile_key_quirk_is_matched_by_prefix(tmp_path):
    mangled = {"min": 1, "max": 3, "mean": 2, "median": 2, "percentile(99%" + " " * 28 + ")": 2.9, "count": 4}
    assert normalise_stats(mangled)["percentile(99%)"] == 2.9
    path = tmp_path / "r_summary.json"
    path.write_text(json.dumps({"NPU_compute_time": mangled, "H2D_latency": {"percentile(99%)": 1}, "throughput": 5}))
    summary = read_summary(path)
    assert summary["NPU_compute_time"]["percentile(99%)"] == 2.9 and summary["NPU_compute_time"]["count"] == 4


@pytest.mark.parametrize("log, expected", [
    ("Traceback...\nModuleNotFoundError: No module named 'ais_bench'", "ais_bench is not installed"),
    ("[ERROR] arg0 tensorsize: 1080000 filesize: 540001 not match\nRuntimeError", "do not fit the om input"),
    ("RuntimeError: Invalid args. args input dir num:2 not equal to model inputs num:1", "one folder per input"),
    ("[ERROR] aclrtMalloc failed, ret=207001: out of memory", "out of memory"),
    ("[ERROR] acl.rt.set_device failed ret=507033\nRuntimeError: aclrtSetDevice failed.", "cannot open the NPU"),
    ("ais_bench: error: unrecognized arguments: --dymBatch 8", "does not know the argument(s) --dymBatch 8"),
    ("Traceback (most recent call last):\nValueError: something odd", "ValueError: something odd"),
    ("", "exit code 1: (no output)"),
])
def test_failure_lines_become_one_clear_message(log, expected):
    assert expected in explain_failure(log, 1)


def _om(tiny, tmp_path, batch=4):
    return tiny.make_onnx(tmp_path / f"tiny_bs{batch}.om", batch=batch)  # the fake runs an ONNX named .om


def test_fake_tool_writes_the_layout_the_adapter_reads(tmp_path, tiny, fake_ais_bench):
    om = _om(tiny, tmp_path)
    files = tiny.write_inputs(tmp_path / "ssd_bin", 10)
    result = run_ais_bench(om, input=tmp_path / "ssd_bin", output=tmp_path / "out", output_dirname="result",
                           batchsize=4)
    assert result.output_dir == tmp_path / "out" / "result"
    assert result.summary_path == tmp_path / "out" / "result_summary.json"
    assert len(list(result.output_dir.iterdir())) == 20  # 10 real inputs x 2 outputs, nothing for padding
    raw = json.loads(result.summary_path.read_text())
    assert any(k.startswith("percentile(99%") and k != "percentile(99%)" for k in raw["NPU_compute_time"])
    assert result.compute_ms["percentile(99%)"] > 0 and result.compute_ms["count"] == 3
    assert result.throughput == pytest.approx(result.console.throughput)
    assert result.throughput == pytest.approx(1000 * 4 / result.compute_ms["mean"])
    assert "--batchsize" in result.command and result.log_path.is_file()
    x = np.fromfile(files[9], np.float32).reshape(3, 8, 8)
    np.testing.assert_allclose(np.fromfile(result.output_dir / f"{files[9].stem}_1.bin", np.float32).reshape(-1, 64),
                               tiny.reference_outputs(x)[1], atol=1e-5)


# natural sort (img2 < img10) and stems cut at the FIRST dot (img10.jpg.bin -> img10)
TRICKY_NAMES = ["img10.jpg.bin", "img2.bin", "img1.x.bin", "000000000004.bin", "img3.bin", "a.b.c.bin", "img20.bin"]


def test_om_through_infer_matches_the_in_process_runner_byte_for_byte(tmp_path, tiny, fake_ais_bench, monkeypatch):
    """The ascend backend runs a folder two ways: its own batch loop over InferSession (this Python
    imports ais_bench), or the real `python3 -m ais_bench` (here the fake, which implements the
    tool's batching, padding and naming on its own). Both must write the same files, byte for byte:
    the same stems, nothing for padding slots, the same numbers."""
    om = _om(tiny, tmp_path)  # batch 4: 7 files -> 2 runs, 1 padding slot
    tiny.write_inputs(tmp_path / "in", 7, names=TRICKY_NAMES)
    in_process = run_infer(om, tmp_path / "in", tmp_path / "runner", progress=False)
    assert in_process.log_path is None and in_process.backend == "ascend" and in_process.padded == 1
    monkeypatch.setattr("ssdconvert.backends.ascend.runner.api_available", lambda: False)
    res = CliRunner().invoke(cli, ["infer", "--model", str(om), "--input", str(tmp_path / "in"),
                                   "--output", str(tmp_path / "tool")])
    assert res.exit_code == 0, res.output
    assert "ais_bench log:" in res.output
    expected = sorted(f"{name.split('.')[0]}_{i}.bin" for name in TRICKY_NAMES for i in (0, 1))
    tool_files = sorted(p.name for p in (tmp_path / "tool").iterdir())
    assert tool_files == expected
    assert sorted(p.name for p in (tmp_path / "runner").iterdir()) == expected
    for name in expected:
        assert (tmp_path / "tool" / name).read_bytes() == (tmp_path / "runner" / name).read_bytes(), name
    tool_summary = json.loads((tmp_path / "tool_summary.json").read_text())
    runner_summary = json.loads((tmp_path / "runner_summary.json").read_text())
    assert list(tool_summary)[:8] == list(runner_summary)[:8]
    # filesinfo as io_oprations.py writes it: keyed by sample id (7 samples, the padding slot has none), one input
    # file per model input, that sample's outputs
    order = ["000000000004.bin", "a.b.c.bin", "img1.x.bin", "img2.bin", "img3.bin", "img10.jpg.bin", "img20.bin"]
    expected = {str(k): {"infiles": [name], "outfiles": [f"{name.split('.')[0]}_{i}.bin" for i in (0, 1)]}
                for k, name in enumerate(order)}
    for summary, folder in ((tool_summary, "tool"), (runner_summary, "runner")):
        named = {k: {"infiles": [Path(f).name for f in v["infiles"]], "outfiles": [Path(f).name for f in v["outfiles"]]}
                 for k, v in summary["filesinfo"].items()}
        assert named == expected, folder
        assert all(Path(f).parent.name == folder for v in summary["filesinfo"].values() for f in v["outfiles"])
    for summary in (tool_summary, runner_summary):  # eval finds the manifest through --input
        assert summary["args"][summary["args"].index("--input") + 1] == str((tmp_path / "in").resolve())


@pytest.mark.parametrize("version, folders, split", [
    # AIT 6.0.RC3 and later split only with --divide_input 1 (sync-ait 0765eb473): the adapter must pass it
    ("ait-6.0.RC3", ["device0_0", "device1_1", "device3_2"], [3, 2, 2]),  # floor(7/3) = 2 each, first 7 % 3 one more
    ("ait-6.0.RC2", ["device0_0", "device1_1", "device3_2"], [3, 2, 2]),  # splits without the flag, rejects it
    ("standalone", ["device0", "device1", "device3"], [3, 3, 1]),  # ceil(7/3) = 3 each, the last gets the rest
])
def test_several_npus_write_per_device_folders_that_eval_reads(tmp_path, tiny, fake_ais_bench, monkeypatch, version,
                                                               folders, split):
    from stageio.reader import scan_results
    from stageio.tensor import TensorSpec
    from preprocess.manifest import read_manifest
    from ssdconvert.evaluation import recorded_devices, runner_summary

    monkeypatch.setenv("FAKE_AIS_BENCH_VERSION", version)
    om = _om(tiny, tmp_path, batch=2)
    files = tiny.write_inputs(tmp_path / "in", 7)
    result = run_infer(om, tmp_path / "in", tmp_path / "out" / "result", device="0,1,3", progress=False)
    assert [f.name for f in result.device_folders] == folders
    assert not list((tmp_path / "out").glob("result_summary.json"))  # one summary per device, inside result/
    args = json.loads(result.summary_path.read_text())["args"]
    assert args[args.index("--device") + 1] == "0,1,3"
    assert (args[args.index("--divide_input") + 1] == "1") if version == "ait-6.0.RC3" else "--divide_input" not in args
    head = 0
    for folder, size in zip(folders, split):  # contiguous blocks of the natural-sorted inputs, in list order
        written = sorted(p.name for p in (tmp_path / "out" / "result" / folder).iterdir())
        assert written == sorted(f"{f.stem}_{i}.bin" for f in files[head:head + size] for i in (0, 1)), folder
        head += size
    assert result.files == 7 and result.throughput > 0

    summary = runner_summary(tmp_path / "out" / "result")
    assert summary.name == f"{folders[0]}_summary.json" and recorded_devices(summary) == ["0", "1", "3"]
    images = read_manifest(tmp_path / "in").images
    scanned = scan_results(tmp_path / "out" / "result", images, [TensorSpec("ploc", (4, 64)),
                                                                  TensorSpec("plabel", (tiny.CLASSES, 64))],
                           devices=recorded_devices(summary))
    assert scanned.present == list(images) and [f.name for f in scanned.folders] == folders
    x = np.fromfile(files[6], np.float32).reshape(3, 8, 8)
    np.testing.assert_allclose(np.fromfile(scanned.path(files[6].stem, 1), np.float32).reshape(-1, 64),
                               tiny.reference_outputs(x)[1], atol=1e-5)


def test_several_npus_need_enough_inputs_and_a_device_that_works(tmp_path, tiny, fake_ais_bench, monkeypatch):
    from ssdconvert.layout import InferError

    om = _om(tiny, tmp_path, batch=2)
    tiny.write_inputs(tmp_path / "in", 2)
    with pytest.raises(InferError, match=r"2 input file\(s\) cannot be split across 3 NPUs \(0,1,2\)"):
        run_infer(om, tmp_path / "in", tmp_path / "r1", device="0,1,2", progress=False)
    tiny.write_inputs(tmp_path / "four", 4)
    monkeypatch.setenv("FAKE_AIS_BENCH_VERSION", "standalone")  # ceil(4/3) = 2 files each: the third NPU gets none
    with pytest.raises(AisBenchError, match=r"exit code 1\): a device process failed") as info:
        run_infer(om, tmp_path / "four", tmp_path / "r2", device="0,1,2", progress=False)
    assert "Full log:" in str(info.value)
    monkeypatch.setenv("FAKE_AIS_BENCH_FAIL", "device")
    with pytest.raises(AisBenchError, match="cannot open the NPU device"):
        run_infer(om, tmp_path / "in", tmp_path / "r3", device="0,1", progress=False)


@pytest.mark.parametrize("mode, message", [
    ("device", "cannot open the NPU device"),
    ("oom", "out of memory"),
    ("load", "cannot be loaded on this device"),
    ("nosummary", "wrote no summary"),
])
def test_fake_tool_failures_map_to_clear_messages(tmp_path, tiny, fake_ais_bench, monkeypatch, mode, message):
    om = _om(tiny, tmp_path)
    tiny.write_inputs(tmp_path / "in", 2)
    monkeypatch.setenv("FAKE_AIS_BENCH_FAIL", mode)
    with pytest.raises(AisBenchError, match=message) as info:
        run_ais_bench(om, input=tmp_path / "in", output=tmp_path / "out", output_dirname="r", batchsize=4)
    assert "Full log:" in str(info.value) and "\n" not in str(info.value)


def test_wrong_input_size_and_missing_tool(tmp_path, tiny, fake_ais_bench, monkeypatch):
    om = _om(tiny, tmp_path)
    tiny.write_inputs(tmp_path / "odd", 1, manifest=False)
    (tmp_path / "odd" / "000000000001.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(AisBenchError, match="one file is 1,000 bytes and the om input is 3,072 bytes"):
        run_ais_bench(om, input=tmp_path / "odd", output=tmp_path / "out", output_dirname="r")
    monkeypatch.setenv("PYTHONPATH", "")
    with pytest.raises(AisBenchError, match="ais_bench is not installed"):
        run_ais_bench(om, output=tmp_path / "out", output_dirname="r2")


def test_old_summary_keys_and_pure_inference(tmp_path, tiny, fake_ais_bench, monkeypatch):
    om = _om(tiny, tmp_path, batch=2)
    monkeypatch.setenv("FAKE_AIS_BENCH_OLD_KEYS", "1")
    result = run_ais_bench(om, output=tmp_path / "out", output_dirname="pure", batchsize=2, loop=5)
    assert result.compute_ms["count"] == 5 and len(result.compute_ms_list) == 5
    assert sorted(p.name for p in result.output_dir.iterdir()) == ["pure_infer_data_0.bin", "pure_infer_data_1.bin"]


def test_python_api_runner(tmp_path, tiny, fake_ais_bench):
    om = _om(tiny, tmp_path)
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with AisBenchRunner(om) as runner:
        assert runner.static_batch == 4 and runner.inputs[0].dtype == "float32"
        out = runner.infer({"image": x})
        assert list(out) == ["ploc", "plabel"] and runner.last_compute_ms > 0
    np.testing.assert_allclose(out["ploc"][2], tiny.reference_outputs(x[2])[0], atol=1e-5)


def _gear_om(tmp_path, tiny_onnx, launcher, monkeypatch, gears=(2, 4)):
    """A batch-gear .om from the fake ATC (its record lists the gears; the fake ais_bench runs them)."""
    import os

    from ssdconvert.backends.ascend.compile import build_om

    launcher(tmp_path / "bin", "atc", "atc.py")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return build_om(tiny_onnx, "Ascend310P3", dynamic_batches=list(gears), output=tmp_path / "gears").primary


@pytest.mark.parametrize("version", ["standalone", "ait-6.0.RC3"])
@pytest.mark.parametrize("api", [True, False], ids=["InferSession", "subprocess"])
def test_gear_om_gets_dym_batch_from_its_build_record(tmp_path, tiny, tiny_onnx, fake_ais_bench, launcher,
                                                      monkeypatch, api, version):
    """Gear 2 of a 2,4 gear model: aclruntime wants the largest gear's bytes until set_dynamic_batchsize(2)."""
    from ssdconvert.errors import SsdConvertError

    monkeypatch.setenv("FAKE_AIS_BENCH_VERSION", version)
    if not api:
        monkeypatch.setattr("ssdconvert.backends.ascend.runner.api_available", lambda: False)
    om = _gear_om(tmp_path, tiny_onnx, launcher, monkeypatch)
    files = tiny.write_inputs(tmp_path / "ssd_bin", 5)
    result = run_infer(om, tmp_path / "ssd_bin", tmp_path / "result", batchsize=2, progress=False)
    assert any("batch gears [2, 4]" in w for w in result.warnings)
    assert (result.batch, result.runs, result.padded) == (2, 3, 1)
    assert len(list((tmp_path / "result").glob("*_0.bin"))) == 5
    x = np.fromfile(files[4], np.float32).reshape(3, 8, 8)
    np.testing.assert_allclose(np.fromfile(tmp_path / "result" / f"{files[4].stem}_0.bin", np.float32).reshape(4, 64),
                               tiny.reference_outputs(x)[0], atol=1e-5)
    if not api:
        args = json.loads(result.summary_path.read_text())["args"]
        assert args[args.index("--dymBatch") + 1] == "2"
    with pytest.raises(SsdConvertError, match="batch gears 2,4"):
        run_infer(om, tmp_path / "ssd_bin", tmp_path / "result3", batchsize=3, progress=False)


@pytest.mark.parametrize("version", ["standalone", "ait-6.0.RC3"])
def test_in_process_runner_sets_each_gear_with_set_dynamic_batchsize(tmp_path, tiny, tiny_onnx, fake_ais_bench,
                                                                     launcher, monkeypatch, version):
    monkeypatch.setenv("FAKE_AIS_BENCH_VERSION", version)
    om = _gear_om(tmp_path, tiny_onnx, launcher, monkeypatch)
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with AisBenchRunner(om, batch=2, dym_batch=True) as runner:
        assert runner.static_batch == 2
        small = runner.infer({"image": x[:2]})["ploc"]
        large = runner.infer({"image": x})["ploc"]  # the next call's batch picks its own gear
        assert runner.last_compute_ms > 0
    assert small.shape == (2, 4, 64) and large.shape == (4, 4, 64)
    np.testing.assert_allclose(small[1], tiny.reference_outputs(x[1])[0], atol=1e-5)
    np.testing.assert_allclose(large[3], tiny.reference_outputs(x[3])[0], atol=1e-5)
    with pytest.raises(RunnerError, match="cannot run batch gear 3: the dymBatch parameter is not correct"):
        AisBenchRunner(om, batch=3, dym_batch=True).activate()


def test_the_fake_session_keeps_aclruntimes_gear_contract(tmp_path, tiny, tiny_onnx, fake_ais_bench, launcher,
                                                          monkeypatch):
    from ais_bench.infer.interface import InferSession

    sample = 3 * 8 * 8 * 4
    session = InferSession(0, str(_gear_om(tmp_path, tiny_onnx, launcher, monkeypatch)))
    (image,) = session.get_inputs()
    assert image.shape == [-1, 3, 8, 8] and image.size == image.realsize == 4 * sample  # the largest gear's bytes
    two = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(RuntimeError, match=f"Check i:0 name:image in size:{2 * sample} needsize:{4 * sample}"):
        session.run([two])
    with pytest.raises(RuntimeError, match="dymBatch parameter is not correct"):
        session.set_dynamic_batchsize(3)
    session.set_dynamic_batchsize(2)
    assert session.get_inputs()[0].realsize == 2 * sample and session.run([two])[0].shape == (2, 4, 64)
    with pytest.raises(RuntimeError, match="without a gear"):  # ait: mode static drops the gear again
        session.infer([np.zeros((4, 3, 8, 8), np.float32)], mode="static")
    static = InferSession(0, str(_om(tiny, tmp_path)))
    with pytest.raises(RuntimeError, match="dynamic_batch_size parameter is not specified for model conversion"):
        static.set_dynamic_batchsize(4)


def test_the_tool_refuses_dym_batch_the_om_was_not_built_with(tmp_path, tiny, tiny_onnx, fake_ais_bench, launcher,
                                                              monkeypatch):
    tiny.write_inputs(tmp_path / "in", 4)
    common = dict(input=tmp_path / "in", output=tmp_path / "out", output_dirname="r")
    with pytest.raises(AisBenchError, match="--dymBatch needs an .om built with batch gears"):
        run_ais_bench(_om(tiny, tmp_path), dym_batch=4, **common)
    with pytest.raises(AisBenchError, match="not built with this batch gear"):
        run_ais_bench(_gear_om(tmp_path, tiny_onnx, launcher, monkeypatch), dym_batch=3, **common)


@pytest.mark.parametrize("version, has_flag", [("ait-6.0.RC3", True), ("ait-6.0.RC2", False), ("standalone", False)])
def test_divide_input_is_asked_of_the_installed_tool(fake_ais_bench, monkeypatch, version, has_flag):
    monkeypatch.setenv("FAKE_AIS_BENCH_VERSION", version)
    assert supports_divide_input() is has_flag
    assert build_argv("m.om", python="python3", device="0,1", divide_input=True)[-2:] == ["--divide_input", "1"]


def test_a_tool_that_runs_every_input_on_every_npu_is_refused(tmp_path, tiny, fake_ais_bench, monkeypatch):
    """AIT 6.0.RC3+ without --divide_input: each NPU writes every output; the adapter refuses the duplicates."""
    monkeypatch.setattr("ssdconvert.backends.ascend.ais_bench.supports_divide_input", lambda *a, **k: False)
    tiny.write_inputs(tmp_path / "in", 4)
    with pytest.raises(InferError, match="ran every input on every NPU"):
        run_infer(_om(tiny, tmp_path, batch=2), tmp_path / "in", tmp_path / "r", device="0,1", progress=False)


def test_inputs_sort_and_filter_as_ais_bench_lists_them(tmp_path, tiny, fake_ais_bench, monkeypatch):
    """utils.py natural_sort lower-cases the text between digit runs; only .bin/.BIN/.npy/.NPY are inputs."""
    from ssdconvert.layout import list_inputs

    tiny.write_inputs(tmp_path / "in", 4, names=["img10.bin", "IMG2.BIN", "Img1.bin", "skipped.Bin"], manifest=False)
    np.save(tmp_path / "in" / "img3.npy", np.zeros((3, 8, 8), np.float32))
    expected = ["Img1.bin", "IMG2.BIN", "img3.npy", "img10.bin"]
    assert [p.name for p in list_inputs(tmp_path / "in").first] == expected
    monkeypatch.setattr("ssdconvert.backends.ascend.runner.api_available", lambda: False)
    result = run_infer(_om(tiny, tmp_path, batch=1), tmp_path / "in", tmp_path / "tool", progress=False)
    filesinfo = json.loads(result.summary_path.read_text())["filesinfo"]
    assert [Path(filesinfo[str(k)]["infiles"][0]).name for k in range(4)] == expected  # the fake tool agrees
