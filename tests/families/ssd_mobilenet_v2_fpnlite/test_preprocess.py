"""ssd-mobilenet-v2-fpnlite's input is bit-identical to ST's app written out literally here, on the real
images and on the synthetic set's grayscale and odd-size files plus an EXIF-rotated one; preprocess
writes it as uint8 NHWC by default and refuses other dtypes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from ssdconvert import realdata


def st_app_literal(path) -> np.ndarray:
    """STMicroelectronics/meta-st-x-linux-ai recipes-samples/object-detection/files/stai-mpu/
    stai_mpu_object_detection.py at 364e6b4a, process_picture: `img = Image.open(path)`, then
    `cv2.resize(np.array(img), (nn_input_width, nn_input_height))`; a non-RGB file converted to RGB
    first (the app would hand the model a 2-D array)."""
    img = Image.open(path)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return cv2.resize(np.array(img), (256, 256))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The synthetic set's files (3 grayscale, sizes down to 97x130) and one of them EXIF-rotated."""
    from ssdconvert.synth import generate

    data = generate(tmp_path_factory.mktemp("synth") / "coco", images=22, seed=5)
    files = sorted(data.image_dir.glob("*.jpg"))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees, which PIL (and so the app) does not apply
    rotated = data.image_dir.parent / "exif.jpg"
    Image.open(files[9]).save(rotated, quality=90, exif=exif)
    return files + [rotated]


def test_the_synthetic_set_has_the_hard_cases(synthetic):
    modes = {Image.open(p).mode for p in synthetic}
    sizes = {Image.open(p).size for p in synthetic}
    assert modes == {"RGB", "L"} and {(211, 157), (97, 130)} <= sizes
    assert Image.open(synthetic[-1]).getexif()[0x0112] == 6


def test_bit_identical_to_the_app_on_real_and_synthetic_images(spec, synthetic):
    convert = spec.transform.converter()
    files = realdata.images(realdata.VAL_IMAGES) + realdata.images(realdata.CALIBRATION_IMAGES) + synthetic
    assert len(files) == 43 + 85 + 23
    for path in files:
        got, size = convert(str(path))
        assert got.dtype == np.uint8 and got.shape == (256, 256, 3) and got.flags.c_contiguous, path.name
        assert np.array_equal(got, st_app_literal(path)), path.name
        assert size == Image.open(path).size  # no EXIF transpose: the stored size
    rgb = realdata.images(realdata.VAL_IMAGES)[0]  # an RGB file: exactly the app's own line
    assert np.array_equal(convert(str(rgb))[0], cv2.resize(np.array(Image.open(rgb)), (256, 256)))
    exif, plain = convert(str(synthetic[-1]))[0], convert(str(synthetic[9]))[0]
    assert np.abs(exif.astype(int) - plain.astype(int)).mean() < 3  # not rotated (only JPEG re-encoding differs)


def test_preprocess_writes_uint8_nhwc_by_default_and_refuses_other_dtypes(cli, tmp_path):
    args = ["preprocess", "--model", "ssd-mobilenet-v2-fpnlite", "--val_annotation", realdata.VAL_ANNOTATION,
            "--data_root", realdata.VAL_IMAGES, "--workers", "1", "--no-progress"]
    done = cli(*args, "--save_path", tmp_path / "bins")
    assert done.exit_code == 0, done.output
    assert "ssd-mobilenet-v2-fpnlite: uint8 HWC (256, 256, 3), 196,608 bytes per image" in done.output
    manifest = json.loads((tmp_path / "bins" / "manifest.json").read_text())
    assert manifest["version"] == 3 and len(manifest["images"]) == 43
    assert manifest["input"]["name"] == "serving_default_input_1:0" and manifest["input"]["layout"] == "HWC"
    first = manifest["images"][0]
    written = np.fromfile(tmp_path / "bins" / f"{first['stem']}.bin", np.uint8).reshape(256, 256, 3)
    assert np.array_equal(written, st_app_literal(realdata.VAL_IMAGES / first["file_name"]))
    refused = cli(*args, "--save_path", tmp_path / "f32", "--dtype", "float32")
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines()[-1] == \
        "Error: ssd-mobilenet-v2-fpnlite takes uint8 input, not --dtype float32"
