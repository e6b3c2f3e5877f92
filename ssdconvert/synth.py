"""Deterministic synthetic COCO-format dataset for the demo and the tests.

Images: JPEGs of COCO-like sizes (some grayscale), textured backgrounds, filled shapes whose
bounding boxes are the ground truth. Annotations: instances json with the real 80 COCO
categories (real ids, with gaps), some images without annotations and one crowd box.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ssdconvert.errors import SsdConvertError
from ssdconvert.fileio import staging_dir

COCO_CATEGORIES = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"),
    (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
    (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"), (88, "teddy bear", "indoor"),
    (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
)
# (width, height) pairs common in val2017, plus odd and tiny sizes
IMAGE_SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (427, 640), (640, 360), (333, 500),
               (612, 612), (581, 640), (211, 157), (97, 130))
EVERY_NTH_GRAYSCALE = 7
EVERY_NTH_EMPTY = 10
ANNOTATION_FILE = "annotations/instances_val2017.json"
IMAGE_DIR = "val2017"


@dataclass(frozen=True)
class SynthDataset:
    root: Path
    annotation_file: Path
    image_dir: Path
    images: int
    annotated_images: int
    annotations: int


def _background(rng, width: int, height: int):
    import numpy as np

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 215, size=3)
    slope = rng.uniform(-0.15, 0.15, size=(3, 2))
    img = np.stack([base[c] + slope[c, 0] * x + slope[c, 1] * y for c in range(3)], axis=-1)
    img += rng.normal(0, 12, size=img.shape)  # texture
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_objects(rng, image, image_id: int, next_ann_id: int, crowd: bool) -> list[dict]:
    """Draw 1-5 shapes into `image` (in place); return their COCO annotations."""
    import numpy as np
    from PIL import Image, ImageDraw

    height, width = image.shape[:2]
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    anns = []
    for k in range(int(rng.integers(1, 6))):
        cat_id = COCO_CATEGORIES[int(rng.integers(len(COCO_CATEGORIES)))][0]
        w = int(rng.integers(max(4, width // 12), max(5, width // 2)))
        h = int(rng.integers(max(4, height // 12), max(5, height // 2)))
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shape = draw.ellipse if k % 2 else draw.rectangle
        shape([x0, y0, x0 + w - 1, y0 + h - 1], fill=colour, outline=(255 - colour[0], 0, 0), width=2)
        polygon = [x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]
        anns.append({
            "id": next_ann_id + k, "image_id": image_id, "category_id": cat_id,
            "bbox": [float(x0), float(y0), float(w), float(h)], "area": float(w * h),
            "iscrowd": 1 if crowd and k == 0 else 0, "segmentation": [polygon],
        })
    image[...] = np.asarray(pil)
    return anns


def generate(out: str | Path, images: int = 32, seed: int = 0, overwrite: bool = False) -> SynthDataset:
    """Write `images` JPEGs and an instances json under `out`; same seed, same bytes."""
    import numpy as np
    from PIL import Image

    out = Path(out)
    if images < 1:
        raise SsdConvertError(f"--images must be at least 1, got {images}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SsdConvertError(f"{out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(out.parent, out.name)
    try:
        rng = np.random.default_rng(seed)
        (staging / IMAGE_DIR).mkdir()
        (staging / ANNOTATION_FILE).parent.mkdir()
        records, annotations = [], []
        image_id = 0
        for index in range(images):
            image_id += int(rng.integers(1, 400))
            width, height = IMAGE_SIZES[index % len(IMAGE_SIZES)]
            pixels = _background(rng, width, height)
            if (index + 1) % EVERY_NTH_EMPTY:
                annotations += _draw_objects(rng, pixels, image_id, len(annotations) + 1, crowd=index == 2)
            file_name = f"{image_id:012d}.jpg"
            pil = Image.fromarray(pixels)
            if index % EVERY_NTH_GRAYSCALE == EVERY_NTH_GRAYSCALE - 1:
                pil = pil.convert("L")
            pil.save(staging / IMAGE_DIR / file_name, quality=90)
            records.append({"license": 1, "file_name": file_name, "coco_url": "", "height": height,
                            "width": width, "date_captured": "2026-11-22 00:00:00", "flickr_url": "",
                            "id": image_id})
        doc = {
            "info": {"description": f"ssdconvert synthetic COCO (seed {seed})", "version": "1.0", "year": 2026},
            "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
            "images": records,
            "annotations": annotations,
            "categories": [{"supercategory": s, "id": i, "name": n} for i, n, s in COCO_CATEGORIES],
        }
        (staging / ANNOTATION_FILE).write_text(json.dumps(doc))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    annotated = len({a["image_id"] for a in annotations})
    return SynthDataset(out, out / ANNOTATION_FILE, out / IMAGE_DIR, images, annotated, len(annotations))
