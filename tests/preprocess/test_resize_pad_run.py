"""`ssdconvert preprocess --model faster-rcnn-r101-fpn`: padded tensors, im_info as a second input folder,
per-image geometry in the manifest (version 3), resumable like every preprocess run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from preprocess.manifest import read_manifest
from preprocess.resize_pad import for_canvas, prepare_file, resized_size

from .conftest import preprocess_args

CANVAS = (320, 352)


def literal_scaled_sizes(canvas):
    """The demo-canvas rule written out: sizes scaled by min(canvas) / 1344, floored; the reference's
    800/1333 whenever both canvas sides hold 1333."""
    smaller = min(canvas)
    if smaller >= 1333:
        return 800, 1333
    return int(800 * smaller / 1344), int(1333 * smaller / 1344)


@pytest.mark.parametrize("canvas", [(320, 352), (640, 640), (800, 1344), (1344, 1344), (1344, 2048)])
def test_a_canvas_gets_the_reference_rule_or_a_scaled_one_every_image_fits(canvas):
    t = for_canvas(canvas)
    assert (t.min_size, t.max_size) == literal_scaled_sizes(canvas)
    for w, h in [(640, 480), (480, 640), (211, 157), (97, 130), (612, 612), (640, 160)]:
        new_w, new_h = resized_size(w, h, t.min_size, t.max_size)
        assert new_h <= canvas[0] and new_w <= canvas[1], (w, h)


def test_tensors_im_info_and_geometry_are_written_per_image(coco, cli, tmp_path):
    out = tmp_path / "frcnn_bin"
    result = cli(*preprocess_args(coco, out, "--model", "faster-rcnn-r101-fpn", "--canvas", "320x352"))
    assert result.exit_code == 0, result.output
    assert f"ais_bench takes --input {out},{out / 'im_info'}" in result.output
    man = read_manifest(out)
    assert man.input.tensor.shape == (3, *CANVAS) and man.input.channel_order == "BGR"
    assert man.model == "faster-rcnn-r101-fpn"
    assert [(s.tensor.name, s.folder, s.tensor.shape, s.tensor.dtype) for s in man.side_inputs] == \
        [("im_info", "im_info", (2,), "float32")]
    assert len(man.images) == len(coco.doc["images"])  # the reference evaluates every image: all kept
    transform = for_canvas(CANVAS)
    for record in man.images[:6]:
        image = np.fromfile(out / f"{record.stem}.bin", np.float32).reshape(3, *CANVAS)
        im_info = np.fromfile(out / "im_info" / f"{record.stem}.bin", np.float32)
        padded = prepare_file(str(coco.images / record.file_name), transform)
        assert np.array_equal(image, padded.tensor)
        assert im_info.tolist() == [record.resized_height, record.resized_width]
        assert (record.resized_width, record.resized_height) == resized_size(record.width, record.height,
                                                                             transform.min_size, transform.max_size)
        assert record.scale_x == record.resized_width / record.width
        assert record.scale_y == record.resized_height / record.height
        assert (record.pad_bottom, record.pad_right) == (CANVAS[0] - record.resized_height,
                                                         CANVAS[1] - record.resized_width)
    assert json.loads((out / "manifest.json").read_text())["version"] == 3


def test_a_rerun_redoes_an_image_whose_im_info_is_missing_and_keeps_the_geometry(coco, cli, tmp_path):
    out = tmp_path / "frcnn_bin"
    args = preprocess_args(coco, out, "--model", "faster-rcnn-r101-fpn", "--canvas", "320x352", "--workers", "1")
    assert cli(*args).exit_code == 0
    first = read_manifest(out)
    victim = first.images[3].stem
    (out / "im_info" / f"{victim}.bin").unlink()
    result = cli(*args)
    assert result.exit_code == 0, result.output
    rows = [line.split("  ") for line in result.output.splitlines() if line.startswith(("written", "already"))]
    counts = {cells[0].strip(): next(c.strip() for c in cells[1:] if c.strip()) for cells in rows}
    assert counts == {"written": "1", "already complete": str(len(first.images) - 1)}
    assert (out / "im_info" / f"{victim}.bin").is_file()
    assert read_manifest(out).images == first.images


def test_only_float32_is_written_for_this_model(coco, cli, tmp_path):
    result = cli(*preprocess_args(coco, tmp_path / "x", "--model", "faster-rcnn-r101-fpn", "--dtype", "uint8"))
    assert result.exit_code == 1 and "faster-rcnn-r101-fpn takes float32 input, not --dtype uint8" in result.output


def test_a_fixed_size_model_refuses_a_canvas(coco, cli, tmp_path):
    result = cli(*preprocess_args(coco, tmp_path / "x", "--canvas", "320x320"))
    assert result.exit_code == 1 and "ssd-resnet34 has a fixed 300x300 input" in result.output
