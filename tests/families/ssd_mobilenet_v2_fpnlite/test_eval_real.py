"""`ssdconvert eval` of the real FP32 model on the 43 real COCO val2014 images equals pycocotools run here
directly on the same detection rows: the project's first real, non-zero mAP."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from ssdconvert import realdata


def pycocotools_stats(detections: list[dict], image_ids: list[int]) -> list[float]:
    """COCO's own evaluation of a results list (loadRes, COCOeval bbox over `image_ids`): the 12 stats."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(realdata.VAL_ANNOTATION))
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.params.imgIds = image_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(v) for v in evaluation.stats]


@pytest.mark.parametrize("policy", ["tf-od-api", "st-app"])
def test_eval_equals_pycocotools_on_the_same_rows(cli, val_results, tmp_path, policy):
    done = cli("eval", "--bin_path", val_results, "--nms", policy, "--detections", tmp_path / "dets.json",
               "--output", tmp_path / "report.json", "--workers", "1")
    assert done.exit_code == 0, done.output
    report = json.loads((tmp_path / "report.json").read_text())
    detections = json.loads((tmp_path / "dets.json").read_text())
    assert report["images"] == 43 and report["detections"] == len(detections) and report["nms"] == policy
    assert report["annotation"] == str(realdata.VAL_ANNOTATION)
    ids = sorted(json.loads(realdata.VAL_ANNOTATION.read_text())["images"], key=lambda im: im["id"])
    expected = pycocotools_stats(detections, [im["id"] for im in ids])
    np.testing.assert_allclose(list(report["stats"].values()), expected, rtol=0, atol=1e-12)
    ap = report["stats"]["AP"]
    print(f"\n{policy}: AP@[.5:.95] {ap:.4f} (pycocotools {expected[0]:.4f}), AP50 {expected[1]:.4f}, "
          f"{len(detections)} detections on 43 images")
    if policy == "tf-od-api":
        assert ap > 0.15 and len(detections) == 4300  # the established FP32 figure is 0.2024
    else:
        assert 0.05 < ap < report["stats"]["AR100"] and 0 < len(detections) < 200  # few boxes above 0.70


def test_eval_refuses_results_of_an_image_folder(cli, st_export, calib_bins, tmp_path):
    from ssdconvert.infer import run_infer

    run_infer(st_export, calib_bins, tmp_path / "calib_result", batchsize=8, progress=False)
    refused = cli("eval", "--bin_path", tmp_path / "calib_result")
    lines = [line for line in refused.output.splitlines() if line.startswith("Error:")]
    assert refused.exit_code == 1 and len(lines) == 1 and "Traceback" not in refused.output
    assert lines[0] == (f"Error: {calib_bins.resolve() / 'manifest.json'} describes an image folder without annotations "
                        f"(85 images of {realdata.CALIBRATION_IMAGES}, ids given in name order: a calibration set); "
                        "eval needs the images preprocessed with --val_annotation")
