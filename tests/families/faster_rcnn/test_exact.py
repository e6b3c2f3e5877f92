"""The exact mode (`--canvas exact`): each image padded only to its own multiple of 32, batch 1, the reference at
TEST.IMS_PER_BATCH 1, on the CPU backends.

The export and the inference run a scaled resize rule (short side 160, long side <= 267: canvases of 160x224 and
smaller) so that each image costs ~20 GMAC; the preprocess test runs the reference rule (800 / 1333), which costs
nothing but decoding. The full `run` at the reference rule is heavy.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from postprocess.detection_match import ImageDetections
from preprocess.manifest import read_manifest
from preprocess.resize_pad import exact_mode
from preprocess.spec import EXACT_CANVAS
from ssdconvert.cli import cli
from ssdconvert.zoo.faster_rcnn.demo import synthetic_images
from ssdconvert.zoo.faster_rcnn.validation import (ValidationBatch, check_detections, reference_detections,
                                               validate_detector)

SCALED_RULE = (160, 267)  # (short side, long side limit): exact-mode images of 160x224 and smaller, not the reference
SCORE_ATOL = 1e-4
IMAGES = 4
ANCHORS_PER_LOCATION = 3


def ceil32(value: int) -> int:
    return -(-value // 32) * 32


def literal_resize(width: int, height: int, short: int = 800, limit: int = 1333) -> tuple[int, int]:
    """maskrcnn-benchmark Resize.get_size written out (size = min_size, shrunk when the long side would pass
    max_size; the long side truncated), (width, height)."""
    size = short
    if max(width, height) / min(width, height) * size > limit:
        size = int(round(limit * min(width, height) / max(width, height)))
    if width < height:
        return size, int(size * height / width)
    return int(size * width / height), size


def anchors_of_level(canvas: tuple[int, int], stride: int) -> int:
    return math.ceil(canvas[0] / stride) * math.ceil(canvas[1] / stride) * ANCHORS_PER_LOCATION


def invoke(*args, code: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


@pytest.fixture(scope="session")
def exact_spec(frcnn_spec):
    return replace(frcnn_spec.with_canvas(EXACT_CANVAS), transform=exact_mode(*SCALED_RULE))


@pytest.fixture(scope="session")
def exact_export(tmp_path_factory, frcnn_model, exact_spec):
    """The exact-mode graph through the family's exporter (validated on a landscape and a portrait image, each at
    its own size); not simplified (see frcnn_export)."""
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.export import export_model

    out = tmp_path_factory.mktemp("frcnn_exact") / "faster_rcnn_exact.onnx"
    return export_model(frcnn_model, exact_spec, out, weights=WeightsSource(random_seed=0, demo=True), batch=1,
                        simplify_model=False)


@pytest.fixture(scope="session")
def exact_data(tmp_path_factory):
    from ssdconvert.synth import generate

    root = tmp_path_factory.mktemp("frcnn_exact_data")
    return generate(root / "coco", images=IMAGES, seed=3)


@pytest.fixture(scope="session")
def exact_folder(tmp_path_factory, exact_data):
    """The synthetic images preprocessed in the exact mode at the scaled rule (the library takes any rule)."""
    from preprocess.run import preprocess_dataset

    save = tmp_path_factory.mktemp("frcnn_exact_bin") / "bin"
    preprocess_dataset(exact_data.annotation_file, exact_data.image_dir, save, exact_mode(*SCALED_RULE),
                       model="faster-rcnn-r101-fpn", input_name="images", workers=1, all_images=True, progress=False)
    return save


def read_result(folder, stem) -> ImageDetections:
    boxes = np.fromfile(folder / f"{stem}_0.bin", np.float32).reshape(100, 4)
    scores = np.fromfile(folder / f"{stem}_1.bin", np.float32)
    labels = np.fromfile(folder / f"{stem}_2.bin", np.int64)
    count = int(np.fromfile(folder / f"{stem}_3.bin", np.int64)[0])
    return ImageDetections.of(boxes[:count], scores[:count], labels[:count])


# -- export ----------------------------------------------------------------------------------------------------


def test_the_export_matches_the_reference_on_two_image_sizes(exact_export):
    """The exporter validated the graph in ONNX Runtime against reference.detect on a landscape and a portrait
    image, each alone at its own padded size: every reference detection matched."""
    assert [r.images for r in exact_export.validation.reports] == [1, 1]
    for report in exact_export.validation.reports:
        assert report.matched == report.expected == report.actual == 100
        assert report.missing == report.extra == 0 and report.max_score_diff <= SCORE_ATOL
    sidecar = json.loads(exact_export.sidecar_path.read_text())
    assert sidecar["onnx"]["canvas"] == "exact" and sidecar["onnx"]["dynamic_axes"] == {"images": ["H", "W"]}
    model = onnx.load(str(exact_export.onnx_path))
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input]
    assert dims == [[1, 3, "H", "W"], [1, 2]]


def test_level_top_k_is_computed_in_the_graph(exact_export, frcnn_model):
    """Traced at 160x224, where P3 has more than 1000 anchors (a constant k would be 1000), run at 96x128, where it
    has fewer: a k fixed at the traced canvas makes TopK fail; the graph's min(1000, n) matches the reference."""
    width, height = literal_resize(640, 480, *SCALED_RULE)  # the first validation image: the exporter traces it
    traced, small = (ceil32(height), ceil32(width)), (96, 128)
    assert traced == (160, 224) and anchors_of_level(traced, 8) > 1000 > anchors_of_level(small, 8)  # P3: 1680, 576
    image = (96, 120)
    batch = ValidationBatch(synthetic_images([image], small, 11).numpy(), [image])
    report = validate_detector(exact_export.onnx_path, frcnn_model, batch).report
    assert report.matched == report.expected == 100 and report.max_score_diff <= SCORE_ATOL


@pytest.mark.parametrize("kwargs, message", [
    ({"batch": 2}, "the exact mode runs batch 1"),
    ({"batch": 1, "variant": "split"}, "the split variant needs a fixed canvas"),
])
def test_the_exporter_refuses_a_batch_or_the_split_variant(tmp_path, frcnn_model, exact_spec, kwargs, message):
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.errors import ExportError
    from ssdconvert.export import export_model

    with pytest.raises(ExportError, match=message):
        export_model(frcnn_model, exact_spec, tmp_path / "x.onnx", weights=WeightsSource(random_seed=0), **kwargs)
    assert not list(tmp_path.iterdir())


# -- preprocess ------------------------------------------------------------------------------------------------


def test_preprocess_exact_pads_each_image_to_its_own_multiple_of_32(exact_data, tmp_path):
    """The CLI at the reference rule: every file as big as its image's resized size rounded up to 32, computed
    here from the json sizes; the manifest says so (version 4, input 3 x ? x ?)."""
    out = invoke("preprocess", "--model", "faster-rcnn-r101-fpn", "--canvas", "exact", "--val_annotation",
                 exact_data.annotation_file, "--data_root", exact_data.image_dir, "--save_path", tmp_path / "bin",
                 "--all-images", "--workers", "1", "--no-progress").output
    assert "each image padded to its own multiple of 32" in out
    raw = json.loads((tmp_path / "bin" / "manifest.json").read_text())
    assert raw["version"] == 4 and raw["input"]["shape"] == [3, None, None]
    manifest = read_manifest(tmp_path / "bin")
    shapes = set()
    for record in manifest.images:
        width, height = literal_resize(record.width, record.height)
        shape = (3, ceil32(height), ceil32(width))
        assert (record.resized_width, record.resized_height) == (width, height)
        assert manifest.image_shape(record) == shape
        assert (tmp_path / "bin" / f"{record.stem}.bin").stat().st_size == 4 * 3 * shape[1] * shape[2]
        im_info = np.fromfile(tmp_path / "bin" / "im_info" / f"{record.stem}.bin", np.float32)
        assert im_info.tolist() == [height, width]
        shapes.add(shape)
    assert len(shapes) >= 3  # 800x1088, 1088x800, 800x1216: the sizes differ per image


# -- infer, eval, bench ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def exact_results(tmp_path_factory, exact_export, exact_folder):
    root = tmp_path_factory.mktemp("frcnn_exact_infer")
    infer = invoke("infer", "--model", exact_export.onnx_path, "--input", exact_folder, "--output", root / "ort",
                   "--no-progress")
    return SimpleNamespace(root=root, infer=infer.output, manifest=read_manifest(exact_folder))


def reference_of(frcnn_model, folder, record) -> list[ImageDetections]:
    """reference.detect on one file, read at the shape computed here from the json size (scaled rule)."""
    width, height = literal_resize(record.width, record.height, *SCALED_RULE)
    tensor = np.fromfile(folder / f"{record.stem}.bin", np.float32).reshape(1, 3, ceil32(height), ceil32(width))
    return reference_detections(frcnn_model, ValidationBatch(tensor, [(height, width)]))


def test_infer_feeds_each_image_at_its_own_shape(exact_results, exact_folder, frcnn_model):
    assert "batch 1: 4 files in 4 runs, 0 padding slot(s)" in exact_results.infer
    shapes = {exact_results.manifest.image_shape(r) for r in exact_results.manifest.images}
    assert len(shapes) >= 3  # one run, three different input shapes
    for record in exact_results.manifest.images:
        report = check_detections(reference_of(frcnn_model, exact_folder, record),
                                  [read_result(exact_results.root / "ort", record.stem)], "ONNX Runtime").report
        assert report.matched == report.expected > 0 and report.max_score_diff <= SCORE_ATOL


@pytest.mark.heavy  # ~23 s on 2 busy cores (OpenVINO compiles the dynamic-shape graph); ONNX Runtime covers it above
def test_openvino_runs_the_exact_model_per_image_too(exact_results, exact_export, exact_folder, frcnn_model):
    invoke("infer", "--model", exact_export.onnx_path, "--input", exact_folder, "--output",
           exact_results.root / "ov", "--backend", "openvino", "--no-progress")
    for record in exact_results.manifest.images:
        report = check_detections(reference_of(frcnn_model, exact_folder, record),
                                  [read_result(exact_results.root / "ov", record.stem)], "OpenVINO").report
        assert report.matched == report.expected > 0 and report.max_score_diff <= SCORE_ATOL


def test_eval_reads_the_exact_results_unchanged(exact_results, exact_data):
    invoke("eval", "--bin_path", exact_results.root / "ort", "--val_annotation", exact_data.annotation_file,
           "--output", exact_results.root / "eval.json", "--detections", exact_results.root / "dets.json",
           "--no-progress")
    report = json.loads((exact_results.root / "eval.json").read_text())
    assert report["model"] == "faster-rcnn-r101-fpn" and report["images"] == IMAGES
    dets = json.loads((exact_results.root / "dets.json").read_text())
    record = exact_results.manifest.images[0]
    first = read_result(exact_results.root / "ort", record.stem)
    mine = sorted(d["bbox"][0] for d in dets if d["image_id"] == record.id)
    scale = np.float32(record.width / record.resized_width)  # back to the original image by its own resized size
    assert np.allclose(mine, sorted(first.boxes[:, 0] * scale), atol=1e-3)


def test_bench_times_the_exact_model_at_batch_1(exact_export, tmp_path):
    invoke("bench", "--model", exact_export.onnx_path, "--zoo", "faster-rcnn-r101-fpn", "--bs", "1", "--duration",
           "0.01", "--warmup", "0", "--output", tmp_path, "--name", "exact")
    report = json.loads((tmp_path / "exact.json").read_text())
    assert [r["status"] for r in report["rows"]] == ["ok"] and report["rows"][0]["throughput"] > 0


@pytest.mark.heavy  # ~20 s; compare's per-layer path is covered fast on the SSD families
def test_compare_runs_one_exact_image_at_its_own_shape(exact_export, exact_folder, tmp_path):
    """compare reads an exact-mode image at its manifest shape (it once read the model's (3, H, W) with
    H and W unknown and failed with a TypeError) and compares every layer; several images, each of
    its own shape, cannot share its one batch and are refused with the way out."""
    inputs = f"{exact_folder},{exact_folder / 'im_info'}"
    invoke("compare", exact_export.onnx_path, exact_export.onnx_path, "--input", inputs, "--images", "1",
           "-o", tmp_path)
    report = json.loads((tmp_path / "compare.json").read_text())
    compared = [la for la in report["layers"] if la["figures"] is not None]
    assert len(compared) > 100 and all(la["figures"]["max_abs"] == 0 for la in compared)  # the model vs itself
    (line,) = error_lines(invoke("compare", exact_export.onnx_path, exact_export.onnx_path, "--input", inputs,
                                 "--images", "2", "-o", tmp_path / "two", code=1))
    assert "exact mode" in line and "--images 1" in line


@pytest.mark.heavy  # ~40 s: OpenVINO compiles the dynamic graph once per chunk of tensors
def test_compare_reaches_the_int64_outputs_of_openvino(exact_export, exact_folder, tmp_path):
    """OpenVINO's IR does not name labels and num_detections on a port the taps can mark; compare takes
    them from a plain run, so the final outputs are compared (once: "final output(s) labels, num_detections could
    not be compared")."""
    inputs = f"{exact_folder},{exact_folder / 'im_info'}"
    result = CliRunner().invoke(cli, ["compare", str(exact_export.onnx_path), f"openvino:{exact_export.onnx_path}",
                                      "--input", inputs, "--images", "1", "-o", str(tmp_path)])
    assert "final output(s)" not in result.output, result.output
    final = json.loads((tmp_path / "compare.json").read_text())["final"]
    assert {o["name"] for o in final["outputs"]} == {"boxes", "scores", "labels", "num_detections"}


# -- refusals ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["infer", "bench"])
def test_a_batch_is_refused(exact_export, exact_folder, tmp_path, command):
    if command == "infer":
        args = ("infer", "--model", exact_export.onnx_path, "--input", exact_folder, "--output", tmp_path / "r",
                "--batchsize", "2", "--no-progress")
    else:
        args = ("bench", "--model", exact_export.onnx_path, "--bs", "1,2", "--output", tmp_path)
    result = invoke(*args, code=1)
    (line,) = error_lines(result)
    assert "exact mode" in line and "batch 1" in line
    assert not (tmp_path / "r").exists()


def test_run_refuses_a_batch_before_any_work(tmp_path):
    result = invoke("run", "--model", "faster-rcnn-r101-fpn", "--canvas", "exact", "--bs", "1,2", "--images", "1",
                    "--backends", "onnxruntime", "--workdir", tmp_path / "w", code=1)
    (line,) = error_lines(result)
    assert "runs batch 1 only, not --bs 1,2" in line
    assert not (tmp_path / "w" / "data").exists()


@pytest.mark.parametrize("backend, model_name", [("ascend", "model.om"), ("magicmind", "model_mm")])
def test_device_backends_refuse_an_exact_folder(exact_folder, tmp_path, backend, model_name):
    """Refused before the vendor tool or runtime is looked for: the device needs the fixed canvas."""
    model = tmp_path / model_name
    model.write_bytes(b"device model")
    result = invoke("infer", "--model", model, "--input", exact_folder, "--output", tmp_path / "r", "--backend",
                    backend, "--no-progress", code=1)
    (line,) = error_lines(result)
    assert "needs the fixed canvas" in line and "exact mode" in line and "--canvas HxW" in line


@pytest.mark.parametrize("backend", ["ascend", "magicmind"])
def test_device_backends_refuse_an_exact_model(exact_export, tmp_path, backend):
    result = invoke("bench", "--model", exact_export.onnx_path, "--backend", backend, "--bs", "1", "--output",
                    tmp_path, "--soc", "Ascend310P3", code=1)
    (line,) = error_lines(result)
    assert f"needs the fixed canvas: the model {exact_export.onnx_path.name} is in the exact mode" in line


def test_a_fixed_canvas_model_refuses_an_exact_folder(frcnn_export, exact_folder, tmp_path):
    result = invoke("infer", "--model", frcnn_export.onnx_path, "--input", exact_folder, "--output", tmp_path / "r",
                    "--no-progress", code=1)
    (line,) = error_lines(result)
    assert "exact mode" in line and "fixed canvas" in line


@pytest.mark.heavy
def test_run_exact_end_to_end_on_the_cpu_backends(tmp_path):
    """The reference rule (800 / 1333) on three synthetic images: preprocess, export (validated at two sizes),
    infer, eval and bench on ONNX Runtime and OpenVINO, batch 1."""
    invoke("run", "--model", "faster-rcnn-r101-fpn", "--canvas", "exact", "--images", "3", "--backends",
           "onnxruntime,openvino", "--bench-duration", "0.5", "--workdir", tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    for backend in ("onnxruntime", "openvino"):
        assert not stages[f"infer:{backend}"].get("failed") and not stages[f"eval:{backend}"].get("failed")
    assert "export-split" not in stages
    manifest = read_manifest(tmp_path / "ssd_bin")
    assert len({manifest.image_shape(r) for r in manifest.images}) >= 2
