"""What postprocess needs to know about one evaluated image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ImageLike(Protocol):
    """Any record with these attributes works (e.g. preprocess.manifest.ImageRecord).

    Optional: decoded_width / decoded_height, the size of the decoded pixels when it differs from
    the json (e.g. an EXIF rotation applied by the decoder); heads that rescale by the decoded
    image (mmdet) use it, see `decoded_size`.
    """

    id: int
    stem: str  # result files are <stem>_<output index>.bin
    width: int  # original image size (json): NVIDIA heads scale boxes by it
    height: int


@dataclass(frozen=True)
class ImageRef:
    id: int
    stem: str
    width: int
    height: int


def decoded_size(image: ImageLike) -> tuple[int, int]:
    """(width, height) of the decoded image: the recorded decoded size, else the json size."""
    w, h = getattr(image, "decoded_width", None), getattr(image, "decoded_height", None)
    return (int(w), int(h)) if w and h else (int(image.width), int(image.height))
