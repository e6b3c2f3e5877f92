"""One image file -> one input tensor, pixel-exact with the reference transform.

PIL families (torchvision `Resize` + `ToTensor` + `Normalize` on a PIL image):
`open -> convert("RGB") -> resize(BILINEAR) -> uint8 -> /255 in float32 -> (x - mean) / std in
float32`. This module does the same IEEE float32 operations in the same order, just in place on
one contiguous CHW buffer, so the result is bit-identical (see preprocess/reference.py and the
tests). No draft-mode decoding and no other resizer: both change pixels.

cv2 families (mmdetection): mmcv `imfrombytes(flag='color')` is `cv2.imdecode(np.frombuffer(bytes),
IMREAD_COLOR)` (mmcv/image/io.py): BGR uint8; grayscale and palette files become 3 equal or
expanded channels, CMYK JPEGs are converted by libjpeg, PNG alpha is dropped (no compositing),
16-bit PNGs are scaled to 8 bits, and the EXIF orientation is applied (IMREAD_COLOR honours it;
the tests check each of these against cv2 itself). `mmcv.imresize` is `cv2.resize(img, (w, h),
interpolation=INTER_LINEAR)` (no antialias). mmdet 2.x `Normalize` (mmcv.imnormalize: float32
copy, cvtColor BGR->RGB, cv2.subtract(mean), cv2.multiply(1/std)) and 3.x DetDataPreprocessor
(flip channels, .float(), (x - mean) / std) both give float32(v) - float32(mean) for std 1; here
the same float32 operations run in the same order.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
from PIL import Image, UnidentifiedImageError

from preprocess.converter import Converted
from preprocess.errors import ImageFailure, PreprocessError
from preprocess.manifest import DTYPES, InputInfo
from preprocess.spec import DECODED_ORDER, ImageTransform
from stageio.tensor import TensorSpec

RESIZERS = {"pil_bilinear": "pil", "cv2_linear": "cv2"}  # resize method -> the decoder it goes with
CHANNEL_ORDERS = ("RGB", "BGR")


def input_info(transform: ImageTransform, dtype: str, name: str = "image") -> InputInfo:
    """What one .bin of `transform` written as `dtype` holds: float tensors are CHW and normalised, uint8
    is raw HWC pixels. Rejects what we cannot reproduce."""
    if dtype not in DTYPES:
        raise PreprocessError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if transform.resize not in RESIZERS or transform.keep_aspect:
        raise PreprocessError(f"resize {transform.resize!r} (keep_aspect={transform.keep_aspect}) is not "
                              f"implemented; supported: {', '.join(RESIZERS)} without keeping the aspect")
    if RESIZERS[transform.resize] != transform.decoder:
        raise PreprocessError(f"resize {transform.resize!r} goes with the {RESIZERS[transform.resize]} decoder, "
                              f"not {transform.decoder!r}")
    for order in (transform.channel_order, transform.raw_order):
        if order not in CHANNEL_ORDERS:
            raise PreprocessError(f"channel order {order!r} is not supported (RGB or BGR)")
    h, w = transform.height, transform.width
    raw = dtype == "uint8"  # device-side normalisation (e.g. Ascend AIPP) consumes uint8 NHWC
    t = transform
    return InputInfo(TensorSpec(name, (h, w, 3) if raw else (3, h, w), dtype), layout="HWC" if raw else "CHW",
                     channel_order=t.channel_order, resize=t.resize, keep_aspect=t.keep_aspect, scale=t.scale,
                     mean=tuple(t.mean), std=tuple(t.std), normalized=not raw, decoder=t.decoder,
                     pixel_order=t.pixel_order)


def _exact_divisor(scale: float) -> float | None:
    """255.0 for scale 1/255: ToTensor divides by 255, which is not the same as multiplying."""
    if scale <= 0:
        return None
    divisor = round(1.0 / scale)
    return float(divisor) if divisor and abs(1.0 / scale - divisor) < 1e-9 else None


def load_bgr(path: str) -> np.ndarray:
    """mmcv imfrombytes(flag='color', backend='cv2'): BGR uint8 HWC; raise ImageFailure with a reason."""
    import cv2

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ImageFailure("image file not found") from None
    except (PermissionError, IsADirectoryError) as exc:
        raise ImageFailure(f"cannot read: {exc.strerror}") from None
    if not data:
        raise ImageFailure("empty file (0 bytes)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:  # cv2 returns None for unknown formats and undecodable data alike
        raise ImageFailure("not a recognised image format, or corrupt (OpenCV cannot decode it)")
    return image


def load_rgb(path: str) -> Image.Image:
    """Decode `path` fully and convert to RGB, like the reference; raise ImageFailure with a reason."""
    try:
        with Image.open(path) as image:
            image.load()  # decode everything now: truncated data fails here, not later
            # L, CMYK, P, RGBA ... convert exactly like the reference; RGB needs no copy
            return image if image.mode == "RGB" else image.convert("RGB")
    except FileNotFoundError:
        raise ImageFailure("image file not found") from None
    except (PermissionError, IsADirectoryError) as exc:
        raise ImageFailure(f"cannot read: {exc.strerror}") from None
    except UnidentifiedImageError:
        empty = os.path.exists(path) and os.path.getsize(path) == 0
        raise ImageFailure("empty file (0 bytes)" if empty else "not a recognised image format") from None
    except Image.DecompressionBombError as exc:
        raise ImageFailure(f"refused by Pillow: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data, unsupported mode
        raise ImageFailure(f"cannot decode: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - odd files make Pillow plugins raise odd errors
        raise ImageFailure(f"cannot decode: {type(exc).__name__}: {exc}") from None


class Transformer:
    """Turns image files into tensors for one (transform, dtype); constants are precomputed.

    Also the preprocess stage's converter (preprocess.converter) for an ImageTransform: one tensor
    per image, no side inputs, no per-image geometry.
    """

    side_inputs = ()

    def __init__(self, transform: ImageTransform, dtype: str = "float32") -> None:
        self.transform = transform
        self.info = input_info(transform, dtype)
        self.dtype = dtype
        self.size = (transform.width, transform.height)  # PIL and cv2 order
        self.cv2 = transform.decoder == "cv2"
        decoded = DECODED_ORDER[transform.decoder]
        # reverse the decoded channels for the network (float) or for the raw pixels (uint8)
        target = transform.raw_order if dtype == "uint8" else transform.channel_order
        self.flip = target != decoded
        self.divisor = _exact_divisor(transform.scale)
        self.scale = np.float32(transform.scale)
        # torchvision Normalize converts mean/std to the tensor's dtype (float32) first
        self.mean = np.asarray(transform.mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(transform.std, dtype=np.float32).reshape(3, 1, 1)

    def resize(self, image):
        if self.cv2:
            import cv2

            return cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        return image.resize(self.size, Image.Resampling.BILINEAR)

    def normalise(self, resized) -> np.ndarray:
        """uint8 HWC pixels (decoder order) -> the output array (C-contiguous, manifest layout and dtype)."""
        pixels = np.asarray(resized)  # (H, W, 3) uint8, RGB (PIL) or BGR (cv2)
        if self.flip:
            pixels = pixels[..., ::-1]  # a view; the copy below makes it contiguous
        if self.dtype == "uint8":
            return np.ascontiguousarray(pixels)
        out = np.empty((3, *pixels.shape[:2]), dtype=np.float32)
        np.copyto(out, pixels.transpose(2, 0, 1))  # uint8 -> float32 is exact
        if self.divisor is not None:
            np.divide(out, np.float32(self.divisor), out=out)
        else:
            np.multiply(out, self.scale, out=out)
        np.subtract(out, self.mean, out=out)
        np.divide(out, self.std, out=out)
        return out if self.dtype == "float32" else out.astype(self.dtype)

    def __call__(self, path: str) -> tuple[np.ndarray, tuple[int, int]]:
        """Tensor for one image file, and the decoded (width, height) before resizing."""
        if self.cv2:
            image = load_bgr(path)
            return self.normalise(self.resize(image)), (image.shape[1], image.shape[0])
        image = load_rgb(path)
        return self.normalise(self.resize(image)), image.size

    def convert(self, path: str) -> Converted:
        tensor, size = self(path)
        return Converted((tensor,), size)

    def geometry(self, decoded_size: tuple[int, int]) -> dict:
        return {}

    def image_nbytes(self, decoded_size: tuple[int, int]) -> int:
        return self.info.tensor.nbytes

    def input_info(self, name: str) -> InputInfo:
        return replace(self.info, tensor=replace(self.info.tensor, name=name))
