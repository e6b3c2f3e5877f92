"""COCO bbox mAP of result rows: faster-coco-eval by default, pycocotools on request.

Both get the same inputs (the detections on exactly the evaluated images, `params.imgIds`
restricted to them) and give the same 12 stats; faster-coco-eval is about 10x faster.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Iterable, Literal

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


def load_ground_truth(annotation: str | Path, evaluator: Evaluator = "faster-coco-eval") -> Any:
    """The evaluator's COCO object for an instances json (quietly)."""
    coco_cls, _ = _api(evaluator)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return coco_cls(str(annotation))
    except OSError as exc:
        raise PostprocessError(f"cannot read annotation file {annotation}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise PostprocessError(f"annotation file {annotation} is not a COCO instances json ({exc})") from None


def _results(gt: Any, rows: np.ndarray) -> Any:
    """What gt.loadRes(float32 rows) builds for bbox results, minus the unused segmentation polygons."""
    anns = result_dicts(rows)
    area = (rows[:, 3].astype(np.float32) * rows[:, 4].astype(np.float32)).tolist()  # loadRes: float32 w*h
    for k, (ann, a) in enumerate(zip(anns, area), start=1):
        ann.update(id=k, area=a, iscrowd=0)
    res = type(gt)()
    res.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                   "annotations": anns}
    with contextlib.redirect_stdout(io.StringIO()):
        res.createIndex()
    return res


def coco_stats(gt: Any, rows: np.ndarray, image_ids: Iterable[int],
               evaluator: Evaluator = "faster-coco-eval") -> list[float]:
    """The 12 COCOeval bbox stats of result rows (see coco.result_rows) over exactly `image_ids`."""
    _, eval_cls = _api(evaluator)
    image_ids = sorted({int(i) for i in image_ids})
    unknown = set(image_ids) - set(gt.getImgIds())
    if unknown:
        raise PostprocessError(f"{len(unknown)} evaluated image id(s) are not in the annotation file "
                               f"(e.g. {min(unknown)}); wrong annotation file?")
    kwargs = {"print_function": lambda *a, **k: None} if evaluator == "faster-coco-eval" else {}
    with contextlib.redirect_stdout(io.StringIO()):
        ev = eval_cls(gt, _results(gt, rows), iouType="bbox", **kwargs)
        ev.params.imgIds = image_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats[:12]]
