"""maskrcnn-benchmark's test transform: keep-ratio resize, BGR x255 minus mean, zero padding.

Verified in facebookresearch/maskrcnn-benchmark (HEAD 57eec25b):

- `data/transforms/transforms.py` Resize(800, 1333).get_size: size = 800; if long/short * size >
  1333, size = int(round(1333 * short / long)) (Python round: half to even); if the short side
  already equals size the image is left as it is; otherwise the short side becomes size and the
  long side int(size * long / short) (truncated). F.resize(image, (h, w)) is PIL's resize with
  BILINEAR (Pillow returns an unchanged copy when the size is already right).
- ToTensor (uint8 / 255 in float32), then Normalize(to_bgr255=True): channels reversed to BGR,
  x 255, minus PIXEL_MEAN [102.9801, 115.9465, 122.7717] (std 1). In float32, p / 255 * 255 == p
  for every uint8 p (the tests check all 256), so the tensor is float32(p) - float32(mean),
  bit-identical to the reference.
- `structures/image_list.py` to_image_list(size_divisible=32): zeros at the bottom and right up to
  the batch's largest image rounded up to a multiple of 32; the model keeps each image's
  unpadded (h, w) in image_sizes.

A device model needs one static shape, so images are padded to a fixed canvas (default
1344 x 1344: the largest resized side is 1333, rounded up to 32) instead of to the largest image
of the batch. That is not neutral: border features see the padding through the deeper layers, so
detections move slightly with the canvas (as they do in the reference with the batch's largest
image). `canvas=None` is the exact mode (`--canvas exact`): each image padded only to its own
multiple of 32, the reference at TEST.IMS_PER_BATCH 1; the tensor files then differ in size, and
the manifest gives each image's shape (resized size + padding) with a dynamic input shape
(3, None, None). `exact_mode` makes its transform (the reference rule; a scaled rule for tests).

`for_canvas` makes the transform of a canvas: the reference's 800/1333 when every image fits it
(both sides at least 1333, i.e. 1344 and up), otherwise the rule scaled down so that every image
still fits (a smaller demo canvas; not the reference). The preprocess stage writes the image tensor
and the model's second input, im_info = the unpadded (height, width) as float32, as
`im_info/<stem>.bin` (ResizePadConverter), and the manifest records each image's resized size,
scale factors and padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image

from preprocess.converter import Converted
from preprocess.errors import ImageFailure, PreprocessError
from preprocess.manifest import InputInfo, SideInput
from preprocess.transform import load_rgb
from stageio.tensor import TensorSpec, nbytes

MIN_SIZE_TEST = 800
MAX_SIZE_TEST = 1333
PIXEL_MEAN_BGR = (102.9801, 115.9465, 122.7717)
SIZE_DIVISIBILITY = 32
DEFAULT_CANVAS = (1344, 1344)  # (height, width)
IM_INFO = SideInput(TensorSpec("im_info", (2,), "float32",
                               meaning="unpadded (height, width) of the resized image: the RPN and the box head "
                                       "clip to it"), folder="im_info", layout="ND")


@dataclass(frozen=True)
class ResizePadTransform:
    """Parameters of the transform; canvas is (height, width), or None for the exact mode."""

    min_size: int = MIN_SIZE_TEST
    max_size: int = MAX_SIZE_TEST
    mean: tuple[float, float, float] = PIXEL_MEAN_BGR  # BGR order
    canvas: tuple[int, int] | None = DEFAULT_CANVAS
    size_divisibility: int = SIZE_DIVISIBILITY

    dtypes: ClassVar[tuple[str, ...]] = ("float32",)  # the reference's float tensor only (no uint8/AIPP path)
    channel_order: ClassVar[str] = "BGR"
    decoder: ClassVar[str] = "pil"

    def __post_init__(self) -> None:
        if self.canvas is not None:
            height, width = self.canvas
            d = self.size_divisibility
            if height <= 0 or width <= 0 or height % d or width % d:
                raise PreprocessError(f"canvas {height}x{width} must be positive multiples of {d}")
        if not 0 < self.min_size <= self.max_size:
            raise PreprocessError(f"resize sizes must satisfy 0 < min ({self.min_size}) <= max ({self.max_size})")

    @property
    def height(self) -> int:
        return self._fixed_canvas()[0]

    @property
    def width(self) -> int:
        return self._fixed_canvas()[1]

    def _fixed_canvas(self) -> tuple[int, int]:
        if self.canvas is None:
            raise PreprocessError("the exact mode (canvas None) pads each image to its own size: no fixed tensor shape")
        return self.canvas

    @property
    def input_shape(self) -> tuple[int, int | None, int | None]:
        """The model's per-image input shape: (3, canvas), or (3, None, None) in the exact mode."""
        return (3, None, None) if self.canvas is None else (3, *self.canvas)

    def canvas_for(self, resized: tuple[int, int]) -> tuple[int, int]:
        """The padded (height, width) of an image resized to `resized` (width, height)."""
        return self.canvas or exact_canvas(resized[1], resized[0], self.size_divisibility)

    def converter(self, dtype: str = "float32") -> "ResizePadConverter":
        """The preprocess stage's converter (preprocess.converter): image tensor + im_info."""
        return ResizePadConverter(self, dtype)

    def describe(self) -> dict:
        canvas = "each image to its own multiple of 32" if self.canvas is None else \
            f"to {self.canvas[0]}x{self.canvas[1]} (height x width)"
        return {"channel_order": self.channel_order, "decoder": self.decoder,
                "resize": f"pil_bilinear keeping the aspect: short side {self.min_size}, long side <= "
                          f"{self.max_size}; zeros bottom/right {canvas}",
                "scale": 1.0, "mean": list(self.mean), "std": [1.0, 1.0, 1.0]}


@dataclass(frozen=True)
class PaddedImage:
    """One image ready for the model, and what the evaluation needs to undo the resize."""

    tensor: np.ndarray  # (3, canvas_h, canvas_w) float32, BGR x255 minus mean, zeros past the image
    original_size: tuple[int, int]  # (width, height) as decoded
    resized_size: tuple[int, int]  # (width, height) after the resize, before padding

    @property
    def canvas(self) -> tuple[int, int]:
        return self.tensor.shape[1], self.tensor.shape[2]

    @property
    def padding(self) -> tuple[int, int]:
        """(bottom, right) rows and columns of zeros."""
        return self.canvas[0] - self.resized_size[1], self.canvas[1] - self.resized_size[0]

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) resize factors, resized / original."""
        return self.resized_size[0] / self.original_size[0], self.resized_size[1] / self.original_size[1]

    @property
    def im_info(self) -> tuple[int, int]:
        """The model's second input: the unpadded (height, width)."""
        return self.resized_size[1], self.resized_size[0]

    def record(self) -> dict:
        """What a manifest keeps per image (preprocess.manifest.ImageRecord's geometry fields)."""
        return geometry_record(self.original_size, self.resized_size, self.canvas)


def geometry_record(original: tuple[int, int], resized: tuple[int, int], canvas: tuple[int, int]) -> dict:
    """ImageRecord fields of one image: (width, height) sizes, canvas (height, width)."""
    return {"resized_width": resized[0], "resized_height": resized[1], "scale_x": resized[0] / original[0],
            "scale_y": resized[1] / original[1], "pad_bottom": canvas[0] - resized[1], "pad_right": canvas[1] - resized[0]}


def resized_size(width: int, height: int, min_size: int = MIN_SIZE_TEST,
                 max_size: int = MAX_SIZE_TEST) -> tuple[int, int]:
    """(width, height) after Resize(min_size, max_size).get_size."""
    size = min_size
    short, long = float(min(width, height)), float(max(width, height))
    if long / short * size > max_size:
        size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return width, height
    if width < height:
        return size, int(size * height / width)
    return int(size * width / height), size


def exact_canvas(height: int, width: int, divisor: int = SIZE_DIVISIBILITY) -> tuple[int, int]:
    """The reference's padded size for one image: each side rounded up to a multiple of `divisor`."""
    return math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor


def bgr255_minus_mean(rgb: np.ndarray, mean: tuple[float, float, float] = PIXEL_MEAN_BGR) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (3, H, W): BGR pixel values minus the mean, in float32."""
    out = np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1), dtype=np.float32)
    np.subtract(out, np.asarray(mean, dtype=np.float32).reshape(3, 1, 1), out=out)
    return out


def pad_bottom_right(tensor: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """(C, h, w) -> (C, H, W) with zeros below and to the right."""
    c, h, w = tensor.shape
    height, width = canvas
    if h > height or w > width:
        raise ImageFailure(f"resized to {w}x{h}, which does not fit the {width}x{height} canvas")
    out = np.zeros((c, height, width), dtype=tensor.dtype)
    out[:, :h, :w] = tensor
    return out


def prepare(image: Image.Image, transform: ResizePadTransform = ResizePadTransform()) -> PaddedImage:
    """An RGB PIL image -> PaddedImage."""
    width, height = image.size
    new_w, new_h = resized_size(width, height, transform.min_size, transform.max_size)
    resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = transform.canvas_for((new_w, new_h))
    tensor = pad_bottom_right(bgr255_minus_mean(np.asarray(resized), transform.mean), canvas)
    return PaddedImage(tensor, (width, height), (new_w, new_h))


def prepare_file(path: str, transform: ResizePadTransform = ResizePadTransform()) -> PaddedImage:
    """Decode `path` like the reference (PIL, RGB) and prepare it; ImageFailure says why not."""
    return prepare(load_rgb(path), transform)


def for_canvas(canvas: tuple[int, int], min_size: int = MIN_SIZE_TEST, max_size: int = MAX_SIZE_TEST) -> ResizePadTransform:
    """The transform for `canvas` (height, width): the given resize rule if every image fits after it
    (both canvas sides >= max_size), else the rule scaled by min(canvas) / 1344 (the reference
    canvas) so that the long side stays inside the smaller canvas side."""
    height, width = canvas
    if min(height, width) >= max_size:
        return ResizePadTransform(min_size, max_size, canvas=(height, width))
    reference = exact_canvas(max_size, max_size)[0]
    factor = min(height, width) / reference
    return ResizePadTransform(max(1, math.floor(min_size * factor)), max(1, math.floor(max_size * factor)),
                              canvas=(height, width))


def exact_mode(min_size: int = MIN_SIZE_TEST, max_size: int = MAX_SIZE_TEST) -> ResizePadTransform:
    """The exact mode's transform: each image padded to its own multiple of 32. The defaults are the reference;
    a smaller rule keeps test images small (not the reference)."""
    return ResizePadTransform(min_size, max_size, canvas=None)


class ResizePadConverter:
    """preprocess.converter for a ResizePadTransform: the padded image tensor and im_info per image."""

    side_inputs = (IM_INFO,)

    def __init__(self, transform: ResizePadTransform, dtype: str = "float32") -> None:
        if dtype not in transform.dtypes:
            raise PreprocessError(f"this model's transform writes {', '.join(transform.dtypes)} only, not {dtype} "
                                  "(the reference feeds the network float32 BGR values)")
        self.transform = transform

    def convert(self, path: str) -> Converted:
        padded = prepare_file(path, self.transform)
        return Converted((padded.tensor, np.asarray(padded.im_info, dtype=np.float32)), padded.original_size)

    def geometry(self, decoded_size: tuple[int, int]) -> dict:
        resized = self._resized(decoded_size)
        return geometry_record(decoded_size, resized, self.transform.canvas_for(resized))

    def image_nbytes(self, decoded_size: tuple[int, int]) -> int:
        return nbytes((3, *self.transform.canvas_for(self._resized(decoded_size))), "float32")

    def _resized(self, decoded_size: tuple[int, int]) -> tuple[int, int]:
        return resized_size(*decoded_size, self.transform.min_size, self.transform.max_size)

    def input_info(self, name: str) -> InputInfo:
        t = self.transform
        return InputInfo(TensorSpec(name, t.input_shape, "float32"), layout="CHW", channel_order="BGR",
                         resize=t.describe()["resize"], keep_aspect=True, scale=1.0, mean=tuple(t.mean),
                         std=(1.0, 1.0, 1.0), normalized=True, decoder="pil")
