"""COCO bbox mAP of result rows: pycocotools' COCOeval on arrays (postprocess.cocoeval_numpy) by
default, faster-coco-eval or pycocotools itself on request.

All three get the same inputs (the detections on exactly the evaluated images, `params.imgIds`
restricted to them) and give the same 12 stats. On a million detections faster-coco-eval takes
6-11 s on two cores (most of it building a dict per detection), the arrays about 1.2 s on one, and
their per-image matching can run beside decoding (see `ArrayEvaluation`).
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

Evaluator = Literal["numpy", "faster-coco-eval", "pycocotools"]
EVALUATORS: tuple[str, ...] = ("numpy", "faster-coco-eval", "pycocotools")
DEFAULT_EVALUATOR: Evaluator = "numpy"
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
    if evaluator in ("numpy", "faster-coco-eval"):  # the arrays read faster-coco-eval's (quick) json loader
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


def load_ground_truth(annotation: str | Path, evaluator: Evaluator = DEFAULT_EVALUATOR) -> Any:
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


def _groups(counts: Sequence[int], max_count: int) -> list[list[int]]:
    """Consecutive groups of positions whose counts add up to at most about max_count each."""
    groups: list[list[int]] = [[]]
    total = 0
    for k, n in enumerate(counts):
        if groups[-1] and total + n > max_count:
            groups.append([])
            total = 0
        groups[-1].append(k)
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


class ArrayEvaluation:
    """The array COCOeval of one ground truth over `image_ids`, in two halves: `match` the rows of
    any set of those images (decode workers run it on their slices), then `stats` of all matches."""

    def __init__(self, gt: Any, image_ids: Iterable[int], float32_rows: bool = True):
        from postprocess.cocoeval_numpy import GroundTruth

        self.truth = GroundTruth.of(gt, _checked_ids(gt, image_ids))
        self.float32_rows = float32_rows

    def match(self, rows: np.ndarray):
        from postprocess.cocoeval_numpy import match_images

        return match_images(self.truth, rows, self.float32_rows)

    def stats(self, matches: Sequence[Any], workers: int = 1) -> list[float]:
        """The 12 stats of the matches of every evaluated image (in slices, any order), categories
        accumulated in `workers` forked processes."""
        from postprocess.cocoeval_numpy import AREA_LABELS, IOU_THRESHOLDS, MAX_DETS, Matches
        from postprocess.parallel import run_tasks

        joined, counted = Matches.join(list(matches)), self.truth.counted()
        per_cat = np.bincount(joined.pair % max(len(counted), 1), minlength=len(counted))
        ranges = [(g[0], g[-1] + 1) for g in _groups(per_cat.tolist(), -(-len(joined.pair) // workers)) if g]
        results = run_tasks(workers, "accumulate", (joined, counted), _accumulate_task, ranges or [(0, 0)])
        precision, recall = zip(*results)
        return summarize(np.concatenate(precision, axis=2), np.concatenate(recall, axis=1),
                         SimpleNamespace(iouThrs=list(IOU_THRESHOLDS), areaRngLbl=list(AREA_LABELS),
                                         maxDets=list(MAX_DETS)))


def _accumulate_task(first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """The precision/recall arrays of the categories at positions [first, stop) (a run_tasks task)."""
    from postprocess.cocoeval_numpy import accumulate
    from postprocess.parallel import shared_data

    matches, counted = shared_data("accumulate")
    return accumulate(matches, counted, first, stop)


def _checked_ids(gt: Any, image_ids: Iterable[int]) -> list[int]:
    image_ids = sorted({int(i) for i in image_ids})
    unknown = set(image_ids) - set(gt.getImgIds())
    if unknown:
        raise PostprocessError(f"{len(unknown)} evaluated image id(s) are not in the annotation file "
                               f"(e.g. {min(unknown)}); wrong annotation file?")
    return image_ids


def coco_stats(gt: Any, rows: np.ndarray, image_ids: Iterable[int],
               evaluator: Evaluator = DEFAULT_EVALUATOR, max_rows: int = 200_000,
               float32_rows: bool = True, workers: int = 1) -> list[float]:
    """The 12 COCOeval bbox stats of result rows (see coco.result_rows) over exactly `image_ids`.

    The arrays ("numpy") run in this process. For the libraries, categories (which COCOeval
    evaluates independently) are run in groups of at most about `max_rows` detections (memory
    stays bounded: a million result dicts would take ~1 GB), spread over `workers` forked
    processes (postprocess.parallel), and the accumulated precision/recall arrays are joined in
    category order before the usual summary: the same stats as one run.
    """
    from postprocess.parallel import can_fork, run_tasks

    if evaluator == "numpy":
        arrays = ArrayEvaluation(gt, image_ids, float32_rows)
        return arrays.stats([arrays.match(rows)])
    _api(evaluator)  # unknown names fail here
    image_ids = _checked_ids(gt, image_ids)
    job = (gt, rows, image_ids, evaluator, float32_rows)
    parallel = workers > 1 and can_fork() and len(rows) > 0
    # several groups per worker: categories differ in cost, so fewer, larger groups leave a worker idle
    group_rows = min(max_rows, -(-len(rows) // (GROUPS_PER_WORKER * workers))) if parallel else max_rows
    cat_ids = sorted(gt.getCatIds())
    per_cat = dict(zip(*np.unique(rows[:, 6].astype(np.int64), return_counts=True)))
    groups = [[cat_ids[k] for k in g] for g in _groups([int(per_cat.get(c, 0)) for c in cat_ids], group_rows)]
    results = run_tasks(workers if parallel else 1, "coco", job, _evaluate_task, [(g,) for g in groups])
    precision, recall, params = zip(*results)
    return summarize(np.concatenate(precision, axis=2), np.concatenate(recall, axis=1), params[0])


def _evaluate_task(cats: list[int]) -> tuple[np.ndarray, np.ndarray, SimpleNamespace]:
    """COCOeval over the categories `cats` (a run_tasks task): accumulated precision [T,R,K,A,M],
    recall [T,K,A,M] and the parameters summarize() reads."""
    from postprocess.parallel import shared_data

    gt, rows, image_ids, evaluator, float32_rows = shared_data("coco")
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
                           evaluator: Evaluator = DEFAULT_EVALUATOR) -> Any:
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
