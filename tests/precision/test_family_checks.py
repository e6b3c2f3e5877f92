"""The detector family of the model, of the input folder and of --model must agree, or the command stops
naming both before doing anything (issue 24 §3.4, §3.8): infer, eval, quantize and compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli


@pytest.fixture(scope="module")
def vgg_bins(tmp_path_factory) -> Path:
    """Synthetic images preprocessed for ssd-vgg16 (BGR, mmdetection's mean and std)."""
    from preprocess.run import preprocess_dataset
    from ssdconvert.synth import generate
    from ssdconvert.zoo import get_spec

    root = tmp_path_factory.mktemp("vgg_bins")
    ds = generate(root / "coco", images=4, seed=3)
    spec = get_spec("ssd-vgg16")
    preprocess_dataset(ds.annotation_file, ds.image_dir, root / "bins", spec.transform, model=spec.name,
                       input_name=spec.input.name, workers=1, progress=False)
    return root / "bins"


@pytest.fixture(scope="module")
def vgg_named_onnx(exported_onnx, tmp_path_factory) -> Path:
    """The seeded ssd-resnet34 graph with ssd-vgg16's output names and no export record: a model whose family only
    its outputs tell."""
    import onnx

    model = onnx.load(str(exported_onnx))
    renamed = {"ploc": "bbox_deltas", "plabel": "cls_logits"}
    for node in model.graph.node:
        node.output[:] = [renamed.get(o, o) for o in node.output]
    for output in model.graph.output:
        output.name = renamed[output.name]
    path = tmp_path_factory.mktemp("vgg_named") / "detector.onnx"
    onnx.save(model, str(path))
    return path


def last_line(result) -> str:
    return result.output.strip().splitlines()[-1]


def test_infer_refuses_bins_preprocessed_for_another_detector(exported_onnx, vgg_bins, tmp_path):
    result = CliRunner().invoke(cli, ["infer", "--model", str(exported_onnx), "--input", str(vgg_bins), "--output",
                                      str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert last_line(result) == (
        f"Error: the model {exported_onnx.name} (its record {exported_onnx.name}.json) is ssd-resnet34 but the inputs "
        f"in {vgg_bins} (manifest.json) is ssd-vgg16: they must be the same detector (other preprocessing, other "
        "outputs); preprocess the inputs for the model's detector (`ssdconvert preprocess --model ...`), or run that "
        "detector's model")
    assert not (tmp_path / "out").exists()


def test_infer_tells_a_model_without_records_by_its_outputs(vgg_named_onnx, r34_bins, tmp_path):
    result = CliRunner().invoke(cli, ["infer", "--model", str(vgg_named_onnx), "--input", str(r34_bins), "--output",
                                      str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert last_line(result).startswith("Error: the model detector.onnx (by its outputs bbox_deltas, cls_logits) is "
                                        f"ssd-vgg16 but the inputs in {r34_bins} (manifest.json) is ssd-resnet34")


def test_eval_with_another_model_than_the_results_stops(exported_onnx, r34_bins, tmp_path):
    results = tmp_path / "results"
    ran = CliRunner().invoke(cli, ["infer", "--model", str(exported_onnx), "--input", str(r34_bins), "--output",
                                   str(results), "--batchsize", "4"])
    assert ran.exit_code == 0, ran.output
    result = CliRunner().invoke(cli, ["eval", "--bin_path", str(results), "--model", "ssd-vgg16"])
    assert result.exit_code == 1, result.output  # once only a "note:" and an mAP
    assert last_line(result).startswith(f"Error: --model is ssd-vgg16 but the inputs in {r34_bins} (manifest.json) "
                                        "is ssd-resnet34: they must be the same detector")


def test_quantize_refuses_bins_of_another_detector_before_calibrating(exported_onnx, vgg_bins, tmp_path):
    result = CliRunner().invoke(cli, ["quantize", str(exported_onnx), "--calib", str(vgg_bins), "--output",
                                      str(tmp_path / "q.onnx")])
    assert result.exit_code == 1, result.output
    assert "is ssd-resnet34 but the inputs in" in last_line(result) and "is ssd-vgg16" in last_line(result)
    assert "calibrating" not in result.output and list(tmp_path.iterdir()) == []


def test_quantize_checks_the_family_first_and_names_the_right_one(vgg_named_onnx, vgg_bins, tmp_path):
    """An ssd-vgg16 model with --model ssd-resnet34 once quantized for 16 s, then said "has no output ploc,
    plabel" and left a 34 MB model without its record."""
    result = CliRunner().invoke(cli, ["quantize", str(vgg_named_onnx), "--calib", str(vgg_bins), "--model",
                                      "ssd-resnet34", "--output", str(tmp_path / "q.onnx")])
    assert result.exit_code == 1, result.output
    assert last_line(result).startswith("Error: --model is ssd-resnet34 but the model detector.onnx (by its outputs "
                                        "bbox_deltas, cls_logits) is ssd-vgg16")
    assert "calibrating" not in result.output and list(tmp_path.iterdir()) == []


def test_compare_refuses_inputs_of_another_detector(exported_onnx, vgg_bins, tmp_path):
    result = CliRunner().invoke(cli, ["compare", str(exported_onnx), str(exported_onnx), "--input", str(vgg_bins),
                                      "--images", "1", "-o", str(tmp_path / "cmp")])
    assert result.exit_code == 1, result.output
    assert "is ssd-resnet34 but the inputs in" in last_line(result) and not (tmp_path / "cmp").exists()


def test_agreeing_claims_pass_and_a_record_is_followed_to_its_source(exported_onnx, tmp_path):
    """An IR's build record names its source ONNX, whose export record names the family."""
    from ssdconvert.family import agree, model_claim, option_claim, outputs_claim

    ir = tmp_path / "m.xml"
    ir.write_text("<net/>")
    (tmp_path / "m.xml.json").write_text(json.dumps({"tool": "ovc", "source_onnx": {"path": str(exported_onnx)}}))
    assert model_claim(ir).families == {"ssd-resnet34"}
    both = outputs_claim(ir, ["plabel", "ploc"])
    assert both.families == {"ssd-resnet34", "ssd-resnet50"}
    assert agree([both, option_claim("ssd-resnet50")]) == "ssd-resnet50"
    assert agree([both]) is None  # two families left: the caller asks for --model
