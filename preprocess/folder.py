"""An image folder without annotations (a calibration set) as preprocess's list of images.

Every file directly in the folder whose suffix is an image format's (IMAGE_SUFFIXES, any case), in
sorted order of the names; other files (a README, a PROVENANCE.md) are not images and are left out.
Each image gets the id 1, 2, ... in that order and the width and height its file header states (what a
COCO json records: the stored size, before any EXIF rotation a decoder may apply). A file whose header
cannot be read is a failure of that image, reported like any other.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from preprocess.annotations import ImageEntry
from preprocess.errors import PreprocessError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm",
                            ".gif"})


def folder_images(root: Path) -> tuple[list[ImageEntry], list[tuple[ImageEntry, str]]]:
    """(images whose header gave their size, (image, reason) for those whose header could not be read)."""
    names = sorted(p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not names:
        raise PreprocessError(f"--data_root {root} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                              "give the folder of images (or --val_annotation for a COCO set)")
    images, failures = [], []
    for index, name in enumerate(names):
        try:
            with Image.open(root / name) as image:
                width, height = image.size
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
            failures.append((ImageEntry(index, index + 1, name, 0, 0), f"cannot read the image header: "
                                                                         f"{type(exc).__name__}"))
            continue
        images.append(ImageEntry(index, index + 1, name, width, height))
    return images, failures
