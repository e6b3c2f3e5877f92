"""`ssdconvert run` on the vendored real set (what `make demo` runs): an annotation file with its image folder,
an image folder that calibrates the INT8 build, and a ready-made release run as is beside the builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import ssdconvert.pipeline as pipeline
from ssdconvert import realdata
from ssdconvert.cli import cli
from ssdconvert.pipeline.report import AP_GATE


heavy = pytest.mark.heavy  # ~30 s on 2 cores (export, INT8 calibration on 85 images, three candidates)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("real") / "run"
    calibrated_on = []
    original = pipeline._compile

    def spy(target, onnx, wd, cfg, precision, bins):
        calibrated_on.append((precision, bins))
        return original(target, onnx, wd, cfg, precision, bins)

    mp = pytest.MonkeyPatch()
    mp.setattr(pipeline, "_compile", spy)
    try:
        result = CliRunner().invoke(cli, [
            "run", "--model", "ssd-mobilenet-v2-fpnlite", "--annotation", str(realdata.VAL_ANNOTATION),
            "--image-dir", str(realdata.VAL_IMAGES), "--calib", str(realdata.CALIBRATION_IMAGES),
            "--release", f"vendor-int8={realdata.ST_SSD_INT8}", "--backends", "onnxruntime",
            "--precisions", "fp32,int8", "--bs", "8", "--bench-duration", "0.1", "--workdir", str(workdir)])
    finally:
        mp.undo()
    return result, workdir, calibrated_on


@heavy
def test_real_run_scores_every_candidate_on_the_real_annotations(real_run):
    result, workdir, _ = real_run
    report = json.loads((workdir / "report.json").read_text())
    accuracy = {row["backend"]: row for row in report["accuracy"]}
    assert set(accuracy) == {"onnxruntime", "onnxruntime@int8", "onnxruntime@vendor-int8"}, result.output
    assert accuracy["onnxruntime"]["AP"] == pytest.approx(0.2024, abs=5e-5)  # the README's real-data tour figure
    release = accuracy["onnxruntime@vendor-int8"]
    assert 0 < release["AP"] != accuracy["onnxruntime"]["AP"]
    assert release["delta_vs_onnxruntime"] == pytest.approx(release["AP"] - accuracy["onnxruntime"]["AP"])
    assert "| onnxruntime | vendor-int8 |" in (workdir / "report.md").read_text()
    # the exit code follows the AP gate: same precision |delta| <= AP_GATE, a build or release at most 1 AP point
    beyond = any(abs(r["delta_vs_onnxruntime"]) > AP_GATE if "@" not in name else r["delta_vs_onnxruntime"] < -0.01
                 for name, r in accuracy.items())
    assert result.exit_code == (1 if beyond else 0), result.output


@heavy
def test_the_int8_build_is_calibrated_on_the_calibration_folder(real_run):
    _, workdir, calibrated_on = real_run
    (precision, bins), = [c for c in calibrated_on if c[0] == "int8"]
    manifest = json.loads((Path(bins) / "manifest.json").read_text())
    names = sorted(Path(e["file_name"]).name for e in manifest["images"])
    assert names == [p.name for p in realdata.images(realdata.CALIBRATION_IMAGES)]


@heavy
def test_release_bench_runs_the_file_as_is(real_run):
    _, workdir, _ = real_run
    report = json.loads((workdir / "report.json").read_text())
    assert report["throughput"]["onnxruntime@vendor-int8"]


@pytest.mark.parametrize("args, message", [
    (["--annotation", str(realdata.VAL_ANNOTATION)], "go together"),
    (["--release", "vendor int8=x.onnx"], "letters, digits"),
    (["--release", "no-path"], "LABEL=PATH"),
])
def test_bad_real_data_options_are_one_line_errors(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["run", *args, "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2 and message in result.output
