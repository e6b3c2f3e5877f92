"""COCO bbox mAP of result rows: faster-coco-eval by default, pycocotools on request.

Both get the same inputs (the detections on exactly the evaluated images, `params.imgIds`
restricted to them) and give the same 12 stats; faster-coco-eval is about 10x faster.
"""

from __future__ import annotations

import contextlib
import gc
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from postprocess.coco import result_dicts
from postprocess.errors import PostprocessError

Evaluator = Literal["faster-coco-eval", "pycocotools"]
EVALUATORS: tuple[str, ...] = ("faster-coco-eval", "pycocotools")
STAT_NAMES: tuple[str, ...] = (
    "AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large",
)
STAT_LABELS: tuple[str, ...] = (
    "AP  IoU=0.50:0.95 area=all    maxDets=100", "AP  IoU=0.50      area=all    maxDets=100",
    "AP  IoU=0.75      area=all    maxDets=100", "AP  IoU=0.50:0.95 area=small  maxDets=100",
    "AP  IoU=0.50:0.95 area=medium maxDets=100", "AP  IoU=0.50:0.95 area=large  maxDets=100",
    "AR  IoU=0.50:0.95 area=all    maxDets=1", "AR  IoU=0.50:0.95 area=all    maxDets=10",
    "AR  IoU=0.50:0.95 area=all    maxDets=100", "AR  IoU=0.50:0.95 area=small  maxDets=100",
    "AR  IoU=0.50:0.95 area=medium maxDets=100", "AR  IoU=0.50:0.95 area=large  maxDets=100",
)


def _api(evaluator: str):
    if evaluator == "faster-coco-eval":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    if evaluator == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    raise PostprocessError(f"unknown evaluator {evaluator!r}; choose from {', '.join(EVALUATORS)}")


@contextlib.contextmanager
def _gc_paused():
    """Building a million result dicts with the cyclic GC on costs several times the work itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_ground_truth(annotation: str | Path, evaluator: Evaluator = "faster-coco-eval") -> Any:
    """The evaluator's COCO object for an instances json (quietly)."""
    coco_cls, _ = _api(evaluator)
    try:
        with _gc_paused(), contextlib.redirect_stdout(io.StringIO()):
            return coco_cls(str(annotation))
    except OSError as exc:
        raise PostprocessError(f"cannot read annotation file {annotation}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise PostprocessError(f"annotation file {annotation} is not a COCO instances json ({exc})") from None


def _results(gt: Any, rows: np.ndarray, float32_rows: bool = True) -> Any:
    """What gt.loadRes builds for bbox results, minus the unused segmentation polygons: from float32
    rows (area w * h in float32, the NVIDIA reference) or from a results json (area in double, mmdet)."""
    anns = result_dicts(rows, first_id=1, float32_area=float32_rows)
    res = type(gt)()
    res.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                   "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        res.createIndex()
    return res


def _passes(rows: np.ndarray, cat_ids: list[int], max_rows: int) -> list[list[int]]:
    """Consecutive groups of categories with at most about max_rows detections each."""
    counts = dict(zip(*np.unique(rows[:, 6].astype(np.int64), return_counts=True)))
    groups: list[list[int]] = [[]]
    total = 0
    for cat in cat_ids:
        n = int(counts.get(cat, 0))
        if groups[-1] and total + n > max_rows:
            groups.append([])
            total = 0
        groups[-1].append(cat)
        total += n
    return groups


def summarize(precision: np.ndarray, recall: np.ndarray, params: Any) -> list[float]:
    """The 12 COCOeval bbox stats from accumulated precision [T,R,K,A,M] and recall [T,K,A,M]
    (pycocotools `summarize`, without printing)."""
    def mean(ap: bool, iou: float | None = None, area: str = "all", max_dets: int = params.maxDets[2]) -> float:
        s = precision if ap else recall
        if iou is not None:
            s = s[np.where(iou == np.asarray(params.iouThrs))[0]]
        a, m = list(params.areaRngLbl).index(area), list(params.maxDets).index(max_dets)
        s = s[..., a, m]
        return float(np.mean(s[s > -1])) if (s > -1).any() else -1.0

    dets = params.maxDets
    return [mean(True), mean(True, 0.5), mean(True, 0.75), mean(True, area="small"),
            mean(True, area="medium"), mean(True, area="large"), mean(False, max_dets=dets[0]),
            mean(False, max_dets=dets[1]), mean(False), mean(False, area="small"),
            mean(False, area="medium"), mean(False, area="large")]


GROUPS_PER_WORKER = 4  # 990k rows, 2 workers: 6.0-6.1 s against 7.2 s with at most 200k rows per group (5 groups)


def coco_stats(gt: Any, rows: np.ndarray, image_ids: Iterable[int],
               evaluator: Evaluator = "faster-coco-eval", max_rows: int = 200_000,
               float32_rows: bool = True, workers: int = 1) -> list[float]:
    """The 12 COCOeval bbox stats of result rows (see coco.result_rows) over exactly `image_ids`.

    Categories are evaluated independently by COCOeval, so they are run in groups of at most about
    `max_rows` detections (memory stays bounded: a million result dicts would take ~1 GB), spread
    over `workers` forked processes (postprocess.parallel), and the accumulated precision/recall
    arrays are joined in category order before the usual summary: the same stats as one run.
    """
    from postprocess.parallel import can_fork, run_forked

    image_ids = sorted({int(i) for i in image_ids})
    unknown = set(image_ids) - set(gt.getImgIds())
    if unknown:
        raise PostprocessError(f"{len(unknown)} evaluated image id(s) are not in the annotation file "
                               f"(e.g. {min(unknown)}); wrong annotation file?")
    job = (gt, rows, image_ids, evaluator, float32_rows)
    parallel = workers > 1 and can_fork() and len(rows) > 0
    # several groups per worker: categories differ in cost, so fewer, larger groups leave a worker idle
    group_rows = min(max_rows, -(-len(rows) // (GROUPS_PER_WORKER * workers))) if parallel else max_rows
    groups = _passes(rows, sorted(gt.getCatIds()), group_rows)
    if parallel and len(groups) > 1:
        results = run_forked(min(workers, len(groups)), "coco", job, _evaluate_forked, [(g,) for g in groups])
    else:
        results = [_evaluate(job, cats) for cats in groups]
    precision, recall, params = zip(*results)
    return summarize(np.concatenate(precision, axis=2), np.concatenate(recall, axis=1), params[0])


def _evaluate_forked(cats: list[int]):
    from postprocess.parallel import shared_data

    return _evaluate(shared_data("coco"), cats)


def _evaluate(job: tuple, cats: list[int]) -> tuple[np.ndarray, np.ndarray, SimpleNamespace]:
    """COCOeval over the categories `cats`: accumulated precision [T,R,K,A,M], recall [T,K,A,M] and
    the parameters summarize() reads."""
    gt, rows, image_ids, evaluator, float32_rows = job
    _, eval_cls = _api(evaluator)
    kwargs = {"print_function": lambda *a, **k: None} if evaluator == "faster-coco-eval" else {}
    part = rows[np.isin(rows[:, 6], cats)]
    with _gc_paused(), contextlib.redirect_stdout(io.StringIO()):
        ev = eval_cls(gt, _results(gt, part, float32_rows), iouType="bbox", **kwargs)
        ev.params.imgIds = image_ids
        ev.params.catIds = cats
        ev.evaluate()
        ev.accumulate()
    p = ev.params
    return (np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"]),
            SimpleNamespace(iouThrs=list(p.iouThrs), areaRngLbl=list(p.areaRngLbl), maxDets=list(p.maxDets)))


def ground_truth_from_rows(rows: np.ndarray, images: Sequence[Any], labels: Iterable[int],
                           evaluator: Evaluator = "faster-coco-eval") -> Any:
    """A COCO ground truth whose boxes are result rows [image_id, x, y, w, h, score, category_id]
    (e.g. a reference model's detections), over `images` (id, width, height) and categories `labels`.

    Scoring another model's rows against it measures how well that model reproduces these
    detections: the rows themselves score AP 1.0 when no two of them of one class overlap enough
    to be confused (COCOeval matches each detection, best score first, to the unmatched box of its
    class it overlaps most)."""
    coco_cls, _ = _api(evaluator)
    gt = coco_cls()
    gt.dataset = {
        "images": [{"id": int(im.id), "width": int(im.width), "height": int(im.height)} for im in images],
        "categories": [{"id": int(k), "name": str(k)} for k in labels],
        "annotations": [{"id": k + 1, "image_id": int(r[0]), "category_id": int(r[6]),
                         "bbox": [float(v) for v in r[1:5]], "area": float(r[3] * r[4]), "iscrowd": 0}
                        for k, r in enumerate(rows)],
    }
    with _gc_paused(), contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt
