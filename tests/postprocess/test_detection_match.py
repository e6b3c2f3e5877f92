"""Box-by-box comparison of two detection sets: pairs, unpaired counts, ties past a limit, differences."""

from __future__ import annotations

import numpy as np
import pytest

from postprocess.detection_match import ImageDetections, box_iou, match_detections

BOXES = np.array([[0, 0, 10, 10], [20, 20, 40, 30], [50, 0, 60, 40], [5, 5, 15, 15]], np.float64)


def dets(boxes, scores, labels):
    return ImageDetections.of(boxes, scores, labels)


def test_reordered_identical_detections_all_pair():
    a = dets(BOXES, [0.9, 0.8, 0.7, 0.6], [1, 1, 2, 1])
    b = dets(BOXES[::-1], [0.6, 0.7, 0.8, 0.9], [1, 2, 1, 1])
    report = match_detections([a], [b])
    assert (report.matched, report.missing, report.extra, report.max_score_diff) == (4, 0, 0, 0.0)
    assert report.failure(1e-4, 1e-2) is None


def test_a_class_change_is_a_missing_and_an_extra_detection():
    a = dets(BOXES[:2], [0.9, 0.8], [1, 1])
    b = dets(BOXES[:2], [0.9, 0.8], [1, 3])
    report = match_detections([dets([], [], []), a], [dets([], [], []), b])
    assert (report.matched, report.missing, report.extra, report.worst_image) == (1, 1, 1, 1)
    assert report.failure(1e-4, 1e-2) == "1 of 2 reference detections have no match (first in image 1)"


def test_small_shifts_pair_and_are_measured():
    a = dets(BOXES, [0.9, 0.8, 0.7, 0.6], [1, 1, 1, 1])
    b = dets(BOXES + [0.0, 0.0, 0.05, 0.0], [0.9, 0.8, 0.7 + 3e-4, 0.6], [1, 1, 1, 1])
    report = match_detections([a], [b], iou_threshold=0.9)
    assert report.matched == 4 and report.max_score_diff == pytest.approx(3e-4)
    assert report.max_box_diff == pytest.approx(0.05)
    assert report.failure(1e-4, 1.0).startswith("a matched score differs by 0.0003")
    assert report.failure(1e-3, 1e-2).startswith("a matched box coordinate differs by 0.05 px")


def test_ties_past_the_limit_are_counted_not_failed():
    scores = [0.9, 0.5, 0.5, 0.5]
    a = dets(BOXES, scores, [1, 1, 2, 3])
    b = dets(BOXES[:3], scores[:3], [1, 1, 2])  # a fixed-size output of 3: one tied detection left out
    report = match_detections([a], [b], limit=3)
    assert (report.matched, report.ties_past_limit, report.missing) == (3, 1, 0)
    # a detection above the limit-th score that is left out is missing, tie or not
    c = dets(BOXES[[0, 2, 3]], [0.9, 0.5, 0.5], [1, 2, 3])
    assert match_detections([dets(BOXES, [0.9, 0.6, 0.5, 0.5], [1, 1, 2, 3])], [c], limit=3).missing == 1


def test_legacy_boxes_narrower_than_a_pixel_pair_with_themselves():
    thin = np.array([[5.06, 68.2, 5.03, 94.1]])  # legacy x2 < x1: 0.97 px wide
    moved = thin + [0.0, 0.0, 0.001, 0.0]
    assert box_iou(thin, thin)[0, 0] == 1.0 and box_iou(thin, moved)[0, 0] == 0.0  # continuous: no area
    assert box_iou(thin, moved, pixel_offset=1.0)[0, 0] == pytest.approx(0.97 / 0.971)
    assert match_detections([dets(thin, [0.5], [4])], [dets(thin, [0.5], [4])], pixel_offset=1.0).matched == 1
