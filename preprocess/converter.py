"""What the preprocess stage needs from a model's transform: one image file -> its input tensors.

A transform (preprocess.spec.ImageTransform, preprocess.resize_pad.ResizePadTransform) gives a
converter for an output dtype. The converter decodes and transforms one image into the tensors of
every model input it feeds: the image tensor (`<stem>.bin`) and, for models with side inputs such
as Faster R-CNN's im_info, one tensor per side input (`<folder>/<stem>.bin`). `geometry` gives the
per-image fields the manifest records for evaluation (resized size, scale, padding); it depends on
the decoded size only, so images whose files are reused from an earlier run get it too, and so does
`image_nbytes`, the size of the image tensor file (the same for every image unless the transform
pads each image to its own size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from preprocess.manifest import InputInfo, SideInput


@dataclass(frozen=True)
class Converted:
    """One image's tensors (the image first, then each side input in order) and its decoded (w, h)."""

    tensors: tuple[np.ndarray, ...]
    decoded_size: tuple[int, int]


class Converter(Protocol):
    side_inputs: tuple[SideInput, ...]

    def convert(self, path: str) -> Converted: ...

    def geometry(self, decoded_size: tuple[int, int]) -> dict: ...

    def image_nbytes(self, decoded_size: tuple[int, int]) -> int: ...

    def input_info(self, name: str) -> InputInfo: ...
