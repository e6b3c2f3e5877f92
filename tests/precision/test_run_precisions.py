"""`ssdconvert run --precisions`: every backend x precision side by side, each lower precision gated."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ssdconvert.cli import cli


def test_run_measures_precisions_side_by_side_and_fails_the_run_on_a_failed_gate(tmp_path):
    workdir = tmp_path / "run"
    # BF16 keeps ~40 dB of SNR on the seeded model: a 45 dB gate fails it (INT8 is gated in test_quantize)
    result = CliRunner().invoke(cli, ["run", "--images", "3", "--backends", "onnxruntime,openvino", "--precisions",
                                      "fp32,bf16", "--bs", "1", "--bench-duration", "0.1", "--workers", "1",
                                      "--min-snr", "45", "--workdir", str(workdir)])
    assert result.exit_code == 1, result.output
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: 1 backend(s) did not pass: openvino@bf16: failed the accuracy gate against "
                            "ONNX Runtime FP32: ")
    report = json.loads((workdir / "report.json").read_text())
    rows = {(r["backend"], r["precision"]): r for r in report["precision"]}
    assert rows[("openvino", "bf16")]["gate"] == "FAILED" and rows[("openvino", "fp32")]["gate"] == "–"
    assert rows[("onnxruntime", "fp32")]["gate"] == "reference"
    assert rows[("onnxruntime", "bf16")]["best_throughput"] is None  # not built: skipped, not a failure
    skipped = next(s for s in report["stages"] if s["name"] == "compile:onnxruntime@bf16")
    assert skipped["unsupported"] and "does not build bf16" in skipped["figure"]
    md = (workdir / "report.md").read_text()
    assert "## Precision" in md and "describe numerical agreement only" in md
    assert (workdir / "precision.png").stat().st_size > 0
    gate = json.loads((workdir / "gate" / "openvino@bf16.json").read_text())
    assert gate["passed"] is False and gate["weights"] == "random"
    assert 30 < float(gate["outputs"][0]["snr_db"]) < 45  # BF16 really ran, and really is below the bar
    layers = json.loads((workdir / "compare" / "openvino@bf16" / "compare.json").read_text())  # compared automatically
    assert gate["compare"] == str(workdir / "compare" / "openvino@bf16" / "compare.json")
    assert layers["candidate"].startswith("openvino:") and layers["first_failing"]["op_type"]
    assert f"layer report: {gate['compare']}" in error
    assert {o["name"] for o in gate["outputs"]} == {"ploc", "plabel"}
