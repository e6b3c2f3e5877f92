"""COCO mapping shared by the heads: labels -> category ids (MLPerf/NVIDIA SSD eval.py coco_eval), rows
[image_id, x, y, w, h, score, category_id] -> the results json."""

from __future__ import annotations

import json
from typing import Iterator, Mapping, Sequence

import numpy as np

from postprocess.errors import PostprocessError

ROW_FIELDS = ("image_id", "x", "y", "w", "h", "score", "category_id")


def category_ids(categories: Sequence[Mapping], num_classes: int, background: int = 0) -> np.ndarray:
    """inv_map (num_classes,): the k-th foreground label -> id of the k-th category in json file order.

    With background 0 that is label k (1..80) -> categories[k-1]["id"]; inv_map[background] is 0.
    """
    if len(categories) != num_classes - 1:
        raise PostprocessError(f"the annotation file has {len(categories)} categories; the model predicts "
                               f"{num_classes - 1} (label k maps to the k-th category in file order)")
    inv_map = np.zeros(num_classes, dtype=np.int64)
    inv_map[np.arange(num_classes) != background] = [int(c["id"]) for c in categories]
    return inv_map


def result_dicts(rows: np.ndarray, first_id: int | None = None, chunk: int = 50_000,
                 float32_area: bool = True) -> list[dict]:
    """COCO results json objects (image_id, category_id, bbox, score) with the exact row values.

    With `first_id`, also the fields COCO.loadRes adds to bbox results: id (counting from
    first_id), area = w * h (in float32 as loadRes computes it on float32 rows, or in double as
    it does on a results json), iscrowd = 0.
    """
    out: list[dict] = []
    for start in range(0, len(rows), chunk):  # bounded temporaries
        part = rows[start:start + chunk]
        if first_id is None:
            out += [{"image_id": int(r[0]), "category_id": int(r[6]), "bbox": r[1:5], "score": r[5]}
                    for r in part.tolist()]
        else:
            area = ((part[:, 3].astype(np.float32) * part[:, 4].astype(np.float32)) if float32_area
                    else part[:, 3] * part[:, 4]).tolist()
            out += [{"image_id": int(r[0]), "category_id": int(r[6]), "bbox": r[1:5], "score": r[5],
                     "id": k, "area": a, "iscrowd": 0}
                    for k, (r, a) in enumerate(zip(part.tolist(), area), start=first_id + start)]
    return out


def results_json(rows: np.ndarray, chunk: int = 50_000) -> Iterator[str]:
    """The COCO results json array as text pieces, without holding every object at once."""
    yield "["
    for start in range(0, len(rows), chunk):
        piece = json.dumps(result_dicts(rows[start:start + chunk]))[1:-1]
        yield ("," if start else "") + piece
    yield "]\n"
