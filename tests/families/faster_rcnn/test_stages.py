"""Faster R-CNN through the stage commands on synthetic COCO images (128x160 canvas, 4 images, batch 3):
preprocess -> infer (both inputs, both variants) -> eval -> bench. The full `run` is in test_run.py (heavy)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from postprocess.detection_match import ImageDetections, match_detections
from preprocess.manifest import read_manifest
from ssdconvert.cli import cli
from ssdconvert.zoo.faster_rcnn.flops import macs

IMAGES = 4


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def stages(tmp_path_factory, frcnn_export):
    from ssdconvert.synth import generate

    root = tmp_path_factory.mktemp("frcnn_stages")
    data = generate(root / "coco", images=IMAGES, seed=3)
    invoke("preprocess", "--model", "faster-rcnn-r101-fpn", "--canvas", "128x160", "--val_annotation",
           data.annotation_file, "--data_root", data.image_dir, "--save_path", root / "bin", "--workers", "1",
           "--no-progress")
    infer = invoke("infer", "--model", frcnn_export.onnx_path, "--input", root / "bin", "--output", root / "result",
                   "--batchsize", "3", "--no-progress")
    invoke("eval", "--bin_path", root / "result", "--detections", root / "dets.json", "--output", root / "eval.json",
           "--no-progress")
    return SimpleNamespace(root=root, data=data, infer=infer.output, manifest=read_manifest(root / "bin"))


def read_result(folder, stem):
    return (np.fromfile(folder / f"{stem}_0.bin", np.float32).reshape(100, 4),
            np.fromfile(folder / f"{stem}_1.bin", np.float32), np.fromfile(folder / f"{stem}_2.bin", np.int64),
            int(np.fromfile(folder / f"{stem}_3.bin", np.int64)[0]))


def test_infer_fed_both_inputs_and_wrote_the_four_outputs(stages):
    assert "batch 3: 4 files in 2 runs, 2 padding slot(s)" in stages.infer
    summary = json.loads((stages.root / "result_summary.json").read_text())
    args = summary["args"]
    assert args[args.index("--input") + 1] == f"{(stages.root / 'bin').resolve()},{(stages.root / 'bin' / 'im_info').resolve()}"
    for record in stages.manifest.images:
        sizes = [(stages.root / "result" / f"{record.stem}_{i}.bin").stat().st_size for i in range(4)]
        assert sizes == [100 * 4 * 4, 100 * 4, 100 * 8, 8]
        boxes, scores, labels, count = read_result(stages.root / "result", record.stem)
        assert 0 < count <= 100 and (scores[:count] > 0.05).all() and not scores[count:].any()
        # clipped to the image's own (unpadded) size, from its im_info: x2 <= w - 1, y2 <= h - 1
        assert (boxes[:count, 2] <= record.resized_width - 1).all() and (boxes[:count, 3] <= record.resized_height - 1).all()


def test_eval_maps_every_image_back_with_the_reference_conventions(stages):
    """The COCO rows written out by hand from prepare_for_coco_detection: boxes scaled by original /
    resized (x and y apart, in float32), width x2 - x1 + 1, label k -> the k-th category of the
    file; every image evaluated."""
    report = json.loads((stages.root / "eval.json").read_text())
    assert report["model"] == "faster-rcnn-r101-fpn" and report["nms"] == "in-graph" and report["images"] == IMAGES
    assert report["dtypes"] == {"boxes": "float32", "scores": "float32", "labels": "int64", "num_detections": "int64"}
    categories = [c["id"] for c in json.loads(stages.data.annotation_file.read_text())["categories"]]
    expected = []
    for record in stages.manifest.images:
        boxes, scores, labels, count = read_result(stages.root / "result", record.stem)
        rx = np.float32(record.width / record.resized_width)
        ry = np.float32(record.height / record.resized_height)
        for k in range(count):
            x1, y1, x2, y2 = boxes[k, 0] * rx, boxes[k, 1] * ry, boxes[k, 2] * rx, boxes[k, 3] * ry
            expected.append((record.id, categories[labels[k] - 1], float(x1), float(y1),
                             float(x2 - x1 + np.float32(1)), float(y2 - y1 + np.float32(1)), float(scores[k])))
    dets = json.loads((stages.root / "dets.json").read_text())
    got = [(d["image_id"], d["category_id"], *d["bbox"], d["score"]) for d in dets]
    assert len(got) == report["detections"] == len(expected) > 0
    assert sorted(got) == sorted(expected)


def test_the_split_variant_on_the_same_inputs_gives_the_same_detections(stages, frcnn_split):
    """The composite (dense + head models in ONNX Runtime, proposal selection and RoIAlign on the host) through
    the same `infer`: per image and class the fixed graph's detections, to float noise."""
    descriptor = frcnn_split[2]
    out = invoke("infer", "--model", descriptor, "--input", stages.root / "bin", "--output", stages.root / "split",
                 "--batchsize", "2", "--no-progress").output
    assert "composite" in out
    fixed, split = [], []
    for record in stages.manifest.images:
        for folder, into in ((stages.root / "result", fixed), (stages.root / "split", split)):
            boxes, scores, labels, count = read_result(folder, record.stem)
            into.append(ImageDetections.of(boxes[:count], scores[:count], labels[:count]))
    report = match_detections(fixed, split, 0.9, limit=100, pixel_offset=1.0)
    assert report.matched == report.expected == report.actual > 0
    assert report.max_score_diff <= 1e-4 and report.max_box_diff <= 1e-2


def test_bench_times_both_variants(stages, frcnn_export, frcnn_split, tmp_path):
    for model, zoo in ((frcnn_export.onnx_path, ["--zoo", "faster-rcnn-r101-fpn"]), (frcnn_split[2], [])):
        # a composite names its zoo model itself; the ONNX's file name does not
        out = invoke("bench", "--model", model, "--bs", "1", "--duration", "0.01", "--warmup", "0",
                     "--output", tmp_path, "--name", model.name.split(".")[0], *zoo).output
        assert "samples/s" in out
        report = json.loads((tmp_path / f"{model.name.split('.')[0]}.json").read_text())
        assert [r["status"] for r in report["rows"]] == ["ok"] and report["rows"][0]["throughput"] > 0
        assert report["flops_per_image"] == 2 * macs((128, 160))["total"]  # the file's canvas, not the default


def test_the_accuracy_gate_reads_the_int64_outputs(stages, tmp_path):
    """The lower-precision gate compares two result folders output by output: labels and counts are int64
    on disk (800 B and 8 B per image), and a change in one image's scores shows in `scores` alone."""
    import shutil

    from ssdconvert.agreement import measure_results
    from ssdconvert.zoo import get_spec

    candidate = tmp_path / "candidate"
    shutil.copytree(stages.root / "result", candidate)
    stem = stages.manifest.images[0].stem
    scores = np.fromfile(candidate / f"{stem}_1.bin", np.float32)
    (scores * np.float32(0.99)).tofile(candidate / f"{stem}_1.bin")
    spec = get_spec("faster-rcnn-r101-fpn").with_canvas((128, 160))
    report = measure_results(stages.root / "result", candidate, stages.manifest.images, spec)
    diffs = {f.name: f.max_abs for f in report.outputs}
    assert set(diffs) == {"boxes", "scores", "labels", "num_detections"}
    assert diffs["scores"] == pytest.approx(float(scores.max()) * 0.01, rel=1e-3)
    assert diffs["boxes"] == diffs["labels"] == diffs["num_detections"] == 0
