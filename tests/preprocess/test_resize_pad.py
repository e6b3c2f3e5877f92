"""maskrcnn-benchmark's test transform (data/transforms/transforms.py), against literal rules written here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from preprocess.errors import ImageFailure, PreprocessError
from preprocess.resize_pad import (PIXEL_MEAN_BGR, ResizePadTransform, bgr255_minus_mean, exact_canvas, prepare,
                                   prepare_file, resized_size)


def literal_size(w, h, min_size=800, max_size=1333):
    """Resize.get_size, word for word: (new_w, new_h)."""
    size = min_size
    if max(w, h) / min(w, h) * size > max_size:
        size = round(max_size * min(w, h) / max(w, h))  # Python round: half to even
    if min(w, h) == size:
        return w, h  # "already equal": unchanged
    if w < h:
        return size, int(size * h / w)  # long side truncated
    return int(size * w / h), size


@pytest.mark.parametrize("w, h, expected", [
    (640, 480, (1066, 800)),  # 800 * 640 / 480 = 1066.67: truncated, not rounded
    (480, 640, (800, 1066)),
    (427, 640, (800, 1199)),  # a COCO shape: 1199.06
    (211, 157, (1075, 800)),  # odd sides: 1075.16
    (97, 130, (800, 1072)),
    (500, 500, (800, 800)),
    (1333, 800, (1333, 800)),  # already equal: untouched
    (800, 1200, (800, 1200)),  # already equal on the short side, long side within bounds
    (2666, 1600, (1333, 800)),  # long/short * 800 == 1333 exactly: not above the bound
    (1500, 2600, (769, 1332)),  # size = round(769.04) = 769; 769 * 2600 / 1500 = 1332.93 -> 1332
    (2000, 3000, (800, 1200)),  # 1.5 * 800 = 1200: within the bound
    (1000, 200, (1335, 267)),  # size = round(266.6) = 267; 267 * 5 = 1335: the bound can be passed
    (2, 1, (1332, 666)),  # size = round(666.5) = 666 (half to even; half up would give 667)
    (1, 1000, (1, 1000)),  # size = round(1.333) = 1 = the short side: unchanged
])
def test_resized_size_follows_the_reference_rules(w, h, expected):
    assert literal_size(w, h) == expected
    assert resized_size(w, h) == expected


def test_pixels_are_bgr_times_255_minus_the_mean_bit_for_bit():
    pixels = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    pixels[..., 1] = 255 - pixels[..., 1]
    got = bgr255_minus_mean(pixels)
    # the reference's float32 ops: ToTensor (/255), BGR, x255, minus mean
    literal = ((pixels.astype(np.float32) / np.float32(255))[..., ::-1] * np.float32(255)).transpose(2, 0, 1) \
        - np.asarray(PIXEL_MEAN_BGR, np.float32).reshape(3, 1, 1)
    assert got.dtype == np.float32 and np.array_equal(got, literal)
    assert got[0, 0, 1] == np.float32(1.0) - np.float32(102.9801)  # channel 0 is blue (the image's third)


def test_prepare_pads_bottom_right_and_records_the_geometry():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    padded = prepare(image)
    assert padded.tensor.shape == (3, 1344, 1344)
    assert padded.resized_size == (1066, 800) and padded.original_size == (640, 480)
    assert padded.padding == (544, 278) and padded.im_info == (800, 1066)
    assert padded.scale == (1066 / 640, 800 / 480)
    resized = np.asarray(image.resize((1066, 800), Image.Resampling.BILINEAR))
    assert np.array_equal(padded.tensor[:, :800, :1066], bgr255_minus_mean(resized))
    assert not padded.tensor[:, 800:].any() and not padded.tensor[:, :, 1066:].any()
    assert padded.record() == {"resized_width": 1066, "resized_height": 800, "scale_x": 1066 / 640,
                               "scale_y": 800 / 480, "pad_bottom": 544, "pad_right": 278}


def test_exact_mode_pads_only_to_the_image_multiple_of_32():
    image = Image.new("RGB", (211, 157), (10, 20, 30))
    padded = prepare(image, ResizePadTransform(canvas=None))
    assert padded.resized_size == (1075, 800)
    assert padded.canvas == exact_canvas(800, 1075) == (800, 1088) and padded.padding == (0, 13)
    unchanged = prepare(Image.new("RGB", (1333, 800)), ResizePadTransform(canvas=None))
    assert unchanged.canvas == (800, 1344)


def test_canvas_must_hold_the_image_and_be_a_multiple_of_32(tmp_path):
    with pytest.raises(PreprocessError, match="multiples of 32"):
        ResizePadTransform(canvas=(800, 1300))
    with pytest.raises(ImageFailure, match="1066x800, which does not fit the 1024x1024 canvas"):
        prepare(Image.new("RGB", (640, 480)), ResizePadTransform(canvas=(1024, 1024)))
    path = tmp_path / "gray.png"
    Image.new("L", (100, 50), 7).save(path)
    padded = prepare_file(str(path), ResizePadTransform(canvas=(672, 1344)))  # grayscale -> RGB like PIL
    assert padded.resized_size == (1332, 666) and padded.tensor[0, 0, 0] == np.float32(7) - np.float32(102.9801)
