"""`ssdconvert run --precisions`: every backend x precision side by side, each lower precision gated.

Runs on this CPU and on it made AVX2-only (`cpu_kind`): where OpenVINO's CPU can compute bf16 the
bf16 cell is measured and gated; where it cannot, the cell is skipped with the reason and, bf16
having run nowhere, the run fails saying so. Both branches share one work directory, so the second
run reuses every stage the probe does not decide.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("precisions") / "run"


def test_run_measures_precisions_side_by_side_and_fails_the_run_on_a_failed_gate(cpu_kind, workdir):
    from ssdconvert.backends.openvino.device import refusal

    refused = refusal("bf16")
    if cpu_kind == "this-cpu" and refused:
        pytest.skip(f"bf16 arithmetic needs a CPU with native BF16 ({refused}); the avx2-only case tests the "
                    "refusal")
    # BF16 keeps ~40 dB of SNR on the seeded model: a 45 dB gate fails it (INT8 is gated in test_quantize)
    result = CliRunner().invoke(cli, ["run", "--images", "3", "--backends", "onnxruntime,openvino", "--precisions",
                                      "fp32,bf16", "--bs", "1", "--bench-duration", "0.1", "--workers", "1",
                                      "--min-snr", "45", "--workdir", str(workdir)])
    assert result.exit_code == 1, result.output
    error = result.output.strip().splitlines()[-1]
    report = json.loads((workdir / "report.json").read_text())
    rows = {(r["backend"], r["precision"]): r for r in report["precision"]}
    stages = {s["name"]: s for s in report["stages"]}
    assert rows[("onnxruntime", "fp32")]["gate"] == "reference"
    assert rows[("openvino", "fp32")]["best_throughput"] > 0 and rows[("openvino", "fp32")]["gate"] == "–"
    assert rows[("onnxruntime", "bf16")]["best_throughput"] is None  # not built: skipped, not a failure
    skipped = stages["compile:onnxruntime@bf16"]
    assert skipped["unsupported"] and "does not build bf16" in skipped["figure"]
    if refused:
        _check_refused(error, stages, rows)
    else:
        _check_gated(error, workdir, rows)


def _check_refused(error: str, stages: dict, rows: dict) -> None:
    """No BF16: openvino@bf16 is skipped with the probe's reason (never measured as bf16), and bf16 having run on
    no backend, the run fails naming both reasons."""
    cell = stages["compile:openvino@bf16"]
    assert cell["skipped"] and "OpenVINO's CPU cannot compute bf16 here" in cell["figure"]
    assert "lack BF16" in cell["figure"]
    assert not any(name.startswith(("infer:openvino@bf16", "bench:openvino@bf16")) for name in stages)
    assert rows[("openvino", "bf16")]["best_throughput"] is None
    assert error.startswith("Error: bf16 was measured on no backend: onnxruntime@bf16 skipped: ONNX Runtime does not "
                            "build bf16")
    assert "openvino@bf16 skipped: OpenVINO's CPU cannot compute bf16 here" in error


def _check_gated(error: str, workdir, rows: dict) -> None:
    """BF16: openvino@bf16 is measured, gated, fails the 45 dB bar and is compared layer by layer."""
    assert error.startswith("Error: 1 backend(s) did not pass: openvino@bf16: failed the accuracy gate against "
                            "ONNX Runtime FP32: ")
    assert rows[("openvino", "bf16")]["gate"] == "FAILED"
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
