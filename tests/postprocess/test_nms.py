"""NMS: hand-built boundary cases, and identity with the straightforward loop on random outputs."""

from __future__ import annotations

import numpy as np
import pytest
from loop_baseline import ascend_loop, reference_loop

from postprocess.heads.nvidia_ssd.detect import detect
from postprocess.heads.nvidia_ssd.nms import NmsParams, ascend_nms, nms, reference_nms
from postprocess.heads.nvidia_ssd.priors import PriorSpec, default_boxes
from postprocess.heads.nvidia_ssd.synthetic import realistic_outputs

F32 = np.float32


def scores_for(n: int, num_classes: int = 4, **columns) -> np.ndarray:
    """(n, num_classes) scores, background (column 0) gets the rest; columns given as c1=[...]."""
    s = np.zeros((n, num_classes), F32)
    for name, values in columns.items():
        s[:, int(name[1:])] = values
    s[:, 0] = 1 - s[:, 1:].sum(axis=1)
    return s


def run(boxes, scores, variant="reference", params=NmsParams(), image=None):
    n = len(boxes)
    image = np.zeros(n, np.int64) if image is None else np.asarray(image)
    return nms(image, np.arange(n), np.asarray(boxes, F32), scores, params, variant)


def test_score_exactly_at_threshold_is_dropped():
    boxes = [[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5, 5]]
    just_above = np.nextafter(F32(0.05), F32(1))
    dets = run(boxes, scores_for(3, c1=[F32(0.05), just_above, 0.9]))
    assert dets.anchor.tolist() == [2, 1]
    assert dets.score.tolist() == [F32(0.9), just_above]


def test_iou_exactly_half_is_suppressed_by_reference_kept_by_ascend():
    boxes = [[0, 0, 3, 1], [1, 0, 4, 1]]  # inter 2, union 4: IoU exactly 0.5
    scores = scores_for(2, c1=[0.9, 0.8])
    assert run(boxes, scores).anchor.tolist() == [0]
    assert run(boxes, scores, "ascend").anchor[run(boxes, scores, "ascend").label == 1].tolist() == [0, 1]
    just_below = [[0, 0, 3, 1], [1.0001, 0, 4, 1]]
    assert run(just_below, scores).anchor.tolist() == [0, 1]


def test_suppression_is_per_class_and_greedy():
    # A suppresses B (same class), B would have suppressed C but is gone, so C stays
    boxes = [[0, 0, 10, 10], [0, 3, 10, 13], [0, 6, 10, 16], [0, 0, 10, 10]]
    scores = scores_for(4, c1=[0.9, 0.8, 0.7, 0.0], c2=[0.0, 0.0, 0.0, 0.6])
    dets = run(boxes, scores)
    assert list(zip(dets.label.tolist(), dets.anchor.tolist())) == [(1, 0), (1, 2), (2, 3)]


def test_zero_area_boxes_nan_iou_is_suppressed_by_reference():
    boxes = [[1, 1, 1, 1], [1, 1, 1, 1], [5, 5, 6, 6]]
    scores = scores_for(3, c1=[0.9, 0.8, 0.7])
    assert run(boxes, scores).anchor.tolist() == [0, 2]  # NaN < 0.5 is False -> suppressed
    assert run(boxes, scores, "ascend").anchor[:3].tolist() == [0, 1, 2]  # NaN > 0.5 is False -> kept


def test_more_than_200_candidates_per_class_and_per_image():
    n = 450  # disjoint boxes: no suppression, so the caps alone decide
    x = np.arange(n, dtype=F32) * 2
    boxes = np.stack([x, 0 * x, x + 1, 0 * x + 1], axis=1)
    score = np.linspace(0.06, 0.3, n, dtype=F32)
    dets = run(boxes, scores_for(n, c1=score))
    assert len(dets) == 200 and dets.anchor.tolist() == list(range(n - 1, n - 201, -1))
    # per-class cap first: class 2's 200 best come from the 200 lowest-ranked of its own order
    dets = run(boxes, scores_for(n, c1=score, c2=score[::-1] * F32(0.5)))
    assert len(dets) == 200 and set(dets.label.tolist()) == {1}
    few = NmsParams(max_per_class=3, max_output=5)
    dets = run(boxes, scores_for(n, c1=score, c2=score[::-1] * F32(0.9)), params=few)
    assert sorted(dets.anchor[dets.label == 1].tolist()) == [n - 3, n - 2, n - 1]
    assert len(dets) == 5


def test_empty_images_and_an_empty_batch():
    boxes = [[0, 0, 1, 1], [0, 0, 1, 1]]
    scores = scores_for(2, c1=[0.9, 0.01])
    dets = run(boxes, scores, image=[2, 0])  # image 0: nothing above 0.05; image 1: no candidate at all
    assert dets.image.tolist() == [2]
    for variant in ("reference", "ascend"):
        empty = run(np.zeros((0, 4)), np.zeros((0, 4), F32), variant)
        assert len(empty) == 0 and empty.box.shape == (0, 4)


def test_ascend_keeps_every_class_of_a_selected_box_even_below_threshold():
    boxes = [[0, 0, 1, 1]]
    dets = run(boxes, scores_for(1, c1=[0.9], c2=[0.01], c3=[0.0001]), "ascend")
    assert dets.label.tolist() == [1, 2, 3]
    assert len(run(boxes, scores_for(1, c1=[0.9], c2=[0.01], c3=[0.0001]))) == 1


def test_ascend_prefilter_is_by_best_class_then_top_k_boxes():
    n = 10
    boxes = np.stack([np.arange(n) * 2, np.zeros(n), np.arange(n) * 2 + 1, np.ones(n)], axis=1).astype(F32)
    best = np.linspace(0.04, 0.5, n, dtype=F32)  # box 0 fails the > 0.05 filter
    dets = ascend_nms(np.zeros(n), np.arange(n), boxes, scores_for(n, c1=best, c2=best / 4),
                      NmsParams(max_per_class=4, max_output=100))
    assert sorted(set(dets.anchor.tolist())) == [6, 7, 8, 9]
    dets = ascend_nms(np.zeros(n), np.arange(n), boxes, scores_for(n, c1=best, c2=best / 4))
    assert 0 not in dets.anchor and len(dets) == 3 * (n - 1)  # every foreground class of each box


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown NMS variant"):
        run([[0, 0, 1, 1]], scores_for(1, c1=[0.9]), "fast")


def _random_batch(seed: int, count: int, crowded: bool):
    rng = np.random.default_rng(seed)
    boxes, labels = [], []
    for _ in range(count):
        k = int(rng.integers(0, 12)) if not crowded else 40
        wh = rng.uniform(0.05, 0.6, (k, 2))
        xy = rng.uniform(0, 1, (k, 2)) * (1 - wh)
        boxes.append(np.concatenate([xy, xy + wh], axis=1))
        labels.append(rng.integers(1, 81, k) if not crowded else rng.integers(1, 4, k))
    return realistic_outputs(boxes, labels, rng)


@pytest.mark.parametrize("variant,loop", [("reference", reference_loop), ("ascend", ascend_loop)])
@pytest.mark.parametrize("params", [NmsParams(), NmsParams(max_per_class=7, max_output=5),
                                    NmsParams(score_threshold=0.2, iou_threshold=0.3)])
@pytest.mark.parametrize("crowded", [False, True])
def test_identical_to_the_per_image_per_class_loop(variant, loop, params, crowded):
    ploc, plabel = _random_batch(seed=7 if crowded else 8, count=3, crowded=crowded)
    dboxes = default_boxes(PriorSpec())
    dets = detect(ploc, plabel, PriorSpec(), params, variant)
    for b in range(len(ploc)):
        ref = loop(ploc[b], plabel[b], dboxes, score_threshold=params.score_threshold,
                   iou_threshold=params.iou_threshold, max_per_class=params.max_per_class,
                   max_output=params.max_output)
        mine = dets.image == b
        for key in ("label", "anchor", "score", "box"):
            np.testing.assert_array_equal(getattr(dets, key)[mine], ref[key], err_msg=f"image {b} {key}")


def test_batching_does_not_change_detections():
    ploc, plabel = _random_batch(seed=5, count=5, crowded=False)
    together = detect(ploc, plabel)
    for b in range(5):
        alone = detect(ploc[b:b + 1], plabel[b:b + 1])
        np.testing.assert_array_equal(together.anchor[together.image == b], alone.anchor)
        np.testing.assert_array_equal(together.score[together.image == b], alone.score)


def test_reference_nms_function_matches_nms_dispatch():
    """`nms(variant=...)` must reach the named implementation. On this input the two variants
    disagree (IoU exactly 0.5: the reference suppresses it, Ascend keeps it; Ascend also lists every
    class of a kept box), so a swapped or collapsed dispatch cannot pass."""
    boxes = np.asarray([[0, 0, 3, 1], [1, 0, 4, 1], [10, 10, 11, 11]], F32)
    scores = scores_for(3, num_classes=3, c1=[0.9, 0.8, 0.01], c2=[0.02, 0.03, 0.7])
    args = (np.zeros(3), np.arange(3), boxes, scores)
    expected = {  # (label, anchor) pairs, worked out by hand from the two rule sets (MLPerf, Ascend)
        "reference": [(1, 0), (2, 2)],
        "ascend": [(1, 0), (1, 1), (2, 2), (2, 1), (2, 0), (1, 2)],
    }
    for variant, direct in (("reference", reference_nms), ("ascend", ascend_nms)):
        dispatched = run(boxes, scores, variant)
        pairs = list(zip(dispatched.label.tolist(), dispatched.anchor.tolist()))
        assert pairs == expected[variant], variant
        own = direct(*args)
        assert list(zip(own.label.tolist(), own.anchor.tolist())) == pairs
        np.testing.assert_array_equal(own.score, dispatched.score)
    with pytest.raises(ValueError, match="unknown NMS variant 'fast'"):
        run(boxes, scores, "fast")


def test_ascend_widens_its_working_set_until_enough_detections_survive(monkeypatch):
    """30 identical boxes: per class only the best survives, so the first 4 x max_output nodes
    (nearly all class 1) yield too few detections and the images must be redone with more."""
    import postprocess.nms as nms_module

    calls = []
    original = nms_module.greedy_nms
    monkeypatch.setattr(nms_module, "greedy_nms", lambda *a, **k: calls.append(1) or original(*a, **k))
    n = 30
    boxes = np.tile(np.array([[0.1, 0.1, 0.5, 0.5]], F32), (n, 1))
    c1 = np.linspace(0.9, 0.6, n, dtype=F32)
    scores = scores_for(n, c1=c1, c2=c1 / 10, c3=c1 / 20)
    dets = ascend_nms(np.zeros(n), np.arange(n), boxes, scores, NmsParams(max_output=5))
    assert len(calls) >= 2
    assert dets.label.tolist() == [1, 2, 3] and dets.anchor.tolist() == [0, 0, 0]
