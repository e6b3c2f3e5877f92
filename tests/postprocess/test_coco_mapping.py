"""COCO mapping: label -> category id through the json's category order, boxes -> [x, y, w, h]."""

from __future__ import annotations

import json

import numpy as np
import pytest

from postprocess.coco import category_ids, result_dicts, results_json
from postprocess.errors import PostprocessError
from postprocess.images import ImageRef
from postprocess.heads.nvidia_ssd.detect import result_rows
from postprocess.heads.nvidia_ssd.nms import Detections


def test_label_map_follows_file_order_not_ids():
    cats = [{"id": 90}, {"id": 1}, {"id": 13}]
    np.testing.assert_array_equal(category_ids(cats, num_classes=4), [0, 90, 1, 13])
    np.testing.assert_array_equal(category_ids(cats, num_classes=4, background=3), [90, 1, 13, 0])
    with pytest.raises(PostprocessError, match="has 3 categories; the model predicts 80"):
        category_ids(cats, num_classes=81)


def test_coco_label_map_has_the_reference_gaps(coco):
    inv = category_ids(coco.doc["categories"], 81)
    assert inv[1] == 1 and inv[12] == 13 and inv[80] == 90 and 12 not in inv and 83 not in inv


def test_evaluation_set_is_the_annotated_images_in_json_order(coco):
    annotated = {a["image_id"] for a in coco.doc["annotations"]}
    assert [im.id for im in coco.images] == [im["id"] for im in coco.doc["images"] if im["id"] in annotated]
    assert len(coco.images) < coco.all_images  # the synthetic set has images without annotations
    assert all(im.stem == f"{im.id:012d}" for im in coco.images)


def test_rows_scale_by_original_size_without_clipping():
    images = [ImageRef(7, "a", 640, 480), ImageRef(2 ** 25 + 1, "b", 100, 200)]
    dets = Detections(image=np.array([0, 1]), label=np.array([1, 2]), score=np.array([0.9, 0.5], np.float32),
                      box=np.array([[-0.1, 0.25, 0.5, 1.2], [0.0, 0.0, 1.0, 0.5]], np.float32),
                      anchor=np.array([0, 1]))
    rows = result_rows(dets, images, np.array([0, 11, 22]))
    f = np.float32
    np.testing.assert_array_equal(rows[0], [7, f(-0.1) * f(640), f(0.25) * f(480), (f(0.5) - f(-0.1)) * f(640),
                                            (f(1.2) - f(0.25)) * f(480), f(0.9), 11])
    assert rows[1, 0] == 2 ** 25 + 1  # ids stay exact beyond float32's 2**24
    assert rows[1, 6] == 22


def test_results_json_round_trips_exactly():
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.integers(1, 999, 120), rng.normal(100, 50, (120, 4)).astype(np.float32),
                            rng.random(120).astype(np.float32), rng.integers(1, 91, 120)]).astype(np.float64)
    back = json.loads("".join(results_json(rows, chunk=50)))
    assert len(back) == 120
    assert back[5] == {"image_id": int(rows[5, 0]), "category_id": int(rows[5, 6]),
                       "bbox": rows[5, 1:5].tolist(), "score": rows[5, 5]}
    assert json.loads("".join(results_json(rows[:0]))) == []
    with_ids = result_dicts(rows[:3], first_id=1)
    assert [d["id"] for d in with_ids] == [1, 2, 3] and with_ids[0]["iscrowd"] == 0
    assert with_ids[0]["area"] == float(np.float32(rows[0, 3]) * np.float32(rows[0, 4]))
