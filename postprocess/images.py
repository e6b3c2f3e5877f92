"""What postprocess needs to know about one evaluated image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ImageLike(Protocol):
    """Any record with these attributes works (e.g. preprocess.manifest.ImageRecord)."""

    id: int
    stem: str  # result files are <stem>_<output index>.bin
    width: int  # original image size: boxes are scaled by it
    height: int


@dataclass(frozen=True)
class ImageRef:
    id: int
    stem: str
    width: int
    height: int
