"""`ssdconvert export --model ssd-mobilenet-v2-fpnlite`: the source is an ONNX file, checked against the
declared graph, dequantized when it is a QDQ release, given a dynamic batch and validated against the
source on ONNX Runtime; a wrong file gets one Error line and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from ssdconvert import realdata

MODEL = ["--model", "ssd-mobilenet-v2-fpnlite"]


def run(path, feeds: dict, names) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(list(names), feeds)


def batch_dims(model) -> list:
    return [v.type.tensor_type.shape.dim[0].dim_param or v.type.tensor_type.shape.dim[0].dim_value
            for v in [*model.graph.input, *model.graph.output]]


def test_the_vendored_release_exports_as_its_fp32_original(spec, st_export):
    model = onnx.load(str(st_export))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" not in ops and ops.count("DequantizeLinear") == 2  # the uint8 input's, the anchors'
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]  # one import: what ATC takes
    assert [o.name for o in model.graph.output] == list(spec.output_names)
    assert batch_dims(model) == ["-1"] * 4
    record = json.loads(Path(f"{st_export}.json").read_text())
    source = record["onnx"]["source"]
    assert source["qdq_release"] and source["opset"] == 18 and source["nodes"] == 796
    assert source["dequantized"] == {"folded_weights": 246, "removed": {"DequantizeLinear": 386, "QuantizeLinear": 143},
                                     "fp32_nodes": 267}
    assert record["nodes"] == {"before": 267, "after": 263} and record["weights"]["is_random"] is False
    validation = record["validation"]
    assert validation["passed"] and validation["atol"] == 1e-5 and {d["batch"] for d in validation["diffs"]} == {1, 2}
    assert all(d["max_abs"] <= 1e-5 for d in validation["diffs"])
    # the FP32 graph is the release's original: the INT8 release agrees with it the way INT8 does
    feeds = spec.example_feeds(3)
    fp32, int8 = run(st_export, feeds, spec.output_names), run(realdata.ST_SSD_INT8, feeds, spec.output_names)
    cosine = float((fp32[0] * int8[0]).sum() / np.sqrt((fp32[0] ** 2).sum() * (int8[0] ** 2).sum()))
    assert 0.999 < cosine < 1 and np.array_equal(fp32[2], int8[2])  # scores close, not equal; anchors exact
    snr = {a["name"]: a["snr_db"] for a in validation["qdq_release_agreement"]}
    assert snr["StatefulPartitionedCall:2"] > 30 and snr["StatefulPartitionedCall:0"] == "inf"


def static(source: Path, out: Path, batch: int) -> Path:
    """`source` with its batch axis fixed on the graph inputs and outputs."""
    model = onnx.load(str(source))
    for value in [*model.graph.input, *model.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    del model.graph.value_info[:]
    onnx.save(model, str(out))
    return out


def test_a_float_or_fixed_batch_source_is_exported_with_a_dynamic_batch(cli, spec, st_export, tmp_path):
    fixed = static(st_export, tmp_path / "fixed.onnx", 1)
    done = cli("export", *MODEL, "--checkpoint", fixed, "--bs", 3, "--output", tmp_path / "out.onnx")
    assert done.exit_code == 0, done.output
    assert "wrote" in done.output and "validation against the source graph" in done.output
    assert "the QDQ release" not in done.output  # a float source: nothing dequantized
    model = onnx.load(str(tmp_path / "out.onnx"))
    assert batch_dims(model) == ["-1"] * 4
    record = json.loads((tmp_path / "out.onnx.json").read_text())
    assert record["onnx"]["source"]["qdq_release"] is False and record["validation"]["passed"]
    feeds = spec.example_feeds(3)
    assert all(np.array_equal(a, b) for a, b in zip(run(tmp_path / "out.onnx", feeds, spec.output_names),
                                                    run(st_export, feeds, spec.output_names)))
    pinned = cli("export", *MODEL, "--checkpoint", st_export, "--bs", 4, "--static-batch", "--output",
                 tmp_path / "bs4.onnx")
    assert pinned.exit_code == 0, pinned.output
    assert batch_dims(onnx.load(str(tmp_path / "bs4.onnx"))) == [4] * 4


def other_graph(path: Path) -> Path:
    """A valid ONNX model that is not this detector: input `image` float32 [N,3,8,8], output `ploc`."""
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["ploc"])], "other",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("ploc", TensorProto.FLOAT, ["N", 3, 8, 8])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def one_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("case", ["other graph", "not onnx", "missing", "half", "opset 13"])
def test_a_wrong_file_or_option_gets_one_error_line_and_nothing_is_written(cli, st_export, tmp_path, case):
    out = tmp_path / "out" / "st.onnx"
    checkpoint = {"other graph": other_graph(tmp_path / "other.onnx"), "missing": tmp_path / "none.onnx",
                  "not onnx": tmp_path / "model.pth"}.get(case, st_export)
    (tmp_path / "model.pth").write_bytes(b"PK\x03\x04 a torch zip, not an ONNX graph")
    extra = {"half": ["--half"], "opset 13": ["--opset", "13"]}.get(case, [])
    line = one_error(cli("export", *MODEL, "--checkpoint", checkpoint, "--output", out, *extra))
    expected = {
        "other graph": f"Error: {checkpoint} is not the ssd-mobilenet-v2-fpnlite graph: its inputs are 'image' float32 "
                       "[N,3,8,8] (expected 'serving_default_input_1:0' uint8 [N,256,256,3]); its outputs are 'ploc' "
                       "float32 [N,3,8,8] (expected 'StatefulPartitionedCall:2' float32 [N,6820,81], "
                       "'StatefulPartitionedCall:1' float32 [N,6820,4], 'StatefulPartitionedCall:0' float32 [N,6820,4])",
        "not onnx": f"Error: {checkpoint} is not an ONNX model (",
        "missing": f"Error: ONNX file not found: {checkpoint}",
        "half": "Error: ssd-mobilenet-v2-fpnlite exports FP32 only",
        "opset 13": "Error: cannot convert the graph from opset 17 to 13 (onnx version converter: No Adapter From "
                    "Version $15 for Shape); choose a higher --opset",
    }[case]
    assert line.startswith(expected), line
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no file, no temporary left


def test_the_release_graph_is_not_changed_by_loading_it(spec):
    """The QDQ file stays what it is: export dequantizes a copy (the release is the vendor's INT8 candidate)."""
    from ssdconvert.checkpoints import build_model

    before = onnx.load(str(realdata.ST_SSD_INT8))
    source, weights = build_model(spec)
    assert source.release == before and weights.checkpoint == str(realdata.ST_SSD_INT8)
    assert sum(n.op_type == "QuantizeLinear" for n in source.release.graph.node) == 143
    assert not any(n.op_type == "QuantizeLinear" for n in source.graph.graph.node)
