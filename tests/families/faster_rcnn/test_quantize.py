"""`quantize` on Faster R-CNN (ONNX Runtime), heavy: ONNX Runtime's symbolic shape inference cannot complete on its
data-dependent graph (it once ended in a traceback, issue 24 §3.7); the graph is prepared with ONNX shape
inference alone, quantized, run and gated."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli

pytestmark = pytest.mark.heavy


def test_faster_rcnn_quantizes_with_onnx_shape_inference_and_is_gated(frcnn_export, frcnn_spec, tmp_path):
    import onnx

    from preprocess.run import preprocess_dataset
    from ssdconvert.synth import generate

    ds = generate(tmp_path / "coco", images=4, seed=3)
    bins = tmp_path / "bins"
    preprocess_dataset(ds.annotation_file, ds.image_dir, bins, frcnn_spec.transform, model=frcnn_spec.name,
                       input_name=frcnn_spec.input.name, workers=1, progress=False, all_images=True)
    out = tmp_path / "int8" / "frcnn_int8.onnx"
    result = CliRunner().invoke(cli, ["quantize", str(frcnn_export.onnx_path), "--calib", str(bins),
                                      "--calib-images", "2", "--gate-images", "2", "--output", str(out)])
    assert result.exit_code in (0, 1), result.output  # the gate's verdict on seeded weights, never a traceback
    assert "Traceback" not in result.output and "symbolic shape inference cannot complete" in result.output
    record = json.loads((out.parent / "frcnn_int8.onnx.json").read_text())
    assert record["settings"]["symbolic_shape_inference"] is False
    gate = record["gate"]
    assert {o["name"] for o in gate["outputs"]} == {"boxes", "scores", "labels", "num_detections"}
    assert next(o for o in gate["outputs"] if o["name"] == "labels")["equal"] is not None  # counted, not cosine
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
