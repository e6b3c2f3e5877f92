"""The fast transform equals the literal reference transform bit for bit, for every kind of image."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from PIL import Image

from preprocess.errors import ImageFailure, PreprocessError
from preprocess.reference import reference_tensor
from preprocess.spec import ImageTransform
from preprocess.transform import Transformer, input_info, load_rgb

T = ImageTransform()


def _pixels(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth gradient plus noise: JPEG-compressible, and every byte value occurs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x * 255 / max(width, 1), y * 255 / max(height, 1), (x + y) % 256], axis=-1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


# (file name, width, height, how to save)
KINDS = [
    ("rgb.jpg", 640, 480, lambda a: Image.fromarray(a)),
    ("portrait.jpg", 427, 640, lambda a: Image.fromarray(a)),
    ("gray.jpg", 500, 375, lambda a: Image.fromarray(a).convert("L")),
    ("cmyk.jpg", 333, 500, lambda a: Image.fromarray(a).convert("CMYK")),
    ("rgb.png", 211, 157, lambda a: Image.fromarray(a)),
    ("rgba.png", 97, 130, lambda a: Image.fromarray(np.dstack([a, a[..., :1]]))),
    ("palette.png", 301, 299, lambda a: Image.fromarray(a).convert("P")),
    ("gray16.png", 120, 80, lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257)),
    ("bilevel.png", 64, 48, lambda a: Image.fromarray(a).convert("1")),
    ("same-size.jpg", 300, 300, lambda a: Image.fromarray(a)),
    ("wide.jpg", 1000, 37, lambda a: Image.fromarray(a)),
    ("tiny.png", 1, 1, lambda a: Image.fromarray(a)),
    ("tiny2x3.jpg", 2, 3, lambda a: Image.fromarray(a)),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kinds")
    paths = {}
    for seed, (name, width, height, make) in enumerate(KINDS):
        make(_pixels(width, height, seed)).save(folder / name, **({"quality": 90} if name.endswith(".jpg") else {}))
        paths[name] = folder / name
    return paths


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
@pytest.mark.parametrize("name", [k[0] for k in KINDS])
def test_fast_path_is_bit_identical_to_reference(images, name, dtype):
    got, size = Transformer(T, dtype)(str(images[name]))
    expected = reference_tensor(images[name], T, dtype)
    assert got.dtype == expected.dtype and got.shape == expected.shape and got.flags.c_contiguous
    assert np.array_equal(got, expected)
    assert size == Image.open(images[name]).size


def test_formats_match_the_manifest_contract():
    f32 = input_info(T, "float32").tensor
    assert (f32.name, f32.shape, f32.nbytes) == ("image", (3, 300, 300), 1_080_000)
    assert input_info(T, "float16").tensor.nbytes == 540_000
    u8 = input_info(T, "uint8")
    assert (u8.layout, u8.tensor.shape, u8.tensor.nbytes, u8.normalized) == ("HWC", (300, 300, 3), 270_000, False)
    assert Transformer(T, "uint8").input_info("x") == dataclasses.replace(u8, tensor=dataclasses.replace(u8.tensor,
                                                                                                         name="x"))


def test_reference_agrees_with_torch_tensor_ops(images):
    """The numpy reference = torchvision ToTensor (div 255) + Normalize (sub_, div_) in float32."""
    torch = pytest.importorskip("torch")
    for name in ("rgb.jpg", "gray.jpg", "cmyk.jpg"):
        hwc = reference_tensor(images[name], T, "uint8")
        x = torch.from_numpy(hwc).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
        mean = torch.as_tensor(T.mean, dtype=torch.float32)[:, None, None]
        std = torch.as_tensor(T.std, dtype=torch.float32)[:, None, None]
        x.sub_(mean).div_(std)
        assert np.array_equal(x.numpy(), reference_tensor(images[name], T))


def test_values_are_the_normalised_pixels_within_1e6(images):
    """Independent float64 check of the arithmetic itself."""
    hwc = reference_tensor(images["rgb.jpg"], T, "uint8").astype(np.float64)
    exact = (hwc.transpose(2, 0, 1) / 255 - np.array(T.mean)[:, None, None]) / np.array(T.std)[:, None, None]
    got, _ = Transformer(T)(str(images["rgb.jpg"]))
    assert np.abs(got - exact).max() < 1e-6


def test_bgr_order_reverses_channels_and_statistics(images):
    bgr = dataclasses.replace(T, channel_order="BGR", mean=T.mean[::-1], std=T.std[::-1])
    got, _ = Transformer(bgr)(str(images["rgb.jpg"]))
    assert np.array_equal(got, reference_tensor(images["rgb.jpg"], T)[::-1])
    got, _ = Transformer(bgr, "uint8")(str(images["rgb.jpg"]))
    assert got.flags.c_contiguous and np.array_equal(got, reference_tensor(images["rgb.jpg"], T, "uint8")[..., ::-1])


@pytest.mark.parametrize("change, message", [
    ({"resize": "cv2_linear"}, "resize 'cv2_linear'"),
    ({"keep_aspect": True}, "keep_aspect=True"),
    ({"channel_order": "YUV"}, "channel order 'YUV'"),
])
def test_unsupported_transforms_are_refused(change, message):
    with pytest.raises(PreprocessError, match=message):
        input_info(dataclasses.replace(T, **change), "float32")
    with pytest.raises(PreprocessError, match="--dtype"):
        input_info(T, "int8")


def test_bad_files_raise_image_failure_with_a_reason(images, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    data = images["rgb.jpg"].read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for name, reason in [("missing.jpg", "image file not found"), ("empty.jpg", "empty file (0 bytes)"),
                         ("text.jpg", "not a recognised image format"), ("cut.jpg", "cannot decode: image file is truncated")]:
        with pytest.raises(ImageFailure, match=re.escape(reason)):
            load_rgb(str(tmp_path / name))
