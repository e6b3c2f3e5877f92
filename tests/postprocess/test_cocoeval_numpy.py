"""The array COCOeval against pycocotools itself, on crafted sets full of its corner cases:
score ties, crowd boxes, areas exactly on the range bounds, more than 100 detections per image and
class, detections of classes without boxes, images without detections, boxes near every IoU
threshold. Precision and recall arrays must be equal element for element, not just close."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest

from postprocess.cocoeval_numpy import GroundTruth, Matches, accumulate, match_images

CATS = [3, 1, 17, 90, 44]  # not sorted, not contiguous
NO_BOXES = 55  # a category with detections and no boxes: -1 in the arrays


def crafted(seed: int, images: int = 24, float32_rows: bool = True):
    """(annotation dict, result rows) with every corner case above."""
    rng = np.random.default_rng(seed)
    image_ids = rng.choice(np.arange(1, 10_000), images, replace=False)
    doc = {"images": [{"id": int(i), "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in image_ids],
           "categories": [{"id": c, "name": str(c)} for c in CATS + [NO_BOXES]], "annotations": []}
    rows = []
    for i in image_ids:
        for cat in rng.choice(CATS, rng.integers(0, 4), replace=False):
            for _ in range(rng.integers(1, 6)):
                w, h = rng.uniform(5, 200, 2)
                x, y = rng.uniform(0, 400), rng.uniform(0, 300)
                area = float(rng.choice([w * h, 32.0 ** 2, 96.0 ** 2, 32.0 ** 2 + 1e-9, w * h * 0.7]))
                doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": int(i),
                                           "category_id": int(cat), "bbox": [x, y, w, h], "area": area,
                                           "iscrowd": int(rng.random() < 0.15)})
                for _ in range(rng.integers(0, 5)):  # detections around it: IoUs across the thresholds
                    jitter = rng.normal(0, rng.choice([0.02, 0.1, 0.3]), 4) * [w, h, w, h]
                    score = float(rng.choice([0.5, 0.9, rng.random()]))  # many ties
                    label = cat if rng.random() < 0.85 else rng.choice(CATS)
                    rows.append([i, x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3], score, label])
        if rng.random() < 0.2:  # one crowded pair: > 100 detections
            cat = rng.choice(CATS)
            for _ in range(130):
                rows.append([i, *rng.uniform(0, 300, 2), *rng.uniform(5, 150, 2), round(rng.random(), 2), cat])
        for _ in range(rng.integers(0, 8)):  # background detections, any class
            rows.append([i, *rng.uniform(0, 500, 2), *rng.uniform(2, 120, 2), rng.random(), rng.choice(CATS + [NO_BOXES])])
    rows += corner_cases(doc, int(image_ids[0]))
    rows = np.array(rows, dtype=np.float64)
    rng.shuffle(rows)  # results in no particular order
    if float32_rows:
        rows = rows.astype(np.float32).astype(np.float64)
    return doc, rows


def corner_cases(doc: dict, image: int) -> list[list[float]]:
    """Two boxes a detection overlaps exactly equally (pycocotools gives it the later one, so the
    next detection can take the other), a box with annotation id 0, degenerate detections, one of an
    unknown category, and unmatched detections whose area is 32**2 in float32 but just above it in
    double (small in one convention, medium in the other)."""
    boxes = [[100.0, 100.0, 10.0, 10.0], [102.0, 100.0, 10.0, 10.0], [300.0, 300.0, 20.0, 20.0]]
    for box in boxes:
        doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": image, "category_id": 90,
                                   "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    tie = [[image, 101.0, 100.0, 10.0, 10.0, 0.99, 90], [image, 97.0, 100.0, 10.0, 10.0, 0.98, 90]]
    w, h = 32.02739334106445, 31.972631454467773  # float32(w * h) == 1024 < w * h
    # a box with annotation id 0: pycocotools stores the matched box's id, so matching it counts
    # as no match, yet the box is taken
    doc["annotations"].append({"id": 0, "image_id": image, "category_id": 1, "bbox": [50.0, 300.0, 60.0, 40.0],
                               "area": 2400.0, "iscrowd": 0})
    zero = [[image, 51.0, 301.0, 60.0, 40.0, 0.96, 1], [image, 49.0, 299.0, 60.0, 40.0, 0.95, 1]]
    # degenerate boxes (no width, negative height) and a category the annotations do not have
    odd = [[image, 100.0, 100.0, 0.0, 10.0, 0.94, 90], [image, 300.0, 320.0, 20.0, -20.0, 0.93, 90],
           [image, 300.0, 300.0, 20.0, 20.0, 0.92, 999]]
    return tie + zero + odd + [[image, 400.0 + 40 * k, 10.0, w, h, 0.97, 90] for k in range(5)]


def pycocotools_eval(doc: dict, rows: np.ndarray, float32_rows: bool):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(doc)
        gt.createIndex()
        if float32_rows:  # the NVIDIA reference: loadRes of a float32 array
            dt = gt.loadRes(rows.astype(np.float32))
        else:  # a results json: loadRes of dicts
            dt = gt.loadRes([{"image_id": int(r[0]), "category_id": int(r[6]), "bbox": list(r[1:5]),
                              "score": float(r[5])} for r in rows.tolist()])
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
    return gt, ev.eval["precision"], ev.eval["recall"]


@pytest.mark.parametrize("seed,float32_rows", [(0, True), (1, True), (2, False), (3, True), (4, False)])
def test_equal_to_pycocotools_element_for_element(seed, float32_rows):
    doc, rows = crafted(seed, float32_rows=float32_rows)
    gt, ref_precision, ref_recall = pycocotools_eval(doc, rows, float32_rows)
    truth = GroundTruth.of(gt, gt.getImgIds())
    precision, recall = accumulate(match_images(truth, rows, float32_rows), truth.counted())
    assert (ref_precision > 0).any() and (ref_precision == -1).any()  # non-trivial, with empty cells
    np.testing.assert_array_equal(recall, ref_recall)
    np.testing.assert_array_equal(precision, ref_precision)


def test_image_slices_join_to_the_whole():
    doc, rows = crafted(5)
    gt, ref_precision, _ = pycocotools_eval(doc, rows, True)
    truth = GroundTruth.of(gt, gt.getImgIds())
    ids = np.array(sorted(gt.getImgIds()))
    slices = [rows[np.isin(rows[:, 0], part)] for part in np.array_split(ids[::-1], 3)]
    joined = Matches.join([match_images(truth, part) for part in slices])
    np.testing.assert_array_equal(accumulate(joined, truth.counted())[0], ref_precision)


def test_category_ranges_and_workers_give_the_whole():
    """Categories accumulated in ranges (as forked workers do) are the whole's slices, and the stats
    from 1-3 workers are pycocotools' summary."""
    from postprocess.evaluate import ArrayEvaluation

    doc, rows = crafted(6)
    gt, ref_precision, ref_recall = pycocotools_eval(doc, rows, True)
    truth = GroundTruth.of(gt, gt.getImgIds())
    matches = match_images(truth, rows)
    for first, stop in [(0, 2), (2, 3), (3, len(CATS) + 1)]:
        precision, recall = accumulate(matches, truth.counted(), first, stop)
        np.testing.assert_array_equal(precision, ref_precision[:, :, first:stop])
        np.testing.assert_array_equal(recall, ref_recall[:, first:stop])
    with contextlib.redirect_stdout(io.StringIO()):
        from pycocotools.cocoeval import COCOeval

        ev = COCOeval(gt, gt.loadRes(rows.astype(np.float32)), iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    arrays = ArrayEvaluation(gt, gt.getImgIds())
    assert (ref_precision[:, :, :, 0, -1] > 0).any(axis=(0, 1)).sum() == len(CATS)  # every class scores
    for workers in (1, 2, 3):
        assert arrays.stats([arrays.match(rows)], workers=workers) == [float(x) for x in ev.stats]
