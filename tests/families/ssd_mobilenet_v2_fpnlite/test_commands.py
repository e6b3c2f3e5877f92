"""Every command with ssd-mobilenet-v2-fpnlite: infer, openvino, atc and cnnl (through the fakes), bench, run,
quantize (calibrated on the image folder) and compare. The real model on the real images; each check
compares a backend's outputs with ONNX Runtime's on the same bins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from preprocess.manifest import read_manifest

SCORES, OFFSETS, ANCHORS = 6820 * 81 * 4, 6820 * 4 * 4, 6820 * 4 * 4  # bytes per image of each output


def outputs_of(folder: Path, stems) -> list[np.ndarray]:
    return [np.fromfile(folder / f"{stem}_{i}.bin", np.float32) for stem in stems for i in range(3)]


def assert_same_outputs(folder: Path, reference: Path, bins: Path, atol: float) -> None:
    stems = [r.stem for r in read_manifest(bins).images]
    got, expected = outputs_of(folder, stems), outputs_of(reference, stems)
    assert [g.size for g in got] == [e.size for e in expected]
    assert max(float(np.abs(g - e).max()) for g, e in zip(got, expected)) <= atol


def test_infer_writes_the_three_outputs_per_image(val_results, val_bins):
    stems = [r.stem for r in read_manifest(val_bins).images]
    assert len(stems) == 43
    assert [(val_results / f"{stems[0]}_{i}.bin").stat().st_size for i in range(3)] == [SCORES, OFFSETS, ANCHORS]
    assert Path(f"{val_results}_summary.json").is_file() and len(list(val_results.glob("*.bin"))) == 3 * 43


def test_openvino_builds_the_nhwc_uint8_model_and_agrees_with_onnx_runtime(cli, st_export, val_bins, val_results,
                                                                            tmp_path):
    built = cli("openvino", "--onnx", st_export, "--output", tmp_path / "ov" / "st")
    assert built.exit_code == 0, built.output
    assert "--input=serving_default_input_1:0[?,256,256,3]" in built.output
    ran = cli("infer", "--model", tmp_path / "ov" / "st.xml", "--input", val_bins, "--output", tmp_path / "res",
              "--batchsize", 8)
    assert ran.exit_code == 0, ran.output
    assert_same_outputs(tmp_path / "res", val_results, val_bins, atol=1e-3)


def test_atc_keeps_the_uint8_input_and_the_fake_ais_bench_runs_it(cli, st_export, val_bins, val_results, tmp_path):
    built = cli("atc", "--onnx", st_export, "--soc", "Ascend310P3", "--bs", 8, "--output", tmp_path / "om" / "st")
    assert built.exit_code == 0, built.output  # the fake refuses several opset imports (E16005): export keeps one
    record = json.loads((tmp_path / "om" / "st.om.json").read_text())
    assert record["input"]["shape"] == [8, 256, 256, 3] and record["input"]["dtype"] == "uint8"
    # ATC splits --input_shape at the last ':' (hicann/ge SplitInputShape, rfind), so a TF tensor name passes
    assert "--input_shape=serving_default_input_1:0:8,256,256,3" in built.output
    ran = cli("infer", "--model", tmp_path / "om" / "st.om", "--input", val_bins, "--output", tmp_path / "res")
    assert ran.exit_code == 0, ran.output
    assert_same_outputs(tmp_path / "res", val_results, val_bins, atol=1e-5)


def test_cnnl_builds_for_nhwc_and_the_fake_magicmind_runs_it(cli, st_export, val_bins, val_results, tmp_path):
    built = cli("cnnl", "--onnx", st_export, "--bs", 8, "--output", tmp_path / "mm" / "st")
    assert built.exit_code == 0, built.output
    assert "--input_dims 8 256 256 3" in built.output
    ran = cli("infer", "--model", tmp_path / "mm" / "st", "--input", val_bins, "--output", tmp_path / "res")
    assert ran.exit_code == 0, ran.output
    assert_same_outputs(tmp_path / "res", val_results, val_bins, atol=1e-5)


def test_bench_sweeps_the_model(cli, st_export, tmp_path):
    done = cli("bench", "--model", st_export, "--bs", "1,2", "--duration", 0.2, "--output", tmp_path / "bench")
    assert done.exit_code == 0, done.output
    table = (tmp_path / "bench" / "st_onnxruntime.md").read_text()
    assert "| 1 |" in table and "| 2 |" in table


def test_run_chains_every_stage_with_the_real_weights(cli, tmp_path):
    done = cli("run", "--model", "ssd-mobilenet-v2-fpnlite", "--images", 4, "--backends", "onnxruntime", "--bs", "1,2",
               "--bench-duration", 0.1, "--workers", 1, "--workdir", tmp_path / "run")
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert "max abs diff vs the source graph 0" in stages["export"]["figure"]
    assert "AP@[.5:.95]" in stages["eval:onnxruntime"]["figure"] and not stages["eval:onnxruntime"]["failed"]
    assert report["random_weights"] is False
    assert "random weights" not in (tmp_path / "run" / "report.md").read_text()


@pytest.fixture(scope="module")
def int8(tmp_path_factory, st_export, calib_bins):
    """`quantize` of the export, calibrated on the image folder (8 of its 85 images, gate on 4 others)."""
    from click.testing import CliRunner

    from ssdconvert.cli import cli

    out = tmp_path_factory.mktemp("int8") / "st_int8.onnx"
    done = CliRunner().invoke(cli, ["quantize", str(st_export), "--calib", str(calib_bins), "--calib-images", "8",
                                    "--gate-images", "4", "--output", str(out)])
    return out, done


def test_quantize_calibrates_on_the_image_folder(int8, calib_bins):
    out, done = int8
    assert done.exit_code in (0, 1) and "Traceback" not in done.output, done.output
    assert out.is_file() and "accuracy gate:" in done.output
    record = json.loads(Path(f"{out}.json").read_text())
    names = [r.stem for r in read_manifest(calib_bins).images]
    assert record["calibration"]["folder"] == str(calib_bins.resolve()) and record["calibration"]["images"] == 8
    assert set(record["calibration"]["stems"]) <= set(names) and record["gate"]["images"] == 4
    assert record["gate"]["real_map"] is None  # no annotations: agreement figures only


def test_compare_finds_where_the_int8_model_departs(cli, int8, st_export, calib_bins, tmp_path):
    out, _ = int8
    done = cli("compare", st_export, out, "--input", calib_bins, "--images", 1, "--output", tmp_path / "cmp")
    assert done.exit_code in (0, 1) and "Traceback" not in done.output, done.output
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert report and (tmp_path / "cmp" / "compare.png").is_file()
