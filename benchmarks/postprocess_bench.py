"""Postprocess benchmark: decode + NMS speed against a per-image per-class loop, and a full
`ssdconvert eval` on 4952 images of synthetic outputs.

    .venv/bin/python benchmarks/postprocess_bench.py                 # both parts
    .venv/bin/python benchmarks/postprocess_bench.py --skip-eval     # decode+NMS only (~1 min)

Part 1 runs both implementations on the same realistic synthetic outputs (clusters of candidates
around COCO-like objects, confusable classes, stray false positives: hundreds of candidates per
image), checks that the detections are identical (labels, anchors, scores and boxes bit for bit)
and prints ms/image and the ratio. Part 2 writes 4952 images of synthetic outputs in the ais_bench
layout (plus manifest, annotation file and runner summary) and times `ssdconvert eval --bin_path`
in a child process: wall time and peak RSS. Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from loop_baseline import ascend_loop, reference_loop  # noqa: E402

from postprocess.heads.nvidia_ssd.detect import detect  # noqa: E402
from postprocess.heads.nvidia_ssd.nms import NmsParams  # noqa: E402
from postprocess.heads.nvidia_ssd.priors import PriorSpec, default_boxes  # noqa: E402
from postprocess.heads.nvidia_ssd.synthetic import realistic_outputs  # noqa: E402

SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (427, 640), (640, 360), (612, 612), (640, 640))


def random_objects(rng: np.random.Generator, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """COCO-like objects per image: 1 + Poisson(6) boxes (val2017 averages 7.3), normalised ltrb,
    log-uniform sizes, labels 1..80."""
    boxes, labels = [], []
    for _ in range(count):
        k = 1 + int(rng.poisson(6))
        wh = np.exp(rng.uniform(np.log(0.04), np.log(0.9), (k, 2)))
        xy = rng.uniform(0, 1, (k, 2)) * (1 - wh)
        boxes.append(np.concatenate([xy, xy + wh], axis=1))
        labels.append(rng.integers(1, 81, k))
    return boxes, labels


def candidate_pairs(plabel: np.ndarray, threshold: float) -> int:
    """(anchor, class) pairs of one image with a foreground score above the threshold."""
    e = np.exp(plabel - plabel.max(axis=0))
    return int((e[1:] / e.sum(axis=0) > threshold).sum())


def bench_decode_nms(images: int, batch: int, repeat: int, variant: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    spec, params = PriorSpec(), NmsParams()
    dboxes = default_boxes(spec)
    boxes, labels = random_objects(rng, images)
    ploc = np.empty((images, 4, len(dboxes)), np.float32)
    plabel = np.empty((images, 81, len(dboxes)), np.float32)
    for s in range(0, images, 64):
        ploc[s:s + 64], plabel[s:s + 64] = realistic_outputs(boxes[s:s + 64], labels[s:s + 64], rng)
    loop = reference_loop if variant == "reference" else ascend_loop

    def run_loop():
        return [loop(ploc[i], plabel[i], dboxes) for i in range(images)]

    def run_project():
        out = []
        for s in range(0, images, batch):
            out.append((s, detect(ploc[s:s + batch], plabel[s:s + batch], spec, params, variant)))
        return out

    times: dict[str, list[float]] = {"loop": [], "project": []}
    results = {}
    for _ in range(repeat):  # interleaved, so background load hits both alike
        for name, fn in (("loop", run_loop), ("project", run_project)):
            started = time.perf_counter()
            results[name] = fn()
            times[name].append((time.perf_counter() - started) / images * 1e3)

    # identical detections, image by image
    mismatches, total, per_image = 0, 0, []
    flat = {k: [] for k in ("label", "anchor", "score", "box")}
    for s, dets in results["project"]:
        for b in range(min(batch, images - s)):
            m = dets.image == b
            for key in flat:
                flat[key].append(getattr(dets, key)[m])
    for i, ref in enumerate(results["loop"]):
        n = len(ref["score"])
        total += n
        per_image.append(n)
        same = all(np.array_equal(flat[key][i], ref[key]) for key in flat)
        mismatches += not same

    pairs = [candidate_pairs(plabel[i], params.score_threshold) for i in range(0, images, max(1, images // 64))]
    best = {k: min(v) for k, v in times.items()}
    median = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "variant": variant, "images": images, "batch": batch, "repeat": repeat,
        "candidates_per_image": {"mean": float(np.mean(pairs)), "min": int(np.min(pairs)), "max": int(np.max(pairs)),
                                 "note": "(anchor, class) pairs with score > 0.05, on a sample of images"},
        "detections_per_image": float(np.mean(per_image)), "detections": total,
        "identical": mismatches == 0, "mismatched_images": mismatches,
        "ms_per_image": {"loop_best": best["loop"], "loop_median": median["loop"],
                         "project_best": best["project"], "project_median": median["project"]},
        "speedup_best": best["loop"] / best["project"], "speedup_median": median["loop"] / median["project"],
    }


def coco_dataset(rng: np.random.Generator, images: int, without: int) -> tuple[dict, list]:
    from ssdconvert.synth import COCO_CATEGORIES

    boxes, labels = random_objects(rng, images)
    cat_ids = [c[0] for c in COCO_CATEGORIES]
    doc = {"images": [], "annotations": [],
           "categories": [{"id": i, "name": n, "supercategory": s} for i, n, s in COCO_CATEGORIES]}
    empty = set(rng.choice(images, size=without, replace=False).tolist())
    objects = []
    for k in range(images):
        w, h = SIZES[k % len(SIZES)]
        image_id = 1000 + 7 * k
        doc["images"].append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": w, "height": h})
        if k in empty:
            continue
        b, lb = boxes[k], labels[k]
        for box, label in zip(b, lb):
            x, y, bw, bh = box[0] * w, box[1] * h, (box[2] - box[0]) * w, (box[3] - box[1]) * h
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": image_id, "iscrowd": 0,
                                       "category_id": cat_ids[int(label) - 1], "bbox": [x, y, bw, bh],
                                       "area": bw * bh, "segmentation": []})
        objects.append((doc["images"][-1], b, lb))
    return doc, objects


def write_eval_set(work: Path, images: int, without: int, dtype: str, seed: int, model: str = "ssd-resnet34") -> Path:
    """Annotations, a manifest and realistic outputs of `model`'s head (ssd-resnet34: NVIDIA ploc/plabel;
    ssd-vgg16: mmdet bbox_deltas/cls_logits) in the ais_bench layout; returns the result folder."""
    from postprocess.heads.mmdet_ssd.synthetic import mmdet_realistic_outputs
    from preprocess.manifest import ImageRecord, InputInfo, Manifest, write_manifest
    from stageio.tensor import TensorSpec

    generate = {"ssd-resnet34": realistic_outputs,  # labels 1..80 (background 0)
                "ssd-vgg16": lambda b, lb, rng, dtype: mmdet_realistic_outputs(  # 0..79 (background last)
                    b, [x - 1 for x in lb], rng, dtype=dtype)}[model]

    rng = np.random.default_rng(seed)
    doc, objects = coco_dataset(rng, images, without)
    (work / "annotations").mkdir(parents=True)
    annotation = work / "annotations" / "instances_val2017.json"
    annotation.write_text(json.dumps(doc))
    records = [ImageRecord(im["id"], im["file_name"], im["file_name"].split(".")[0], im["width"], im["height"])
               for im, _, _ in objects]
    info = InputInfo(TensorSpec("image", (3, 300, 300), "float32"), layout="CHW", channel_order="RGB",
                     resize="pil_bilinear", keep_aspect=False, scale=1 / 255, mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225), normalized=True)
    (work / "ssd_bin").mkdir()
    write_manifest(work / "ssd_bin", Manifest(model=model, input=info, annotation_path=str(annotation),
                                              annotation_sha256="", data_root=str(work / "val2017"),
                                              images=records, skipped_without_annotations=without))
    result = work / "out" / "result"
    result.mkdir(parents=True)
    for s in range(0, len(objects), 32):
        chunk = objects[s:s + 32]
        ploc, plabel = generate([o[1] for o in chunk], [o[2] for o in chunk], rng, dtype=dtype)
        for k, (im, _, _) in enumerate(chunk):
            stem = im["file_name"].split(".")[0]
            ploc[k].tofile(result / f"{stem}_0.bin")
            plabel[k].tofile(result / f"{stem}_1.bin")
    (work / "out" / "result_summary.json").write_text(json.dumps(
        {"args": ["python3", "-m", "ais_bench", "--model", "ssd_bs16.om", "--input", str(work / "ssd_bin"),
                  "--output", str(work / "out"), "--output_dirname", "result", "--batchsize", "16"]}))
    return result


def bench_eval(images: int, without: int, dtype: str, seed: int, workdir: str | None, keep: bool,
               runs: int) -> dict:
    base = Path(workdir) if workdir else Path(tempfile.gettempdir())
    free = shutil.disk_usage(base).free
    need = (images - without) * (4 + 81) * 8732 * (4 if dtype == "float32" else 2) * 1.1
    note = ""
    if dtype == "float32" and free < need + 5e9:
        dtype, need = "float16", need / 2
        note = f"only {free / 1e9:.0f} GB free in {base}: switched to float16 outputs"
    work = Path(tempfile.mkdtemp(prefix="ssdconvert-evalbench-", dir=base))
    try:
        started = time.perf_counter()
        result = write_eval_set(work, images, without, dtype, seed)
        written = time.perf_counter() - started
        cmd = [str(ROOT / ".venv" / "bin" / "ssdconvert"), "eval", "--bin_path", str(result),
               "--output", str(work / "report.json")]
        timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
        out = {"images": images - without, "dtype": dtype, "note": note, "write_seconds": round(written, 1),
               "bytes_on_disk": sum(f.stat().st_size for f in result.iterdir()), "runs": []}
        for _ in range(runs):  # the first run finds part of the data evicted from the page cache
            started = time.perf_counter()
            proc = subprocess.run(timer + cmd, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if proc.returncode:
                raise SystemExit(f"ssdconvert eval failed:\n{proc.stdout}\n{proc.stderr}")
            match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
            rss_kb = int(match.group(1)) if match else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            report = json.loads((work / "report.json").read_text())
            out["runs"].append({"wall_seconds": round(wall, 2), "peak_rss_mb": round(rss_kb / 1024, 1),
                                "stage_seconds": report["seconds"], "load_avg": os.getloadavg()})
        out.update(images=report["images"], detections=report["detections"], AP=report["stats"]["AP"],
                   stdout=proc.stdout)
        return out
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=512, help="images for the decode+NMS comparison")
    ap.add_argument("--batch", type=int, default=16, help="images per detect() call")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variant", choices=["reference", "ascend"], default="reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--eval-images", type=int, default=5000, help="images in the annotation file")
    ap.add_argument("--without-annotations", type=int, default=48, help="of those, images without annotations")
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    ap.add_argument("--workdir", default=None, help="where to write the synthetic results (default: $TMPDIR)")
    ap.add_argument("--eval-runs", type=int, default=2, help="times to run ssdconvert eval on the same files")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                       "load_avg": os.getloadavg()}}
    part = bench_decode_nms(args.images, args.batch, args.repeat, args.variant, args.seed)
    out["decode_nms"] = part
    ms = part["ms_per_image"]
    print(f"decode+NMS ({part['variant']}), {part['images']} images, batch {part['batch']}, best of {part['repeat']}:")
    print(f"  candidates/image (score > 0.05): mean {part['candidates_per_image']['mean']:.0f} "
          f"(min {part['candidates_per_image']['min']}, max {part['candidates_per_image']['max']}); "
          f"detections/image {part['detections_per_image']:.1f}")
    print(f"  per-image per-class loop: {ms['loop_best']:.2f} ms/image (median {ms['loop_median']:.2f})")
    print(f"  postprocess (vectorised): {ms['project_best']:.3f} ms/image (median {ms['project_median']:.3f})")
    print(f"  speed-up: {part['speedup_best']:.1f}x (median {part['speedup_median']:.1f}x); "
          f"identical detections: {part['identical']} ({part['detections']} detections)")
    if not args.skip_eval:
        ev = bench_eval(args.eval_images, args.without_annotations, args.dtype, args.seed, args.workdir, args.keep,
                        args.eval_runs)
        out["eval"] = {k: v for k, v in ev.items() if k != "stdout"}
        print(f"ssdconvert eval: {ev['images']} images ({ev['dtype']}, {ev['bytes_on_disk'] / 1e9:.1f} GB), "
              f"{ev['detections']} detections, AP {ev['AP']:.4f}")
        for k, run in enumerate(ev["runs"], 1):
            print(f"  run {k}: wall {run['wall_seconds']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB; "
                  f"stages {run['stage_seconds']}; load average {run['load_avg'][0]:.1f}")
        if ev["note"]:
            print(f"  note: {ev['note']}")
    out["machine"]["load_avg_after"] = os.getloadavg()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    path = results / "postprocess_bench.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"results: {path}  (load average before/after: {out['machine']['load_avg']} / "
          f"{out['machine']['load_avg_after']}; the machine is shared, timings are noisy)")


if __name__ == "__main__":
    main()
