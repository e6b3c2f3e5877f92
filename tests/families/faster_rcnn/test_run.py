"""`ssdconvert run --model faster-rcnn-r101-fpn` end to end on synthetic data (heavy): both variants on ONNX
Runtime, OpenVINO and Ascend (the fake ATC and ais_bench); the full-size default canvas through `export`."""

from __future__ import annotations

import json
import platform
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli

pytestmark = pytest.mark.heavy

IMAGES = 4
BACKENDS = ("onnxruntime", "openvino", "ascend")


@pytest.fixture(scope="module")
def run(tmp_path_factory, fake_vendor_env, with_fakes):
    workdir = tmp_path_factory.mktemp("frcnn_run")
    args = ["run", "--model", "faster-rcnn-r101-fpn", "--canvas", "128x160", "--images", str(IMAGES), "--bs", "1,2",
            "--bench-duration", "0.1", "--workers", "1", "--backends", ",".join(BACKENDS), "--workdir", str(workdir)]
    with with_fakes():
        result = CliRunner(env=fake_vendor_env).invoke(cli, args)
    assert result.exit_code == 0, result.output
    return SimpleNamespace(workdir=workdir, output=result.output,
                           report=json.loads((workdir / "report.json").read_text()))


def test_every_backend_evaluated_every_image_and_agrees_with_onnx_runtime(run):
    accuracy = {row["backend"]: row for row in run.report["accuracy"]}
    assert set(accuracy) >= set(BACKENDS)
    for backend in BACKENDS:
        assert accuracy[backend]["gate"] in ("ok", "n/a"), accuracy[backend]
        evaluated = json.loads((run.workdir / "eval" / backend / "eval.json").read_text())
        assert evaluated["images"] == IMAGES and evaluated["detections"] > 0  # every image, annotated or not
    manifest = json.loads((run.workdir / "ssd_bin" / "manifest.json").read_text())
    assert manifest["version"] == 3 and len(manifest["images"]) == IMAGES
    assert manifest["images"][0]["resized_width"] and (run.workdir / "ssd_bin" / "im_info").is_dir()


def test_both_variants_are_built_and_benchmarked_on_every_backend(run):
    stages = {s["name"]: s for s in run.report["stages"]}
    assert not any(s["failed"] for s in stages.values()), [s for s in stages.values() if s["failed"]]
    assert "export-split" in stages and (run.workdir / "faster_rcnn_r101_fpn_split.composite.json").is_file()
    for backend in BACKENDS:
        for name in (backend, f"{backend}:split"):
            assert set(stages[f"bench:{name}"]["data"]["throughput"]) == {"1", "2"}, name
    assert set(run.report["throughput"]) >= {"onnxruntime", "onnxruntime:split", "ascend", "ascend:split"}
    # ATC built the fixed graph as a dynamic-shape om (NonMaxSuppression) and each split part at its own batch
    fixed = stages["compile:ascend"]["outputs"][0]
    assert fixed.endswith(f"_linux_{platform.machine()}.om")
    parts = json.loads(open(stages["compile:ascend:split"]["outputs"][0]).read())["parts"]
    assert [p["rows_per_image"] for p in parts] == [1, 1000]
    assert [p["file"] for p in parts] == ["faster_rcnn_r101_fpn_split_dense_bs2.om",
                                          "faster_rcnn_r101_fpn_split_head_bs2000.om"]


def test_the_default_canvas_exports_and_validates_through_the_cli(tmp_path):
    """1344x1344 (~480 GMAC per image), simplified with onnxslim, validated at batch 1 and 2; OpenVINO runs it."""
    import openvino as ov

    out = tmp_path / "frcnn.onnx"
    result = CliRunner().invoke(cli, ["export", "--model", "faster-rcnn-r101-fpn", "--bs", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "fixed variant, canvas 1344x1344, dynamic batch, opset 16" in result.output
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    reports = sidecar["validation"]["reports"]
    assert [r["images"] for r in reports] == [1, 2] and all(r["missing"] == r["extra"] == 0 for r in reports)
    assert sidecar["onnx"]["canvas"] == [1344, 1344] and sidecar["weights"]["demo"] is True
    from ssdconvert.zoo import get_spec

    feeds = get_spec("faster-rcnn-r101-fpn").example_feeds(1)
    compiled = ov.Core().compile_model(str(out), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(feeds)
    import onnxruntime as ort

    expected = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feeds)
    count = int(expected[3][0])
    assert count > 0 and int(got[compiled.output("num_detections")][0]) == count
    np.testing.assert_allclose(got[compiled.output("scores")][0, :count], expected[1][0, :count], atol=1e-4)
