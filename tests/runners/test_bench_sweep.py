"""`ssdconvert bench`: a tiny sweep writes all four reports; failures stop it and are reported."""

from __future__ import annotations

import csv
import json
import os

import pytest
from click.testing import CliRunner

from ssdconvert.bench import THROUGHPUT_DEFINITION, run_bench
from ssdconvert.cli import cli


def _check_reports(report, sizes):
    paths = report.outputs
    assert set(paths) == {"md", "json", "csv", "png"}
    md = open(paths["md"]).read()
    assert "| Batch size | " in md and THROUGHPUT_DEFINITION in md
    for bs in sizes:
        assert f"\n| {bs} | " in md
    data = json.load(open(paths["json"]))
    assert data["throughput_definition"] == THROUGHPUT_DEFINITION
    machine = data["machine"]
    assert machine["cpu_model"] and machine["logical_cores"] >= 1 and "onnxruntime" in machine["versions"]
    assert data["runtime"]
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [int(r["batch_size"]) for r in rows] == sizes
    assert all(r["throughput_definition"] == THROUGHPUT_DEFINITION for r in rows)
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    return md, data, rows


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_tiny_sweep_writes_markdown_json_csv_png(tmp_path, tiny_onnx, backend):
    report = run_bench(tiny_onnx, backend=backend, batch_sizes=[4, 1, 2], duration=0.05, output_dir=tmp_path,
                       flops_per_image=1e6)
    md, data, rows = _check_reports(report, [1, 2, 4])
    assert not report.stopped_early
    for row in data["rows"]:
        assert row["status"] == "ok" and row["runs"] >= 1
        assert row["throughput"] == pytest.approx(1000 * row["batch_size"] / row["latency_ms"]["mean"])
        assert set(row["latency_ms"]) == {"min", "max", "mean", "median", "percentile(99%)", "count"}
        assert row["gflops_per_s"] == pytest.approx(row["throughput"] * 1e6 / 1e9)
    assert "**" in md  # the best batch size is bold, as in the published table
    assert report.outputs["md"].endswith(f"tiny_dyn_{backend}.md")


def test_a_failing_batch_size_stops_the_sweep_and_is_reported(tmp_path, tiny_onnx_bs4):
    res = CliRunner().invoke(cli, ["bench", "--model", str(tiny_onnx_bs4), "--backend", "openvino", "--bs", "4,8,16",
                                   "--duration", "0.05", "--output", str(tmp_path)])
    assert res.exit_code == 1
    assert "stopped early at batch size 8" in res.output and "static batch of 4" in res.output
    data = json.load(open(tmp_path / "tiny_bs4_openvino.json"))
    assert [r["status"] for r in data["rows"]] == ["ok", "failed", "skipped"]
    assert data["stopped_early"] and "batch size 8" in data["failure"]
    md = open(tmp_path / "tiny_bs4_openvino.md").read()
    assert "| 8 | failed: " in md and "Stopped early" in md
    assert (tmp_path / "tiny_bs4_openvino.png").is_file()


def test_static_onnx_on_onnxruntime_skips_other_sizes(tmp_path, tiny_onnx_bs4):
    report = run_bench(tiny_onnx_bs4, batch_sizes=[1, 4], duration=0.02, output_dir=tmp_path, plot=False)
    assert [r.status for r in report.rows] == ["skipped", "ok"]


def _atc_on_path(tmp_path, monkeypatch, launcher):
    launcher(tmp_path / "bin", "atc", "atc.py")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize("api", [True, False], ids=["InferSession", "subprocess"])
def test_ascend_sweep_builds_one_om_per_batch_size(tmp_path, tiny, tiny_onnx, fake_ais_bench, monkeypatch, api,
                                                   launcher):
    _atc_on_path(tmp_path, monkeypatch, launcher)
    if not api:
        monkeypatch.setattr("ssdconvert.backends.ascend.runner.api_available", lambda: False)
    report = run_bench(tiny_onnx, backend="ascend", soc="Ascend310P3", batch_sizes=[1, 2], duration=0.05,
                       output_dir=tmp_path / "bench")
    assert not report.stopped_early, report.failure
    _check_reports(report, [1, 2])
    for row in report.rows:
        assert row.artefact.endswith(f"tiny_dyn_bs{row.batch_size}.om")
        assert any(f"--input_shape=image:{row.batch_size},3,8,8" in c for c in row.build_command)
        assert row.throughput > 0 and row.runs >= 1
    assert "ais_bench Ascend310P3" in open(report.outputs["md"]).read()


def test_ascend_sweep_needs_a_soc(tmp_path, tiny_onnx):
    res = CliRunner().invoke(cli, ["bench", "--model", str(tiny_onnx), "--backend", "ais_bench", "--output",
                                   str(tmp_path)])
    assert res.exit_code == 1 and "needs --soc" in res.output
