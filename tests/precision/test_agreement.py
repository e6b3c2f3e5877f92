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
