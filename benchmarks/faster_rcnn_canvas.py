"""How far the fixed canvas moves Faster R-CNN's detections and AP from the exact mode, and what it costs.

    .venv/bin/python benchmarks/faster_rcnn_canvas.py                     # 16 synthetic images, 1344x1344
    .venv/bin/python benchmarks/faster_rcnn_canvas.py --images 24 --canvas 1344x1344,320x320

The reference (maskrcnn-benchmark at TEST.IMS_PER_BATCH 1) pads each image only to its own multiple
of 32 ("exact mode"); a device model needs one static shape, so ssdconvert pads every image to a fixed
canvas. Features near the border see the padding through the deeper layers, so detections move. For
each synthetic image (ssdconvert.synth, all sizes and orientations) both paddings of the same resized
image run through the PyTorch reference path (ssdconvert.zoo.faster_rcnn.reference.detect, which the
exported graph reproduces to ~1e-5), and the detections are compared:

- matched by IoU per image and class (postprocess.detection_match) at IoU >= 0.9 and >= 0.5: how many
  of the exact mode's detections the fixed canvas reproduces, how many it adds, the largest score and
  box-coordinate differences over the pairs;
- COCO AP of the fixed canvas's detections taking the exact mode's as the ground truth (1.0 = the
  same detections);
- COCO AP of each mode against the synthetic ground truth.

Weights: the zoo's demo weights (seeded random + calibration, seed 0), so the detections are
plentiful but the AP against the synthetic ground truth is meaningless; the AP of one mode against
the other is not. A smaller canvas uses the scaled resize rule (preprocess.resize_pad.for_canvas) in
both modes. Compute: MACs per image at the fixed canvas against the mean over the set's exact
canvases (ssdconvert.zoo.faster_rcnn.flops).

Writes benchmarks/results/faster_rcnn_canvas.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssdconvert.bench import machine_info  # noqa: E402
from ssdconvert.formatting import markdown_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def parse_canvas(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def annotation_with(doc: dict, rows: np.ndarray, path: Path) -> Path:
    """`doc` (a COCO instances json) whose annotations are `rows` (detections as ground truth)."""
    anns = [{"id": k + 1, "image_id": int(r[0]), "category_id": int(r[6]), "bbox": [float(v) for v in r[1:5]],
             "area": float(r[3] * r[4]), "iscrowd": 0} for k, r in enumerate(rows)]
    path.write_text(json.dumps({**doc, "annotations": anns}))
    return path


def rows_of(detections, image, inv_map) -> np.ndarray:
    from postprocess.heads.final_detections.rows import ResizedImage, coco_rows

    n = len(detections)
    boxes = detections.boxes.numpy()[None] if n else np.zeros((1, 1, 4), np.float32)
    scores = detections.scores.numpy()[None] if n else np.zeros((1, 1), np.float32)
    labels = detections.labels.numpy()[None] if n else np.zeros((1, 1), np.int64)
    return coco_rows(boxes, scores, labels, np.array([n]), [image], inv_map)


def measure(model, dataset, canvas: tuple[int, int], workdir: Path) -> dict:
    import torch

    from postprocess.coco import category_ids
    from postprocess.detection_match import ImageDetections, match_detections
    from postprocess.evaluate import coco_stats, load_ground_truth
    from postprocess.heads.final_detections.rows import ResizedImage
    from preprocess.resize_pad import ResizePadTransform, for_canvas, prepare
    from preprocess.transform import load_rgb
    from ssdconvert.zoo.faster_rcnn import reference
    from ssdconvert.zoo.faster_rcnn.flops import macs

    fixed_t = for_canvas(canvas)
    exact_t = ResizePadTransform(fixed_t.min_size, fixed_t.max_size, canvas=None)
    doc = json.loads(dataset.annotation_file.read_text())
    inv_map = category_ids(doc["categories"], 81)
    exact_dets, fixed_dets, exact_rows, fixed_rows, exact_macs, seconds = [], [], [], [], [], {"exact": 0.0, "fixed": 0.0}
    for record in doc["images"]:
        rgb = load_rgb(str(dataset.image_dir / record["file_name"]))
        for mode, transform, into_dets, into_rows in (("exact", exact_t, exact_dets, exact_rows),
                                                      ("fixed", fixed_t, fixed_dets, fixed_rows)):
            padded = prepare(rgb, transform)
            started = time.perf_counter()
            (found,) = reference.detect(model, torch.from_numpy(padded.tensor[None]), [padded.im_info])
            seconds[mode] += time.perf_counter() - started
            into_dets.append(ImageDetections.of(found.boxes.numpy(), found.scores.numpy(), found.labels.numpy()))
            image = ResizedImage(record["id"], record["width"], record["height"], *padded.resized_size)
            into_rows.append(rows_of(found, image, inv_map))
            if mode == "exact":
                exact_macs.append(macs(padded.canvas)["total"])
        print(f"  {record['file_name']} {record['width']}x{record['height']}: exact {len(exact_dets[-1])}, fixed "
              f"{len(fixed_dets[-1])} detections", flush=True)
    exact_all, fixed_all = np.concatenate(exact_rows), np.concatenate(fixed_rows)
    ids = [im["id"] for im in doc["images"]]
    synthetic_gt = load_ground_truth(dataset.annotation_file)
    exact_gt = load_ground_truth(annotation_with(doc, exact_all, workdir / f"exact_{canvas[0]}x{canvas[1]}.json"))
    matches = {iou: match_detections(exact_dets, fixed_dets, iou, limit=100, pixel_offset=1.0).as_dict()
               for iou in (0.9, 0.5)}
    return {
        "canvas": list(canvas), "resize": [fixed_t.min_size, fixed_t.max_size], "images": len(ids),
        "detections": {"exact": int(len(exact_all)), "fixed": int(len(fixed_all))},
        "match": {str(k): v for k, v in matches.items()},
        "ap_fixed_vs_exact": dict(zip(("AP", "AP50", "AP75"), coco_stats(exact_gt, fixed_all, ids, float32_rows=False)[:3])),
        "ap_vs_synthetic_gt": {mode: dict(zip(("AP", "AP50"), coco_stats(synthetic_gt, rows, ids, float32_rows=False)[:2]))
                               for mode, rows in (("exact", exact_all), ("fixed", fixed_all))},
        "gmac": {"fixed": macs(tuple(canvas))["total"] / 1e9, "exact_mean": statistics.mean(exact_macs) / 1e9,
                 "exact_min": min(exact_macs) / 1e9, "exact_max": max(exact_macs) / 1e9},
        "pytorch_seconds_per_image": {k: v / len(ids) for k, v in seconds.items()},
    }


def write_report(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faster_rcnn_canvas.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = ["# Faster R-CNN: fixed canvas vs the exact mode (each image padded to its own multiple of 32)", "",
             f"- {result['images']} synthetic images (ssdconvert.synth seed {result['seed']}: 11 sizes, both "
             "orientations, grayscale, images without objects); the zoo's demo weights (seed 0): the AP against the "
             "synthetic ground truth is meaningless, the AP of one mode against the other is not",
             "- Both modes through the PyTorch reference path on the same resized image; only the padding differs",
             f"- Machine: {m.get('cpu_model')}, {m.get('usable_cores')} usable cores; torch "
             f"{m.get('versions', {}).get('torch')}", ""]
    rows = []
    for c in result["canvases"]:
        h, w = c["canvas"]
        m9, m5 = c["match"]["0.9"], c["match"]["0.5"]
        rows.append([f"{h}x{w} (resize {c['resize'][0]}/{c['resize'][1]})", c["detections"]["exact"],
                     c["detections"]["fixed"], f"{m9['matched'] / max(m9['expected'], 1):.1%}",
                     f"{m5['matched'] / max(m5['expected'], 1):.1%}", m9["missing"], m9["extra"],
                     f"{m9['max_score_diff']:.3f}", f"{m9['max_box_diff']:.1f}",
                     f"{c['ap_fixed_vs_exact']['AP']:.3f} / {c['ap_fixed_vs_exact']['AP50']:.3f}",
                     f"{c['ap_vs_synthetic_gt']['exact']['AP']:.4f} / {c['ap_vs_synthetic_gt']['fixed']['AP']:.4f}"])
    lines += [markdown_table(["Fixed canvas", "Exact dets", "Fixed dets", "Matched @IoU .9", "Matched @IoU .5",
                              "Missing @.9", "Extra @.9", "Max score diff @.9", "Max box diff px @.9",
                              "AP / AP50 fixed vs exact", "AP synthetic GT exact / fixed"], rows), ""]
    lines += ["Compute per image (GMAC, 1000 RoIs):", ""]
    lines += [markdown_table(["Fixed canvas", "Fixed", "Exact mean", "Exact min..max", "Fixed / exact mean"],
                             [[f"{c['canvas'][0]}x{c['canvas'][1]}", f"{c['gmac']['fixed']:.1f}",
                               f"{c['gmac']['exact_mean']:.1f}", f"{c['gmac']['exact_min']:.1f}..{c['gmac']['exact_max']:.1f}",
                               f"{c['gmac']['fixed'] / c['gmac']['exact_mean']:.2f}x"] for c in result["canvases"]]), ""]
    (RESULTS / "faster_rcnn_canvas.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--canvas", default="1344x1344", help="comma-separated HxW fixed canvases")
    args = parser.parse_args()

    from ssdconvert.checkpoints import build_model
    from ssdconvert.synth import generate
    from ssdconvert.zoo import get_spec

    workdir = Path(tempfile.mkdtemp(prefix="frcnn_canvas_"))
    dataset = generate(workdir / "coco", images=args.images, seed=args.seed)
    model, weights = build_model(get_spec("faster-rcnn-r101-fpn"))
    result = {"machine": machine_info(), "images": args.images, "seed": args.seed, "weights": weights.label(),
              "load_start": list(os.getloadavg()), "canvases": []}
    for text in args.canvas.split(","):
        canvas = parse_canvas(text)
        print(f"canvas {canvas}:", flush=True)
        result["canvases"].append(measure(model, dataset, canvas, workdir))
        print(json.dumps(result["canvases"][-1], indent=1), flush=True)
    write_report(result)
    print(f"wrote {RESULTS / 'faster_rcnn_canvas.md'}")


if __name__ == "__main__":
    main()
