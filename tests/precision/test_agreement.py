"""The gate's figures against formulas written out here, and the detection agreement on crafted rows."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from ssdconvert.agreement import AgreementReport, Thresholds, TensorStats, detection_agreement, tensor_figures


def test_tensor_figures_match_the_textbook_formulas():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(3, 4, 50)).astype(np.float32)
    cand = ref + rng.normal(scale=0.1, size=ref.shape).astype(np.float32)
    fig = tensor_figures("x", ref, cand)
    r, c = ref.astype(np.float64).ravel(), cand.astype(np.float64).ravel()
    assert fig.max_abs == pytest.approx(np.abs(c - r).max())
    assert fig.max_rel == pytest.approx(np.abs(c - r).max() / np.abs(r).max())
    assert fig.snr_db == pytest.approx(10 * math.log10((r ** 2).sum() / ((c - r) ** 2).sum()))
    assert fig.cosine == pytest.approx(r @ c / np.linalg.norm(r) / np.linalg.norm(c))
    assert 19 < fig.snr_db < 21  # noise at 10 % of a unit-variance signal is 20 dB


def test_streaming_over_batches_equals_one_pass():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(6, 10)).astype(np.float32)
    cand = ref * 1.01 + 0.02
    stats = TensorStats("x")
    for k in range(0, 6, 2):
        stats.update(ref[k:k + 2], cand[k:k + 2])
    once = tensor_figures("x", ref, cand)
    streamed = stats.figures()
    for field in ("max_abs", "max_rel", "snr_db", "cosine"):
        assert getattr(streamed, field) == pytest.approx(getattr(once, field), rel=1e-12)


def test_identical_and_non_finite():
    ref = np.ones((2, 3), np.float32)
    assert tensor_figures("x", ref, ref).snr_db == math.inf
    bad = ref.copy()
    bad[0, 0] = np.nan
    fig = tensor_figures("x", ref, bad)
    assert fig.snr_db == -math.inf and fig.problems(Thresholds())  # NaN never passes


def test_non_finite_values_both_sides_share_agree():
    """A mask filled with -inf (Faster R-CNN's top-k padding) agrees with itself; a different
    infinity, or a NaN on one side only, fails."""
    ref = np.array([[1.0, -np.inf, 2.0], [np.nan, 3.0, np.inf]], np.float32)
    same = tensor_figures("mask", ref, ref.copy())
    assert same.snr_db == math.inf and same.cosine == 1.0 and same.max_abs == 0 and not same.problems(Thresholds())
    assert same.elements == 6
    for k, value in ((1, np.inf), (0, 5.0), (2, np.nan)):
        other = ref.copy()
        other.flat[[1, 3, 5][k]] = value  # -inf -> +inf, NaN -> 5, +inf -> NaN
        assert tensor_figures("mask", ref, other).problems(Thresholds()), value
    close = ref.copy()
    close[0, 0] = 1.001
    assert 0 < tensor_figures("mask", ref, close).max_abs < 0.0011


IMAGES = [SimpleNamespace(id=i, width=300, height=300) for i in (1, 2)]


def rows(boxes):
    """[image, x, y, w, h, score, label] rows."""
    return np.array(boxes, dtype=np.float64)


REFERENCE = rows([[1, 10, 10, 50, 50, 0.9, 1], [1, 100, 100, 40, 60, 0.8, 2], [2, 20, 30, 80, 80, 0.7, 1],
                  [2, 150, 150, 30, 30, 0.6, 3]])


def test_detection_agreement_is_one_for_the_same_detections_and_drops_for_moved_ones():
    same = detection_agreement(REFERENCE, REFERENCE.copy(), IMAGES, num_classes=4, background=0)
    assert same.ap == pytest.approx(1.0) and same.reference_detections == 4
    moved = REFERENCE.copy()
    moved[:2, 1] += 40  # two of four boxes shifted by most of their width: IoU < 0.5
    half = detection_agreement(REFERENCE, moved, IMAGES, num_classes=4, background=0)
    assert half.ap50 < 0.8 and half.ap < same.ap
    relabelled = REFERENCE.copy()
    relabelled[:, 6] = relabelled[:, 6] % 3 + 1  # every class changed: 1 -> 2 -> 3 -> 1
    assert detection_agreement(REFERENCE, relabelled, IMAGES, 4, 0).ap == 0.0


def test_no_reference_detections_is_said_not_scored():
    empty = detection_agreement(np.zeros((0, 7)), REFERENCE, IMAGES, 4, 0)
    assert empty.ap is None and "detects nothing" in empty.note


def test_report_names_the_worst_output_first():
    good = tensor_figures("ploc", np.ones(10), np.ones(10) * 1.001)
    bad = tensor_figures("plabel", np.arange(10.0), np.arange(10.0)[::-1])
    report = AgreementReport("a.onnx", "b.onnx", 2, [good, bad], None, Thresholds(), weights="random")
    assert not report.passed
    assert report.failures[0].startswith("plabel: cosine")
    assert "numerical agreement" in "\n".join(report.lines())
    assert report.to_dict()["passed"] is False


def _crowded_rows(rng, images: int, per_class: int, classes=(1, 2)) -> np.ndarray:
    """Many overlapping boxes of each class per image: [image_id, x, y, w, h, score, label]."""
    rows = []
    for image in range(images):
        for label in classes:
            for _ in range(per_class):
                x, y = rng.uniform(0, 150, 2)
                rows.append([image, x, y, *rng.uniform(20, 120, 2), rng.uniform(0.05, 0.3), label])
    return np.array(rows)


def test_identical_detections_agree_exactly_even_with_130_boxes_of_one_class():
    """The seeded ssd-resnet34 keeps 200 boxes per image, up to 130 of one class; COCOeval's 100 per image and class
    left 30 reference boxes unmatchable and scored identical outputs 0.99 (issue 24 §3.10)."""
    rng = np.random.default_rng(7)
    images = [SimpleNamespace(id=i, width=300, height=300) for i in range(3)]
    rows = _crowded_rows(rng, 3, 130)
    same = detection_agreement(rows, rows.copy(), images, num_classes=81, background=0)
    assert (same.ap, same.ap50) == (1.0, 1.0)
    half = detection_agreement(rows, rows[rows[:, 6] == 1], images, num_classes=81, background=0)
    assert half.ap == pytest.approx(0.5, abs=0.01)  # one class of two reproduced


def test_below_100_per_class_the_agreement_is_cocoevals_own():
    """Where nothing is cut, the figure is what the project's COCO evaluator gives for the same rows."""
    from postprocess.evaluate import coco_stats, ground_truth_from_rows

    rng = np.random.default_rng(8)
    images = [SimpleNamespace(id=i, width=300, height=300) for i in range(4)]
    ref = _crowded_rows(rng, 4, 40)
    cand = ref.copy()
    cand[:, 1:5] += rng.normal(scale=3.0, size=(len(cand), 4))  # moved boxes
    cand[:, 5] *= rng.uniform(0.8, 1.2, len(cand))  # re-ranked
    got = detection_agreement(ref, cand, images, num_classes=81, background=0)
    stats = coco_stats(ground_truth_from_rows(ref, images, range(1, 81)), cand, [im.id for im in images])
    assert 0.2 < got.ap < 0.95 and got.ap == pytest.approx(stats[0], abs=1e-9)
    assert got.ap50 == pytest.approx(stats[1], abs=1e-9)


def test_integer_outputs_are_counted_equal_not_gated_by_cosine():
    """Class ids (Faster R-CNN's labels) have no cosine or SNR worth a threshold: the share of equal ids is
    reported and the detection agreement judges them (issue 24 §3.9)."""
    ref = np.array([[3, 3, 7, 1]], dtype=np.int64)
    fig = tensor_figures("labels", ref, np.array([[3, 7, 3, 1]], dtype=np.int64))
    assert fig.integer and fig.equal == 0.5 and fig.problems(Thresholds(min_cosine=0.999)) == []
    assert fig.line() == "labels: integer, 50.0 % of 4 elements equal (judged by the detection agreement)"
    floats = tensor_figures("scores", ref.astype(np.float32), np.array([[3, 7, 3, 1]], np.float32))
    report = AgreementReport("r", "c", 1, [fig, floats], None, Thresholds(min_cosine=0.999))
    assert report.worst is floats and [f.split(":")[0] for f in report.failures] == ["scores"]


def test_real_map_drop_is_the_first_figure_in_ap_points_and_fails_beyond_the_threshold():
    good = tensor_figures("ploc", np.ones(10), np.ones(10) * 1.001)
    bad = tensor_figures("plabel", np.arange(10.0), np.arange(10.0)[::-1])

    def report(reference: float, candidate: float, outputs=(good,), max_drop: float = 1.0):
        return AgreementReport("a.onnx", "b.onnx", 43, list(outputs), None, Thresholds(max_map_drop=max_drop),
                               weights="trained", real_map={"reference": reference, "candidate": candidate,
                                                            "delta": candidate - reference})

    assert report(0.2024, 0.1916).failures == [
        "real COCO mAP drops 1.08 AP points > 1.0 (20.24 -> 19.16 AP points on 43 annotated images)"]
    assert report(0.2024, 0.1916, max_drop=1.1).passed  # 1.08 points allowed
    assert report(0.2024, 0.1977).passed and report(0.2024, 0.2100).passed  # -0.47 and a gain
    both = report(0.2024, 0.15, outputs=(good, bad))
    assert both.failures[0].startswith("real COCO mAP drops 5.24 AP points") and both.failures[1].startswith("plabel")
    lines = both.lines()
    assert lines[1] == "  real COCO mAP: reference 20.24, candidate 15.00 AP points, delta -5.24 (may drop 1.0)"
    no_annotations = AgreementReport("a.onnx", "b.onnx", 4, [good], None, Thresholds(), weights="trained")
    assert no_annotations.map_drop_points is None and no_annotations.passed
