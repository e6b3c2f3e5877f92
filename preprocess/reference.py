"""The reference transform written out literally, one image at a time.

This is `SSDTransformer(val=True)` of the MLPerf/NVIDIA SSD code (torchvision Resize, ToTensor,
Normalize) and the Ascend `ssd_preprocess.py` loop, in plain numpy. It is deliberately naive:
tests and benchmarks/preprocess_bench.py check the fast path in preprocess/transform.py against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from preprocess.spec import ImageTransform


def reference_tensor(path: str | Path, transform: ImageTransform = ImageTransform(),
                     dtype: str = "float32") -> np.ndarray:
    """PIL open -> RGB -> bilinear resize -> ToTensor (/255, float32) -> Normalize (float32)."""
    if transform.channel_order != "RGB" or abs(transform.scale * 255 - 1) > 1e-12:
        raise ValueError("the reference covers the RGB, /255 transform only")
    image = Image.open(path).convert("RGB")
    image = image.resize((transform.width, transform.height), Image.BILINEAR)
    hwc = np.array(image, dtype=np.uint8)
    if dtype == "uint8":
        return hwc  # raw resized RGB, HWC
    x = hwc.transpose(2, 0, 1).astype(np.float32) / np.float32(255)  # ToTensor
    mean = np.asarray(transform.mean, dtype=np.float32)[:, None, None]  # Normalize
    std = np.asarray(transform.std, dtype=np.float32)[:, None, None]
    x = (x - mean) / std
    return np.ascontiguousarray(x.astype(dtype))


def reference_bin(path: str | Path, out: str | Path, transform: ImageTransform = ImageTransform(),
                  dtype: str = "float32") -> None:
    """What the Ascend script does per image: `tensor.numpy().tofile(<save_path>/<stem>.bin)`."""
    reference_tensor(path, transform, dtype).tofile(str(out))
