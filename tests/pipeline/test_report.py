"""The run report's accuracy gate and throughput table, on hand-made stage results."""

from __future__ import annotations

import pytest

from ssdconvert.pipeline import PipelineReport
from ssdconvert.pipeline.cache import StageResult
from ssdconvert.pipeline.report import AP_GATE, accuracy_rows, markdown, throughput_by_backend


def report_with(aps: dict[str, float]) -> PipelineReport:
    report = PipelineReport(config={"model_name": "ssd-resnet34", "workdir": "w"}, random_weights=False)
    for name, ap in aps.items():
        report.stages.append(StageResult(f"eval:{name}", "k", 1.0, "", {"stats": {"AP": ap, "AP50": ap + 0.2}}))
        report.stages.append(StageResult(f"bench:{name}", "k", 1.0, "", {"throughput": {"1": 10.0, "8": 20.0}}))
    return report


def test_gate_flags_a_backend_beyond_the_tolerance():
    rows = {r["backend"]: r for r in accuracy_rows(report_with(
        {"onnxruntime": 0.2300, "openvino": 0.2300 + AP_GATE / 2, "ascend": 0.2300 - 0.003}))}
    assert rows["onnxruntime"]["gate"] == "ok" and rows["openvino"]["gate"] == "ok"
    assert rows["ascend"]["gate"] == "FLAGGED"
    assert rows["ascend"]["delta_vs_onnxruntime"] == pytest.approx(-0.003)


def test_a_lower_precision_or_release_may_lose_the_gates_map_drop_but_no_more():
    """`backend@tag` rows are judged by agreement.Thresholds.max_map_drop (1.0 AP point = 0.01 AP), not by the
    same-precision 0.002: -0.0095 passes, -0.0105 is flagged, a gain passes."""
    rows = {r["backend"]: r for r in accuracy_rows(report_with(
        {"onnxruntime": 0.2024, "onnxruntime@int8": 0.2024 - 0.0095, "openvino@int8": 0.2024 - 0.0105,
         "onnxruntime@vendor-int8": 0.2094}))}
    assert rows["onnxruntime@int8"]["gate"] == "ok" and rows["onnxruntime@vendor-int8"]["gate"] == "ok"
    assert rows["openvino@int8"]["gate"] == "FLAGGED"


def test_gate_needs_the_onnxruntime_reference():
    (row,) = accuracy_rows(report_with({"ascend": 0.23}))
    assert row["gate"] == "n/a" and row["delta_vs_onnxruntime"] is None


def test_markdown_shows_the_gate_and_the_throughput_table():
    report = report_with({"onnxruntime": 0.23, "ascend": 0.226})
    assert throughput_by_backend(report) == {"onnxruntime": {1: 10.0, 8: 20.0}, "ascend": {1: 10.0, 8: 20.0}}
    text = markdown(report, plot=None)
    assert "| ascend | 0.2260 | 0.4260 | -0.0040 | FLAGGED |" in text
    assert "| 8 | 20.0 | 20.0 |" in text
    assert "meaningless" not in text  # real weights: no random-weights label


def test_a_variants_bench_has_its_own_precision_row():
    """run benchmarks a family's further variants as `bench:<backend>:<variant>`; the precision table keeps
    them apart from the backend's main model (and does not take the variant for a backend name)."""
    from ssdconvert.pipeline.report import precision_rows

    report = report_with({"onnxruntime": 0.23})
    report.stages.append(StageResult("bench:onnxruntime:split", "k", 1.0, "", {"throughput": {"1": 7.0}}))
    report.stages.append(StageResult("bench:openvino@bf16", "k", 1.0, "", {"throughput": {"1": 30.0}}))
    rows = {r["label"]: (r["backend"], r["precision"], r["best_throughput"]) for r in precision_rows(report)}
    assert rows == {"onnxruntime": ("onnxruntime", "fp32", 20.0), "onnxruntime:split": ("onnxruntime:split", "fp32", 7.0),
                    "openvino@bf16": ("openvino", "bf16", 30.0)}
