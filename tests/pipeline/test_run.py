"""End to end: `ssdconvert run` on synthetic data with ONNX Runtime, OpenVINO and ATC (fake)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli

ARGS = ["run", "--images", "6", "--bs", "1,2", "--bench-duration", "0.2", "--workers", "1",
        "--backends", "onnxruntime,openvino,atc"]
BACKENDS = ("onnxruntime", "openvino", "atc")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, fake_vendor_env):
    workdir = tmp_path_factory.mktemp("run")
    result = CliRunner(env=fake_vendor_env).invoke(cli, [*ARGS, "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    return workdir, result


def load_report(workdir: Path) -> dict:
    return json.loads((workdir / "report.json").read_text())


def test_every_artefact_exists(first_run):
    workdir, _ = first_run
    for path in ["report.md", "report.json", "throughput.png", "ssd_bin/manifest.json", "ssd_resnet34.onnx",
                 "ssd_resnet34.onnx.json", "annotations/bbox_only_instances_val2017.json",
                 "openvino/ssd_resnet34.xml", "openvino/ssd_resnet34.bin", "atc/ssd_resnet34_bs2.om",
                 "atc/ssd_resnet34_bs2.om.json"]:
        assert (workdir / path).is_file(), path
    annotated = len(json.loads((workdir / "ssd_bin" / "manifest.json").read_text())["images"])
    assert annotated == len(list((workdir / "ssd_bin").glob("*.bin")))
    for name in BACKENDS:
        assert (workdir / "results" / f"{name}_summary.json").is_file()
        assert len(list((workdir / "results" / name).glob("*_1.bin"))) == annotated
        assert (workdir / "eval" / name / "eval.json").is_file()
        for ext in ("md", "json", "csv", "png"):
            assert (workdir / "bench" / f"{name}.{ext}").is_file(), (name, ext)


def test_report_is_consistent_with_the_files(first_run, tmp_path):
    workdir, result = first_run
    report = load_report(workdir)
    assert report["random_weights"] is True
    assert "random weights: meaningless" in (workdir / "report.md").read_text()
    export = next(s for s in report["stages"] if s["name"] == "export")
    sidecar = json.loads((workdir / "ssd_resnet34.onnx.json").read_text())
    assert export["data"]["max_abs_diff"] == max(d["max_abs"] for d in sidecar["validation"]["diffs"])
    for row in report["accuracy"]:
        fresh = CliRunner().invoke(cli, ["eval", "--bin_path", str(workdir / "results" / row["backend"]),
                                         "--output", str(tmp_path / f"{row['backend']}.json")])
        assert fresh.exit_code == 0, fresh.output
        assert json.loads((tmp_path / f"{row['backend']}.json").read_text())["stats"]["AP"] == row["AP"]
    for name in BACKENDS:
        bench = json.loads((workdir / "bench" / f"{name}.json").read_text())
        expected = {str(r["batch_size"]): r["throughput"] for r in bench["rows"] if r["status"] == "ok"}
        assert report["throughput"][name] == expected and set(expected) == {"1", "2"}
    assert "| batch size | onnxruntime | openvino | atc |" in result.output


def test_accuracy_gate_compares_with_onnxruntime(first_run):
    report = load_report(first_run[0])
    rows = {r["backend"]: r for r in report["accuracy"]}
    assert set(rows) == set(BACKENDS)
    assert rows["onnxruntime"]["delta_vs_onnxruntime"] == 0.0
    assert all(abs(r["delta_vs_onnxruntime"]) <= report["ap_gate"] and r["gate"] == "ok" for r in rows.values())


def test_second_run_reuses_every_stage(first_run, fake_vendor_env):
    workdir, _ = first_run
    started = time.perf_counter()
    result = CliRunner(env=fake_vendor_env).invoke(cli, [*ARGS, "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    stages = load_report(workdir)["stages"]
    assert len(stages) == 4 + 4 * len(BACKENDS)
    assert all(s["reused"] for s in stages), [s["name"] for s in stages if not s["reused"]]
    assert "reused (inputs unchanged)" in result.output
    assert time.perf_counter() - started < 30


def test_changed_input_reruns_only_downstream_stages(first_run, fake_vendor_env, tmp_path):
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(first_run[0], workdir)
    state = json.loads((workdir / "pipeline_state.json").read_text())
    assert "bench:onnxruntime" in state
    result = CliRunner(env=fake_vendor_env).invoke(
        cli, [*ARGS[:-1], "onnxruntime", "--bench-duration", "0.3", "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    statuses = {s["name"]: s["reused"] for s in load_report(workdir)["stages"]}
    assert statuses["export"] and statuses["infer:onnxruntime"] and statuses["eval:onnxruntime"]
    assert statuses["bench:onnxruntime"] is False


def test_missing_tools_are_skipped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    from ssdconvert.pipeline.backends import backend

    assert "atc not found" in backend("atc").missing_tool()
    assert backend("onnxruntime").missing_tool() is None


def test_unknown_backend_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--backends", "tensorrt", "--workdir", str(tmp_path)])
    assert result.exit_code == 1 and "unknown backend(s) tensorrt" in result.output


def test_second_detector_runs_end_to_end(tmp_path):
    """ssd-resnet50 goes through every stage with no model-specific code in the pipeline."""
    result = CliRunner().invoke(cli, ["run", "--model", "ssd-resnet50", "--images", "4", "--bs", "1,2",
                                      "--bench-duration", "0.2", "--workers", "1", "--backends", "onnxruntime",
                                      "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = load_report(tmp_path)
    assert report["config"]["model_name"] == "ssd-resnet50"
    assert [s["name"] for s in report["stages"]] == [
        "data", "prepare-json", "preprocess", "export", "compile:onnxruntime", "infer:onnxruntime",
        "eval:onnxruntime", "bench:onnxruntime"]
    assert json.loads((tmp_path / "ssd_resnet50.onnx.json").read_text())["model"] == "ssd-resnet50"
    assert json.loads((tmp_path / "eval" / "onnxruntime" / "eval.json").read_text())["model"] == "ssd-resnet50"
    assert set(report["throughput"]["onnxruntime"]) == {"1", "2"}


def test_atc_tool_option_finds_atc_outside_path(tmp_path, monkeypatch, launcher, fake_vendor_env):
    from ssdconvert.pipeline.backends import backend

    tool = launcher(tmp_path / "cann", "atc", "atc.py")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for var in ("PYTHONPATH", "SSDCONVERT_AIS_BENCH_PYTHON"):
        monkeypatch.setenv(var, fake_vendor_env[var])
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    assert backend("atc").missing_tool(str(tool)) is None
    assert "atc not found" in backend("atc").missing_tool()
