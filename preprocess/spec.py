"""Plain description of a detector's evaluation-time image transform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

DECODED_ORDER = {"pil": "RGB", "cv2": "BGR"}  # channel order of each decoder's pixels
# `--canvas exact`: a resize-and-pad model's images each padded only to their own multiple of 32, so the
# input height and width differ per image (preprocess.resize_pad; the reference at TEST.IMS_PER_BATCH 1)
EXACT_CANVAS = "exact"


@dataclass(frozen=True)
class ImageTransform:
    """How one image becomes one input tensor.

    decode (`decoder`) -> resize (`resize`) -> value = (pixel * scale - mean[c]) / std[c] per channel,
    in `channel_order`, CHW layout. `pixel_order` is the channel order of the raw resized pixels
    (what uint8 bins hold and device-side normalisation such as AIPP receives); empty means
    `channel_order`.

    decoder  pil: PIL open + convert("RGB") (torchvision-based references)
             cv2: cv2.imdecode(IMREAD_COLOR) -> BGR (mmcv imfrombytes, the mmdetection pipelines)
    resize   pil_bilinear: PIL resize BILINEAR · cv2_linear: cv2.resize INTER_LINEAR (mmcv.imresize)
    """

    height: int = 300
    width: int = 300
    channel_order: str = "RGB"
    resize: str = "pil_bilinear"  # PIL resize to (width, height), aspect not kept
    keep_aspect: bool = False
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    decoder: str = "pil"
    pixel_order: str = ""

    dtypes: ClassVar[tuple[str, ...]] = ("float32", "float16", "uint8")  # what preprocess can write for it

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The model's per-image input shape (CHW) for this transform."""
        return 3, self.height, self.width

    @property
    def raw_order(self) -> str:
        """Channel order of the un-normalised pixels (uint8 bins, AIPP input)."""
        return self.pixel_order or self.channel_order

    def converter(self, dtype: str = "float32"):
        """The preprocess stage's converter (preprocess.converter) for this transform."""
        from preprocess.transform import Transformer

        return Transformer(self, dtype)

    def describe(self) -> dict:
        """The transform as plain data (ModelSpec.describe, `ssdconvert models`)."""
        return {"channel_order": self.channel_order, "decoder": self.decoder,
                "resize": f"{self.resize} {self.width}x{self.height}" + ("" if self.keep_aspect else ", aspect not kept"),
                "scale": self.scale, "mean": list(self.mean), "std": list(self.std)}


# mmdetection SSD300 test pipeline (configs/ssd/ssd300_coco.py; 3.x DetDataPreprocessor): cv2 BGR,
# cv2 bilinear 300x300 without keeping the aspect, BGR -> RGB, minus the mean, std 1.
MMDET_SSD300 = ImageTransform(channel_order="RGB", resize="cv2_linear", scale=1.0, mean=(123.675, 116.28, 103.53),
                              std=(1.0, 1.0, 1.0), decoder="cv2", pixel_order="BGR")
