"""`ssdconvert bench`: a tiny sweep writes all four reports; failures stop it and are reported."""

from __future__ import annotations

import csv
import json
import os

import pytest
from click.testing import CliRunner

from ssdconvert.backends.ascend import AscendOptions
from ssdconvert.bench import THROUGHPUT_DEFINITION, fmt_throughput, run_bench
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


def markdown_rows(md: str, header: str) -> dict[int, list[str]]:
    """batch size -> cells of the Markdown table whose header row starts with `header`."""
    lines = md.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(header))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[int(cells[0])] = cells[1:]
    return rows


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_tiny_sweep_writes_markdown_json_csv_png(tmp_path, tiny_onnx, backend):
    """The four reports say the same thing batch size by batch size, and the figures are timings of
    exactly the timed runs: warm-up left out, latency stats over `runs` calls, compute time within
    the wall time, throughput = 1000 x batch / mean latency, the best batch size in bold."""
    import matplotlib.image

    report = run_bench(tiny_onnx, backend=backend, batch_sizes=[4, 1, 2], duration=0.05, warmup=3,
                       output_dir=tmp_path, flops_per_image=1e6)
    md, data, csv_rows = _check_reports(report, [1, 2, 4])
    assert not report.stopped_early
    rows = {r["batch_size"]: r for r in data["rows"]}
    for bs, row in rows.items():
        lat = row["latency_ms"]
        assert row["status"] == "ok" and lat["count"] == row["runs"] >= 1  # warm-up runs not counted
        assert lat["min"] <= lat["median"] <= lat["max"] and lat["min"] <= lat["mean"] <= lat["max"]
        assert row["seconds"] >= 0.05 and lat["mean"] * row["runs"] <= 1000 * row["seconds"]  # ms within s
        assert row["throughput"] == pytest.approx(1000 * bs / lat["mean"])
        assert row["wall_throughput"] == pytest.approx(bs * row["runs"] / row["seconds"])
        assert row["throughput"] >= row["wall_throughput"]  # compute only <= the whole loop
        assert row["gflops_per_s"] == pytest.approx(row["throughput"] * 1e6 / 1e9)
    best = max(rows, key=lambda bs: rows[bs]["throughput"])
    seed_rows = markdown_rows(md, "| Batch size | ")
    assert set(seed_rows) == {1, 2, 4}
    for bs, (cell,) in seed_rows.items():
        shown = fmt_throughput(rows[bs]["throughput"])
        assert cell == (f"**{shown}**" if bs == best else shown), bs
    details = markdown_rows(md, "| Batch size | Throughput (samples/s)")
    for bs, cells in details.items():
        lat = rows[bs]["latency_ms"]
        assert cells[2:7] == [f"{lat[k]:.2f}" for k in ("mean", "median", "percentile(99%)", "min", "max")]
        assert int(cells[7]) == rows[bs]["runs"]
    for csv_row in csv_rows:
        row = rows[int(csv_row["batch_size"])]
        assert float(csv_row["throughput_samples_per_s"]) == pytest.approx(row["throughput"], rel=1e-12)
        assert float(csv_row["latency_mean_ms"]) == pytest.approx(row["latency_ms"]["mean"], rel=1e-12)
        assert int(csv_row["runs"]) == row["runs"] and csv_row["backend"] == backend
    pixels = matplotlib.image.imread(report.outputs["png"])
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 0.01  # a drawn plot, not blank
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
    report = run_bench(tiny_onnx, backend="ascend", options=AscendOptions(soc="Ascend310P3"), batch_sizes=[1, 2],
                       duration=0.05, output_dir=tmp_path / "bench")
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


def test_bench_hands_each_backend_its_own_options(tmp_path, tiny_onnx, monkeypatch):
    """--soc and --dym-batch come from Ascend's registry entry, --tool is every backend's compiler."""
    import ssdconvert.bench as bench

    seen = []
    monkeypatch.setattr(bench, "run_bench", lambda *args, **kwargs: seen.append(kwargs) or 1 / 0)
    CliRunner().invoke(cli, ["bench", "--model", str(tiny_onnx), "--backend", "ascend", "--soc", "Ascend310P3",
                             "--dym-batch", "--tool", "/opt/atc", "--output", str(tmp_path)])
    options = seen[0]["options"]
    assert options["ascend"] == AscendOptions(tool="/opt/atc", soc="Ascend310P3", dym_batch=True)
    assert options["onnxruntime"].tool == "/opt/atc" and options["onnxruntime"].per_channel


def test_ctrl_c_keeps_the_batch_sizes_that_ran_and_exits_130(tmp_path, tiny_onnx, monkeypatch):
    """Ctrl-C at batch 2: batch 1 is printed and kept in the reports, the error names where it stopped (no
    "stopped early at interrupted by the user"), exit 130 (issue 24 §3.1, §3.10)."""
    import ssdconvert.bench as bench

    real, calls = bench.timed_loop, []

    def loop(runner, batch, **kwargs):
        calls.append(batch)
        if batch == 2:
            raise KeyboardInterrupt
        return real(runner, batch, **kwargs)

    monkeypatch.setattr(bench, "timed_loop", loop)
    res = CliRunner().invoke(cli, ["bench", "--model", str(tiny_onnx), "--bs", "1,2,4", "--duration", "0.02",
                                   "--output", str(tmp_path)])
    assert res.exit_code == 130, res.output
    md = tmp_path / "tiny_dyn_onnxruntime.md"
    assert res.output.strip().splitlines()[-1] == (
        f"Error: interrupted by the user at batch size 2; the batch sizes that ran (1) are kept in {md} "
        "(and .json, .csv)")
    assert "| 1 | " in res.output and calls == [1, 2]  # the table of what ran is printed
    data = json.load(open(tmp_path / "tiny_dyn_onnxruntime.json"))
    assert [r["status"] for r in data["rows"]] == ["ok", "skipped", "skipped"]
    assert data["failure"] == "interrupted by the user at batch size 2"


def test_a_long_sweep_says_how_long_it_takes_before_it_starts(tmp_path, tiny_onnx):
    """200 batch sizes of 10 s: the first line says it takes at least 33 min (issue 24 §3.10)."""
    from ssdconvert.bench import estimate

    assert estimate(list(range(1, 201)), 10.0, 1, builds=False) == (
        "200 batch size(s) x 10 s: at least 33 min of timed runs, plus 1 warm-up run(s) per batch size")
    assert "at least 2.5 h" in estimate([1] * 900, 10.0, 1, builds=True)
    res = CliRunner().invoke(cli, ["bench", "--model", str(tiny_onnx), "--bs", "1,2", "--duration", "0.02",
                                   "--output", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "2 batch size(s) x 0.02 s: at least 0.04 s of timed runs" in res.output.split("batch 1:")[0]
