"""The mmcv-style transform of ssd-vgg16 is bit-identical to mmcv/mmdet's pipeline written out
literally here (imfrombytes -> imresize -> imnormalize / DetDataPreprocessor) on every kind of file,
and the decoded sizes that eval rescales by are recorded in the manifest."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from preprocess.run import preprocess_dataset
from preprocess.spec import MMDET_SSD300
from preprocess.transform import Transformer
from ssdconvert.backends.ascend.compile import aipp_config_text, aipp_values

MEAN = [123.675, 116.28, 103.53]


def mmcv2_transform(path) -> np.ndarray:
    """mmdet 2.x test pipeline: LoadImageFromFile (mmcv.imfrombytes, cv2, 'color'), Resize keep_ratio
    False (mmcv.imresize, cv2 INTER_LINEAR), Normalize (mmcv.imnormalize: float32 copy, BGR->RGB,
    cv2.subtract(mean), cv2.multiply(1/std)), ImageToTensor (HWC -> CHW)."""
    with open(path, "rb") as fh:
        img = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)
    img = cv2.resize(img, (300, 300), interpolation=cv2.INTER_LINEAR)
    img = img.copy().astype(np.float32)
    mean = np.float64(np.array(MEAN).reshape(1, -1))
    stdinv = 1 / np.float64(np.array([1.0, 1.0, 1.0]).reshape(1, -1))
    cv2.cvtColor(img, cv2.COLOR_BGR2RGB, img)
    cv2.subtract(img, mean, img)
    cv2.multiply(img, stdinv, img)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def mmdet3_transform(path) -> np.ndarray:
    """mmdet 3.x: the same load and resize, then DetDataPreprocessor: channel flip, .float(), (x - mean) / std."""
    with open(path, "rb") as fh:
        img = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)
    img = cv2.resize(img, (300, 300), interpolation=cv2.INTER_LINEAR)
    x = torch.from_numpy(img).permute(2, 0, 1)[[2, 1, 0], ...].float()
    return ((x - torch.tensor(MEAN).view(-1, 1, 1)) / torch.tensor([1.0, 1.0, 1.0]).view(-1, 1, 1)).numpy()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (157, 211, 3), dtype=np.uint8)
    files = {}
    Image.fromarray(pixels).save(root / "rgb.jpg", quality=90)
    Image.fromarray(pixels).convert("L").save(root / "gray.jpg", quality=90)
    Image.fromarray(pixels).convert("CMYK").save(root / "cmyk.jpg", quality=90)
    Image.fromarray(np.dstack([pixels, rng.integers(0, 256, pixels.shape[:2], dtype=np.uint8)])).save(root / "rgba.png")
    Image.fromarray(pixels).convert("P", palette=Image.Palette.ADAPTIVE, colors=37).save(root / "palette.png")
    Image.fromarray(pixels).save(root / "rgb.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    Image.fromarray(pixels).save(root / "exif.jpg", quality=90, exif=exif)
    Image.fromarray(rng.integers(0, 256, (7, 1001, 3), dtype=np.uint8)).save(root / "odd.jpg", quality=95)
    for p in root.iterdir():
        files[p.name] = p
    return files


NAMES = ["rgb.jpg", "gray.jpg", "cmyk.jpg", "rgba.png", "palette.png", "rgb.png", "exif.jpg", "odd.jpg"]


@pytest.mark.parametrize("name", NAMES)
def test_bit_identical_to_mmcv_2x_and_mmdet_3x(images, name):
    got, size = Transformer(MMDET_SSD300)(str(images[name]))
    assert got.dtype == np.float32 and got.shape == (3, 300, 300) and got.flags.c_contiguous
    assert np.array_equal(got, mmcv2_transform(images[name]))
    assert np.array_equal(got, mmdet3_transform(images[name]))
    with open(images[name], "rb") as fh:
        decoded = cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)
    assert size == (decoded.shape[1], decoded.shape[0])


def test_what_cv2_does_with_each_kind_of_file(images):
    """Checked against the pinned OpenCV: EXIF rotation applied, gray replicated, alpha dropped."""
    def decode(name):
        with open(images[name], "rb") as fh:
            return cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR)

    assert decode("rgb.jpg").shape == (157, 211, 3)
    assert decode("exif.jpg").shape == (211, 157, 3)  # IMREAD_COLOR honours the orientation tag
    gray = decode("gray.jpg")
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    rgba, rgb = decode("rgba.png"), decode("rgb.png")
    assert np.array_equal(rgba, rgb)  # alpha is dropped, not composited
    assert np.array_equal(decode("rgb.png"), np.asarray(Image.open(images["rgb.png"]))[..., ::-1])  # BGR
    assert len(np.unique(decode("palette.png").reshape(-1, 3), axis=0)) <= 37


def test_uint8_bins_hold_bgr_pixels_for_aipp(images):
    raw, _ = Transformer(MMDET_SSD300, "uint8")(str(images["rgb.jpg"]))
    with open(images["rgb.jpg"], "rb") as fh:
        bgr = cv2.resize(cv2.imdecode(np.frombuffer(fh.read(), np.uint8), cv2.IMREAD_COLOR), (300, 300),
                         interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(raw, bgr)
    # AIPP swaps R<->B first, then subtracts the mean in pixel units, no std
    text = aipp_config_text(MMDET_SSD300, "ssd-vgg16")
    assert "rbuv_swap_switch: true" in text
    ch = aipp_values(MMDET_SSD300)
    assert [c["mean_chn"] for c in ch] == [123, 116, 103] and [c["var_reci_chn"] for c in ch] == [1.0] * 3
    assert [round(c["min_chn"], 6) for c in ch] == [0.675, 0.28, 0.53]
    aipp = (raw[..., ::-1].astype(np.float64) - [c["mean_chn"] + c["min_chn"] for c in ch]).transpose(2, 0, 1)
    assert np.abs(aipp - mmcv2_transform(images["rgb.jpg"])).max() < 1e-4


def test_manifest_records_decoder_and_decoded_sizes(images, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    records = []
    for k, name in enumerate(["rgb.jpg", "exif.jpg"]):
        (data / name).write_bytes(images[name].read_bytes())
        records.append({"id": k + 1, "file_name": name, "width": 211, "height": 157})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": records, "annotations": [], "categories": []}))
    s = preprocess_dataset(ann, data, tmp_path / "bins", MMDET_SSD300, model="ssd-vgg16", all_images=True, workers=1,
                           progress=False)
    doc = json.loads(s.manifest_path.read_text())
    assert doc["version"] == 3 and doc["input"]["decoder"] == "cv2" and doc["input"]["pixel_order"] == "BGR"
    assert doc["opencv_version"] == cv2.__version__
    sizes = {r["file_name"]: (r["decoded_width"], r["decoded_height"]) for r in doc["images"]}
    assert sizes == {"rgb.jpg": (211, 157), "exif.jpg": (157, 211)}
    assert any("differ from their json width/height" in w for w in s.warnings)
    # a resumed run keeps the decoded sizes of the .bin files it reuses
    again = preprocess_dataset(ann, data, tmp_path / "bins", MMDET_SSD300, model="ssd-vgg16", all_images=True,
                               workers=1, progress=False)
    assert again.reused == 2
    doc = json.loads(again.manifest_path.read_text())
    assert {r["file_name"]: (r["decoded_width"], r["decoded_height"]) for r in doc["images"]} == sizes
