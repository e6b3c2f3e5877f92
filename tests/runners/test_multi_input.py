"""Models with several inputs (e.g. a detector fed image + im_info): one input folder per model
input, sample i = the i-th natural-sorted file of every folder (ais_bench's rule), on every runner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssdconvert.bench import run_bench
from ssdconvert.infer import run_infer
from ssdconvert.layout import InferError

NAMES = ["img1.bin", "img2.bin", "img10.bin", "img11.bin", "img3.bin"]  # natural order: 1, 2, 3, 10, 11


def make_two_input_onnx(path, batch=None):
    """image (N,3,8,8) and im_info (N,2) -> ploc (N,4,64) = 1x1 conv of the image, scaled (N,2) = 2 x im_info."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = batch if batch else "N"
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["loc"]),
         helper.make_node("Reshape", ["loc", "shape"], ["ploc"]),
         helper.make_node("Mul", ["im_info", "two"], ["scaled"])],
        "two_inputs",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [n, 3, 8, 8]),
         helper.make_tensor_value_info("im_info", TensorProto.FLOAT, [n, 2])],
        [helper.make_tensor_value_info("ploc", TensorProto.FLOAT, [n, 4, 64]),
         helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [n, 2])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0, 4, -1], np.int64), "shape"),
                     numpy_helper.from_array(np.array([2.0], np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path, w.reshape(4, 3)


def write_pairs(root, names=NAMES, seed=0):
    """image/<stem>.bin and im_info/<stem>.bin; im_info holds the image's own number, to check pairing."""
    rng = np.random.default_rng(seed)
    (root / "image").mkdir(parents=True)
    (root / "im_info").mkdir()
    data = {}
    for name in names:
        image = rng.standard_normal((3, 8, 8)).astype(np.float32)
        info = np.array([int(name[3:].split(".")[0]), 300.0], np.float32)
        image.tofile(root / "image" / name)
        info.tofile(root / "im_info" / name)
        data[name.split(".")[0]] = (image, info)
    return data


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_each_sample_takes_the_same_stem_from_every_folder(tmp_path, backend):
    model, w = make_two_input_onnx(tmp_path / "two.onnx")
    data = write_pairs(tmp_path / "in")
    folders = f"{tmp_path / 'in' / 'image'},{tmp_path / 'in' / 'im_info'}"
    result = run_infer(model, folders, tmp_path / "out", backend=backend, batchsize=2, progress=False)
    assert (result.files, result.runs, result.padded) == (5, 3, 1)
    for stem, (image, info) in data.items():
        np.testing.assert_allclose(np.fromfile(tmp_path / "out" / f"{stem}_0.bin", np.float32).reshape(4, 64),
                                   w @ image.reshape(3, 64), atol=1e-5)
        np.testing.assert_array_equal(np.fromfile(tmp_path / "out" / f"{stem}_1.bin", np.float32), 2 * info)
    summary = json.loads((tmp_path / "out_summary.json").read_text())
    args = summary["args"]
    assert args[args.index("--input") + 1] == f"{(tmp_path / 'in' / 'image').resolve()},{(tmp_path / 'in' / 'im_info').resolve()}"
    for sample, name in (("2", "img3.bin"), ("3", "img10.bin")):  # one file per model input, per sample
        infiles = summary["filesinfo"][sample]["infiles"]
        assert infiles == [str(tmp_path / "in" / d / name) for d in ("image", "im_info")]


def test_folders_that_do_not_line_up_are_refused(tmp_path):
    model, _ = make_two_input_onnx(tmp_path / "two.onnx")
    write_pairs(tmp_path / "in")
    image, info = tmp_path / "in" / "image", tmp_path / "in" / "im_info"
    with pytest.raises(InferError, match=r"two.onnx has 2 input\(s\) \(image, im_info\); --input gives 1 folder\(s\)"):
        run_infer(model, image, tmp_path / "o1", progress=False)
    with pytest.raises(InferError, match="--input gives a list of files: give one folder per model input"):
        run_infer(model, ",".join(str(p) for p in sorted(image.iterdir())), tmp_path / "o2", progress=False)
    (info / "img11.bin").unlink()
    with pytest.raises(InferError, match=r"im_info has 4 input files but .*image has 5"):
        run_infer(model, f"{image},{info}", tmp_path / "o3", progress=False)
    (info / "img2.bin").rename(info / "img4.bin")
    with pytest.raises(InferError, match=r"sample 1 pairs img2.bin \(.*image\) with img3.bin \(.*im_info\)"):
        run_infer(model, f"{image},{info}", tmp_path / "o4", progress=False)
    assert not any((tmp_path / f"o{k}").exists() for k in range(1, 5))  # refused before anything is written


def test_the_ascend_tool_path_feeds_one_folder_per_input(tmp_path, fake_ais_bench, monkeypatch):
    om, w = make_two_input_onnx(tmp_path / "two_bs2.om", batch=2)  # the fake ais_bench runs an ONNX named .om
    data = write_pairs(tmp_path / "in")
    monkeypatch.setattr("ssdconvert.backends.ascend.runner.api_available", lambda: False)
    result = run_infer(om, f"{tmp_path / 'in' / 'image'},{tmp_path / 'in' / 'im_info'}", tmp_path / "out",
                       progress=False)
    assert result.log_path is not None and result.files == 5
    for stem, (image, info) in data.items():
        np.testing.assert_array_equal(np.fromfile(tmp_path / "out" / f"{stem}_1.bin", np.float32), 2 * info)


def test_bench_feeds_every_input(tmp_path):
    model, _ = make_two_input_onnx(tmp_path / "two.onnx")
    report = run_bench(model, batch_sizes=[1, 3], duration=0.02, output_dir=tmp_path, plot=False)
    assert [r.status for r in report.rows] == ["ok", "ok"]


def write_preprocessed(root, names=NAMES, seed=0):
    """A preprocess-style folder: image tensors with manifest.json listing im_info/ as a side input."""
    from preprocess.manifest import ImageRecord, InputInfo, Manifest, SideInput, write_manifest
    from stageio.tensor import TensorSpec

    data = write_pairs(root, names, seed)
    image_dir = root / "image"
    info = InputInfo(TensorSpec("image", (3, 8, 8), "float32"), "CHW", "BGR", "pil_bilinear", True, 1.0, (0.0,) * 3,
                     (1.0,) * 3, True)
    side = SideInput(TensorSpec("im_info", (2,), "float32", meaning="unpadded (h, w)"), "../im_info", "ND")
    write_manifest(image_dir, Manifest("two-input", info, "a.json", "", "/data",
                                       images=[ImageRecord(k, n, n.split(".")[0], 8, 8) for k, n in enumerate(names)],
                                       side_inputs=[side]))
    return data


def test_one_preprocess_folder_brings_its_side_inputs_along(tmp_path):
    model, w = make_two_input_onnx(tmp_path / "two.onnx")
    data = write_preprocessed(tmp_path / "in")
    result = run_infer(model, tmp_path / "in" / "image", tmp_path / "out", batchsize=2, progress=False)
    assert result.files == 5
    for stem, (_, info) in data.items():
        np.testing.assert_array_equal(np.fromfile(tmp_path / "out" / f"{stem}_1.bin", np.float32), 2 * info)
    args = json.loads((tmp_path / "out_summary.json").read_text())["args"]
    assert args[args.index("--input") + 1] == ",".join(str((tmp_path / "in" / d).resolve()) for d in ("image", "im_info"))


def test_a_side_input_file_of_the_wrong_size_names_the_side_input(tmp_path):
    model, _ = make_two_input_onnx(tmp_path / "two.onnx")
    write_preprocessed(tmp_path / "in")
    np.zeros(3, np.float32).tofile(tmp_path / "in" / "im_info" / "img2.bin")
    with pytest.raises(InferError, match=r"img2.bin is 12 bytes but .*manifest.json \(im_info\) says 8 per image"):
        run_infer(model, tmp_path / "in" / "image", tmp_path / "out", progress=False)


def test_a_missing_side_input_folder_is_named(tmp_path):
    import shutil

    model, _ = make_two_input_onnx(tmp_path / "two.onnx")
    write_preprocessed(tmp_path / "in")
    shutil.rmtree(tmp_path / "in" / "im_info")
    with pytest.raises(InferError, match=r"lists the side-input folder .*im_info, which does not exist"):
        run_infer(model, tmp_path / "in" / "image", tmp_path / "out", progress=False)


def test_bench_times_the_feeds_it_is_given(tmp_path):
    """ModelSpec.feeds_for hands realistic inputs to every timed call (a random im_info would clip every
    proposal away and time a degenerate NMS)."""
    seen = []

    def feeds(inputs, batch):
        seen.append(([m.name for m in inputs], batch))
        return {"image": np.ones((batch, 3, 8, 8), np.float32), "im_info": np.full((batch, 2), 7.0, np.float32)}

    model, _ = make_two_input_onnx(tmp_path / "two.onnx")
    report = run_bench(model, backend="onnxruntime", batch_sizes=[1, 2], duration=0.05, output_dir=tmp_path / "b",
                       plot=False, feeds=feeds)
    assert [r.status for r in report.rows] == ["ok", "ok"] and seen == [(["image", "im_info"], 1),
                                                                       (["image", "im_info"], 2)]


def test_bench_feeds_reach_the_runtime(tmp_path):
    def wrong(inputs, batch):  # im_info of the wrong width: the runtime must see it and fail
        return {"image": np.ones((batch, 3, 8, 8), np.float32), "im_info": np.ones((batch, 3), np.float32)}

    model, _ = make_two_input_onnx(tmp_path / "two.onnx")
    report = run_bench(model, backend="onnxruntime", batch_sizes=[1], duration=0.05, output_dir=tmp_path / "b",
                       plot=False, feeds=wrong)
    assert report.rows[0].status == "failed" and "im_info" in report.rows[0].error
