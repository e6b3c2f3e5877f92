"""Fixed-K outputs -> COCO rows with maskrcnn-benchmark's conventions (prepare_for_coco_detection)."""

from __future__ import annotations

import numpy as np
import pytest

from postprocess.coco import category_ids
from postprocess.errors import PostprocessError
from postprocess.heads.final_detections.rows import ResizedImage, coco_rows


def literal_rows(boxes, scores, labels, counts, images, cat_ids):
    """prepare_for_coco_detection written out: per image, resize with separate x/y ratios
    original/resized, then (x1, y1, x2 - x1 + 1, y2 - y1 + 1); category = the label-th category;
    float32 like torch."""
    rows = []
    for i, im in enumerate(images):
        rx, ry = np.float32(im.width / im.resized_width), np.float32(im.height / im.resized_height)
        for k in range(int(counts[i])):
            x1, y1, x2, y2 = (np.float32(v) for v in boxes[i, k])
            x1, x2, y1, y2 = x1 * rx, x2 * rx, y1 * ry, y2 * ry
            rows.append([im.id, x1, y1, x2 - x1 + np.float32(1), y2 - y1 + np.float32(1), np.float32(scores[i, k]),
                         cat_ids[int(labels[i, k]) - 1]])
    return np.array(rows, dtype=np.float64).reshape(-1, 7)


def test_rows_undo_each_image_scale_and_use_the_plus_one_width():
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 800, (3, 5, 4)).astype(np.float32)
    boxes[..., 2:] += boxes[..., :2] * 0.1
    scores = rng.uniform(0.05, 1, (3, 5)).astype(np.float32)
    labels = rng.integers(1, 81, (3, 5))
    counts = np.array([5, 0, 2])
    images = [ResizedImage(139, 640, 427, 1199, 800), ResizedImage(285, 586, 640, 800, 1000),
              ResizedImage(632, 640, 480, 1066, 800)]
    cats = [{"id": i} for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    inv = category_ids(cats, 81)
    rows = coco_rows(boxes, scores, labels, counts, images, inv)
    expected = literal_rows(boxes, scores, labels, counts, images, [c["id"] for c in cats])
    assert rows.shape == (7, 7) and np.array_equal(rows, expected)
    # x and y ratios really differ here: 640 / 1199 vs 427 / 800
    assert rows[0, 3] == np.float32(boxes[0, 0, 2] * np.float32(640 / 1199)) \
        - np.float32(boxes[0, 0, 0] * np.float32(640 / 1199)) + np.float32(1)


def test_category_ids_follow_get_cat_ids_order():
    # pycocotools' getCatIds() is the file's order; maskrcnn-benchmark enumerates it from 1
    cats = [{"id": 90}, {"id": 1}, {"id": 13}]
    inv = category_ids(cats, 4)
    rows = coco_rows(np.zeros((1, 3, 4), np.float32), np.ones((1, 3), np.float32), np.array([[1, 2, 3]]),
                     np.array([3]), [ResizedImage(1, 10, 10, 10, 10)], inv)
    assert rows[:, 6].tolist() == [90, 1, 13]


def test_all_images_are_kept_even_without_annotations(tmp_path):
    """Without a manifest, a head that evaluates "all" images gets every image of the json in file order,
    named by the stem rule (folders dropped, cut at the first dot)."""
    import json

    from ssdconvert.evaluation import reference_images

    doc = {"images": [{"id": 5, "file_name": "sub/000000000005.jpg", "width": 10, "height": 20},
                      {"id": 3, "file_name": "000000000003.jpg", "width": 30, "height": 40}],
           "annotations": [{"image_id": 3, "bbox": [1, 1, 2, 2], "category_id": 1}], "categories": []}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    assert [(im.id, im.stem) for im in reference_images(tmp_path / "a.json", all_images=True)] == \
        [(5, "000000000005"), (3, "000000000003")]
    assert [im.id for im in reference_images(tmp_path / "a.json", all_images=False)] == [3]


def test_bad_counts_are_refused():
    images = [ResizedImage(1, 10, 10, 10, 10)]
    args = (np.zeros((1, 2, 4)), np.zeros((1, 2)), np.zeros((1, 2), np.int64))
    with pytest.raises(PostprocessError, match="within 0..2"):
        coco_rows(*args, np.array([3]), images, np.arange(81))
    with pytest.raises(PostprocessError, match="1 images of outputs and 2 counts for 1"):
        coco_rows(*args, np.array([1, 1]), images, np.arange(81))


def test_the_final_detections_head_decodes_a_batch_with_the_manifest_geometry():
    """decoder_for(head) on the fixed-K outputs: the COCO rows of prepare_for_coco_detection, with
    each image's resized size taken from its manifest record (preprocess.manifest.ImageRecord, as a
    resize-and-pad preprocess writes it)."""
    from postprocess.heads import MASKRCNN_BENCHMARK_RCNN, decoder_for
    from preprocess.manifest import ImageRecord

    rng = np.random.default_rng(1)
    k = MASKRCNN_BENCHMARK_RCNN.detections
    boxes = rng.uniform(0, 1000, (2, k, 4)).astype(np.float32)
    scores = rng.uniform(0.05, 1, (2, k)).astype(np.float32)
    labels = rng.integers(1, 81, (2, k))
    counts = np.array([k, 3])
    records = [ImageRecord(42, "a.jpg", "a", 640, 427, resized_width=1199, resized_height=800),
               ImageRecord(7, "b.jpg", "b", 480, 640, resized_width=800, resized_height=1066)]
    cats = [{"id": i} for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    decoder = decoder_for(MASKRCNN_BENCHMARK_RCNN)
    arrays = [boxes, scores, labels, counts]
    rows = decoder.rows(decoder.select(arrays), records, MASKRCNN_BENCHMARK_RCNN.category_ids(cats))
    expected = literal_rows(boxes, scores, labels, counts,
                            [ResizedImage(r.id, r.width, r.height, r.resized_width, r.resized_height) for r in records],
                            [c["id"] for c in cats])
    assert rows.shape == (k + 3, 7) and np.array_equal(rows, expected)
    assert decoder.policy.name == "in-graph" and decoder.float32_rows is False  # a results json: double areas


def test_records_without_a_resized_size_are_refused():
    from postprocess.heads import MASKRCNN_BENCHMARK_RCNN, decoder_for
    from preprocess.manifest import ImageRecord

    decoder = decoder_for(MASKRCNN_BENCHMARK_RCNN)
    old = [ImageRecord(1, "x.jpg", "x", 640, 480)]  # a version 2 manifest's record
    arrays = [np.zeros((1, 100, 4), np.float32), np.zeros((1, 100), np.float32), np.zeros((1, 100), np.int64),
              np.zeros(1, np.int64)]
    with pytest.raises(PostprocessError, match=r"records of 1 image\(s\) \(first x\) have no resized size"):
        decoder.rows(arrays, old, np.arange(81))
