"""`prepare-json.py` of the MLPerf/NVIDIA SSD code: the bbox-only annotation file.

Semantics (mlcommons/training_results_v0.7 NVIDIA/benchmarks/ssd/implementations/pytorch/
prepare-json.py): images keep only id, file_name, height, width. With keep_keys every annotation
keeps all its keys but `segmentation` becomes [] and `area` 1.0 ("lie about the area"); without it
only image_id, bbox, category_id and id survive. The output holds only images, annotations and
categories, compact unless pretty-printed. Key order is preserved.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from preprocess.annotations import (parse_annotation_image_ids, parse_images, read_json, require_array,
                                    require_object)
from preprocess.errors import PreprocessError

IMAGE_KEYS = ("id", "file_name", "height", "width")
BBOX_ONLY_KEYS = ("image_id", "bbox", "category_id", "id")
OUTPUT_KEYS = ("images", "annotations", "categories")


@dataclass
class PrepareSummary:
    output: Path
    images: int
    annotations: int
    categories: int
    keep_keys: bool
    dropped_top_level: list[str] = field(default_factory=list)
    dropped_image_keys: Counter = field(default_factory=Counter)
    dropped_annotation_keys: Counter = field(default_factory=Counter)


def bbox_only(doc: dict, keep_keys: bool) -> tuple[dict, Counter, Counter]:
    """The reduced document, and how often each image / annotation key was dropped."""
    dropped_image, dropped_annotation = Counter(), Counter()
    images = []
    for image in doc["images"]:
        dropped_image.update(k for k in image if k not in IMAGE_KEYS)
        images.append({k: v for k, v in image.items() if k in IMAGE_KEYS})
    annotations = []
    for annotation in doc["annotations"]:
        if keep_keys:  # existing keys keep their place, missing ones are appended (like item assignment)
            annotations.append({**annotation, "segmentation": [], "area": 1.0})
        else:
            dropped_annotation.update(k for k in annotation if k not in BBOX_ONLY_KEYS)
            annotations.append({k: v for k, v in annotation.items() if k in BBOX_ONLY_KEYS})
    return {"images": images, "annotations": annotations, "categories": doc["categories"]}, \
        dropped_image, dropped_annotation


def prepare_json(input_file: str | Path, output_file: str | Path, keep_keys: bool = False,
                 pretty_print: bool = False) -> PrepareSummary:
    """Read a COCO instances json, write its bbox-only form atomically to `output_file`."""
    source, target = Path(input_file), Path(output_file)
    doc, _ = read_json(source, "input file")
    where = str(source)
    parse_images(doc, where)  # validated like preprocess reads it, with json paths in messages
    parse_annotation_image_ids(doc, where)
    for i, category in enumerate(require_array(doc, "categories", where)):
        require_object(category, f"{where}: categories[{i}]")
    if target.exists() and target.resolve() == source.resolve():
        raise PreprocessError(f"output file {target} is the input file; choose another name")
    reduced, dropped_image, dropped_annotation = bbox_only(doc, keep_keys)
    text = json.dumps(reduced, indent=4) if pretty_print else json.dumps(reduced, separators=(",", ":"))
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PreprocessError(f"cannot write output file {target}: {exc.strerror or exc}") from None
    return PrepareSummary(target, len(reduced["images"]), len(reduced["annotations"]), len(reduced["categories"]),
                          keep_keys, sorted(k for k in doc if k not in OUTPUT_KEYS), dropped_image,
                          dropped_annotation)
