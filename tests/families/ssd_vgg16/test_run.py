"""`ssdconvert run --model ssd-vgg16` end to end on synthetic data (ONNX Runtime), and eval's choices."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli

IMAGES = 10  # the 10th synthetic image has no annotations


# an end-to-end run (~40 s of the default suite's 2 workers): heavy, as the other families' runs; the mmdet
# decode and NMS policies keep their fast tests in test_anchors_and_decode.py and tests/postprocess
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run_vgg")
    result = CliRunner().invoke(cli, ["run", "--model", "ssd-vgg16", "--images", str(IMAGES), "--bs", "1,2",
                                      "--bench-duration", "0.1", "--workers", "1", "--backends", "onnxruntime",
                                      "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    return workdir


def test_every_stage_ran_on_every_image(workdir):
    manifest = json.loads((workdir / "ssd_bin" / "manifest.json").read_text())
    assert manifest["model"] == "ssd-vgg16" and manifest["input"]["decoder"] == "cv2"
    assert len(manifest["images"]) == IMAGES and manifest["skipped_without_annotations"] == 0  # mmdet keeps all
    sidecar = json.loads((workdir / "ssd_vgg16.onnx.json").read_text())
    assert sidecar["validation"]["passed"] and [o["name"] for o in sidecar["spec"]["outputs"]] == \
        ["bbox_deltas", "cls_logits"]
    results = workdir / "results" / "onnxruntime"
    assert {p.stat().st_size for p in results.glob("*_0.bin")} == {8732 * 4 * 4}
    assert {p.stat().st_size for p in results.glob("*_1.bin")} == {8732 * 81 * 4}
    report = json.loads((workdir / "eval" / "onnxruntime" / "eval.json").read_text())
    assert report["model"] == "ssd-vgg16" and report["nms"] == "mmdet3" and report["images"] == IMAGES
    assert 0 < report["detections"] <= 200 * IMAGES
    dets = json.loads((workdir / "eval" / "onnxruntime" / "detections.json").read_text())
    assert len(dets) == report["detections"] and all(d["bbox"][2] > 0 and d["bbox"][3] > 0 for d in dets)
    assert (workdir / "bench" / "onnxruntime.md").is_file()


def test_eval_takes_the_mmdet_policies_and_refuses_others(workdir, tmp_path):
    results = str(workdir / "results" / "onnxruntime")
    for policy in ("mmdet2", "mmdet2-nms-pre"):
        out = CliRunner().invoke(cli, ["eval", "--bin_path", results, "--nms", policy,
                                       "--output", str(tmp_path / f"{policy}.json")])
        assert out.exit_code == 0, out.output
        assert json.loads((tmp_path / f"{policy}.json").read_text())["nms"] == policy
    wrong = CliRunner().invoke(cli, ["eval", "--bin_path", results, "--nms", "ascend"])
    assert wrong.exit_code == 1 and "--nms ascend is not a policy of ssd-vgg16; choose from mmdet3, mmdet2" \
        in wrong.output


def test_without_a_manifest_every_image_of_the_json_is_evaluated(workdir, tmp_path):
    """mmdet's test set is the whole annotation file; ssd-resnet34/50 evaluate annotated images only."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(workdir / "results" / "onnxruntime", results)  # no runner summary beside it
    annotation = workdir / "data" / "annotations" / "instances_val2017.json"
    out = CliRunner().invoke(cli, ["eval", "--bin_path", str(results), "--val_annotation", str(annotation),
                                   "--model", "ssd-vgg16", "--output", str(tmp_path / "r.json")])
    assert out.exit_code == 0, out.output
    assert "ssd-vgg16 evaluates every image of the annotation file" in out.output
    assert json.loads((tmp_path / "r.json").read_text())["images"] == IMAGES
