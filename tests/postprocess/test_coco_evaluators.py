"""The arrays (default), faster-coco-eval and pycocotools give the same 12 stats; imgIds are the
evaluated images."""

from __future__ import annotations

import numpy as np
import pytest

from postprocess.coco import category_ids
from postprocess.heads.nvidia_ssd.detect import detect, result_rows
from postprocess.errors import PostprocessError
from postprocess.evaluate import EVALUATORS, STAT_NAMES, coco_stats, load_ground_truth
from postprocess.heads.nvidia_ssd.synthetic import realistic_outputs


@pytest.fixture(scope="module")
def noisy_rows(coco):
    """Detections from realistic (noisy) outputs around the GT: a non-trivial AP."""
    rng = np.random.default_rng(11)
    ploc, plabel = realistic_outputs(coco.boxes, coco.labels, rng)
    dets = detect(ploc, plabel)
    return result_rows(dets, coco.images, category_ids(coco.doc["categories"], 81))


@pytest.fixture(scope="module")
def gts(coco):
    return {ev: load_ground_truth(coco.annotation, ev) for ev in EVALUATORS}


def test_every_evaluator_gives_the_same_stats(coco, gts, noisy_rows):
    ids = [im.id for im in coco.images]
    slow = coco_stats(gts["pycocotools"], noisy_rows, ids, "pycocotools")
    assert len(slow) == len(STAT_NAMES) == 12
    assert 0.05 < slow[0] < 0.95  # non-trivial
    for evaluator in ("numpy", "faster-coco-eval"):
        np.testing.assert_allclose(coco_stats(gts[evaluator], noisy_rows, ids, evaluator), slow, rtol=0, atol=1e-12)


@pytest.mark.parametrize("evaluator", ["numpy", "faster-coco-eval"])
def test_only_the_evaluated_images_count(coco, gts, noisy_rows, evaluator):
    """Detections on an image outside imgIds (e.g. one without GT) are not false positives."""
    gt = gts[evaluator]
    ids = [im.id for im in coco.images]
    base = coco_stats(gt, noisy_rows, ids, evaluator)
    unannotated = next(im["id"] for im in coco.doc["images"] if im["id"] not in set(ids))
    gt_cats = {a["category_id"] for a in coco.doc["annotations"]}
    extra = noisy_rows[np.isin(noisy_rows[:, 6], list(gt_cats))][:50].copy()
    extra[:, 0], extra[:, 5] = unannotated, 1.0  # confident false positives
    with_extra = np.concatenate([noisy_rows, extra])
    assert coco_stats(gt, with_extra, ids, evaluator) == base
    assert coco_stats(gt, with_extra, ids + [unannotated], evaluator)[0] < base[0]


def test_no_detections(coco, gts):
    for ev, gt in gts.items():
        stats = coco_stats(gt, np.zeros((0, 7)), [im.id for im in coco.images], ev)
        assert stats[0] == 0.0 and stats[8] == 0.0


def test_unknown_image_ids_and_bad_files(coco, gts, tmp_path):
    for evaluator in EVALUATORS:
        with pytest.raises(PostprocessError, match="not in the annotation file"):
            coco_stats(gts[evaluator], np.zeros((0, 7)), [123456789], evaluator)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PostprocessError, match="not a COCO instances json"):
        load_ground_truth(tmp_path / "bad.json")
    with pytest.raises(PostprocessError, match="cannot read annotation file"):
        load_ground_truth(tmp_path / "missing.json")
    with pytest.raises(PostprocessError, match="unknown evaluator"):
        load_ground_truth(coco.annotation, "cocoapi")


@pytest.mark.parametrize("evaluator", ["faster-coco-eval", "pycocotools"])
def test_category_groups_and_summary_match_the_library(coco, gts, noisy_rows, evaluator):
    """Evaluating categories in groups and summarising ourselves == one library run + its summarize."""
    import contextlib
    import io

    from postprocess.evaluate import _api, _results

    gt, ids = gts[evaluator], [im.id for im in coco.images]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = _api(evaluator)[1](gt, _results(gt, noisy_rows), iouType="bbox")
        ev.params.imgIds = sorted(ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    library = [float(x) for x in ev.stats[:12]]
    assert coco_stats(gt, noisy_rows, ids, evaluator) == library  # one group
    assert coco_stats(gt, noisy_rows, ids, evaluator, max_rows=40) == library  # many groups
