"""Box coder and the candidate softmax (only anchors that can pass the threshold are scored)."""

from __future__ import annotations

import numpy as np
import pytest

from postprocess.candidates import candidate_scores, softmax
from postprocess.heads.nvidia_ssd.coder import decode_boxes, encode_boxes
from postprocess.heads.nvidia_ssd.priors import PriorSpec, default_boxes, xywh_to_ltrb


def test_zero_regression_decodes_to_the_default_box():
    d = default_boxes(PriorSpec())
    out = decode_boxes(np.zeros((len(d), 4), np.float32), d, 0.1, 0.2)
    np.testing.assert_allclose(out, xywh_to_ltrb(d), atol=1e-7)


def test_decode_formula_and_no_clipping():
    d = np.array([[0.9, 0.5, 0.2, 0.4]], np.float32)
    loc = np.array([[1.0, -2.0, 5.0, 0.0]], np.float32)
    cx, cy = 0.9 + 0.1 * 1.0 * 0.2, 0.5 + 0.1 * -2.0 * 0.4
    w, h = 0.2 * np.exp(0.2 * 5.0), 0.4
    np.testing.assert_allclose(decode_boxes(loc, d, 0.1, 0.2)[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2],
                               rtol=1e-6)
    assert decode_boxes(loc, d, 0.1, 0.2)[0, 2] > 1.0  # never clipped


def test_encode_inverts_decode():
    rng = np.random.default_rng(0)
    d = default_boxes(PriorSpec())[rng.choice(8732, 50)]
    xy = rng.uniform(-0.1, 0.9, (50, 2))
    ltrb = np.concatenate([xy, xy + rng.uniform(0.01, 0.6, (50, 2))], axis=1)
    np.testing.assert_allclose(decode_boxes(encode_boxes(ltrb, d, 0.1, 0.2), d, 0.1, 0.2), ltrb, atol=2e-6)


def test_softmax_sums_to_one_and_is_shift_invariant():
    z = np.random.default_rng(1).normal(0, 5, (81, 100)).astype(np.float32)
    p = softmax(z, axis=0)
    np.testing.assert_allclose(p.sum(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(softmax(z + 64, axis=0), p, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("background", [0, 80, 7])
def test_candidates_are_exact_and_complete(background):
    """Every (anchor, class) with dense softmax > threshold is a candidate, with bit-identical scores."""
    rng = np.random.default_rng(background)
    plabel = rng.normal(0, 1, (3, 81, 8732)).astype(np.float32)
    plabel[:, background] += 4.0
    # push many foreground logits next to the boundary p = 0.05
    plabel[:, 5, ::7] += rng.uniform(1.0, 3.0, plabel[:, 5, ::7].shape).astype(np.float32)
    cand = candidate_scores(plabel, 0.05, background)
    for b in range(3):
        z = plabel[b]
        e = np.exp(z - z.max(axis=0, keepdims=True))
        dense = e / e.sum(axis=0, keepdims=True)
        fg = np.arange(81) != background
        passing = np.nonzero((dense[fg] > np.float32(0.05)).any(axis=0))[0]
        mine = cand.anchor[cand.image == b]
        assert set(passing) <= set(mine)
        assert len(mine) < 8732  # a real prefilter
        np.testing.assert_array_equal(cand.scores[cand.image == b], dense[:, mine].T)


def test_candidates_of_an_all_background_batch_are_empty():
    plabel = np.zeros((2, 81, 8732), np.float32)
    plabel[:, 0] = 20.0
    cand = candidate_scores(plabel, 0.05)
    assert cand.image.size == 0 and cand.scores.shape == (0, 81)


def test_an_empty_batch_gives_no_detections():
    from postprocess.heads.nvidia_ssd.detect import detect

    dets = detect(np.zeros((0, 4, 8732), np.float32), np.zeros((0, 81, 8732), np.float32))
    assert len(dets) == 0
    with pytest.raises(ValueError, match="empty batch must be a"):
        candidate_scores([], 0.05)
