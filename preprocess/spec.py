"""Plain description of a detector's evaluation-time image transform."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageTransform:
    """How one image becomes one input tensor.

    value = (pixel * scale - mean[c]) / std[c] per channel, in `channel_order`, CHW layout.
    """

    height: int = 300
    width: int = 300
    channel_order: str = "RGB"
    resize: str = "pil_bilinear"  # PIL resize to (width, height), aspect not kept
    keep_aspect: bool = False
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
