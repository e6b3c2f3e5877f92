"""Eval end to end: the MLPerf reference's decode + pycocotools against `ssdconvert eval`, as whole
processes on the same ais_bench result files.

    .venv/bin/python benchmarks/eval_bench.py                        # 400 images, best of 2, alternating
    .venv/bin/python benchmarks/eval_bench.py --images 4952 --skip-reference --cold

The result set is postprocess_bench's: realistic synthetic SSD300 outputs (clusters of candidates
around COCO-like objects, hundreds of candidates per image) in the ais_bench layout, with a
manifest and an annotation file. The reference process is written here from the MLPerf SSD
training code's evaluation (ssd/utils.py Encoder.decode_batch/decode_single, ssd/eval.py): per image,
torch decode of the locations against the default boxes, softmax, then per class: score > 0.05,
the 200 best, greedy NMS one box at a time (IoU < 0.5 survives), the 200 best overall; rows
[id, x, y, w, h, score, category] through pycocotools loadRes + COCOeval. Both processes are timed
from start to exit (imports included), alternately, best of --runs. Both APs are printed: they
must agree (the same detections up to float32 summation order).

Beside them, the floor of the reading: every result file mapped and checked for NaN/Inf (what
eval's reader does before any decoding) by as many processes as eval has workers. The eval
report's stages give the split: setup (manifest, annotations, scan), decode+NMS+COCO matching
(the workers, reading included) and accumulate (the per-category ranking after the last image).

`--cold` also times each ssdconvert eval, and the read floor, after evicting the result files from
the page cache (posix_fadvise DONTNEED on every file: clean pages go; no root needed): then the
disk bounds it. `--set DIR` keeps the generated result set in DIR and reuses it when it is there
(14.7 GB at 4952 images: writing it takes minutes). Writes benchmarks/results/eval_bench_<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]


def reference_eval(result: Path, annotation: Path) -> float:
    """The MLPerf reference's evaluation of `result`; returns AP@[.5:.95]."""
    import numpy as np
    import torch
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from postprocess.heads.nvidia_ssd.priors import PriorSpec, default_boxes

    torch.set_num_threads(1)  # the reference loop is sequential; more threads only add overhead
    spec = PriorSpec()
    dboxes = torch.from_numpy(default_boxes(spec).copy())  # (A, 4) cx cy w h
    gt = COCO(str(annotation))
    inv_map = {k + 1: cat for k, cat in enumerate(sorted(gt.getCatIds()))}
    rows = []
    for image_id in sorted(gt.getImgIds()):
        if not gt.getAnnIds(imgIds=[image_id]):
            continue  # the reference evaluates the images with annotations
        info = gt.loadImgs([image_id])[0]
        stem = Path(info["file_name"]).stem
        ploc = torch.from_numpy(np.fromfile(result / f"{stem}_0.bin", dtype=np.float32).reshape(4, -1))
        plabel = torch.from_numpy(np.fromfile(result / f"{stem}_1.bin", dtype=np.float32).reshape(81, -1))
        loc = ploc.t()
        xy = loc[:, :2] * spec.scale_xy * dboxes[:, 2:] + dboxes[:, :2]
        wh = (loc[:, 2:] * spec.scale_wh).exp() * dboxes[:, 2:]
        boxes = torch.cat([xy - 0.5 * wh, xy + 0.5 * wh], dim=1)
        scores = torch.softmax(plabel.t(), dim=-1)
        kept_boxes, kept_scores, kept_labels = [], [], []
        for label in range(1, scores.shape[1]):
            score = scores[:, label]
            mask = score > 0.05
            candidates, score = boxes[mask], score[mask]
            if score.numel() == 0:
                continue
            order = score.sort(dim=0)[1][-200:]
            chosen = []
            while order.numel() > 0:
                best = order[-1].item()
                chosen.append(best)
                iou = box_iou(candidates[order], candidates[best][None]).squeeze(1)
                order = order[iou < 0.5]
            kept_boxes.append(candidates[chosen])
            kept_scores.append(score[chosen])
            kept_labels.extend([label] * len(chosen))
        if not kept_scores:
            continue
        kept = torch.cat(kept_scores).sort(dim=0)[1][-200:]
        b, s = torch.cat(kept_boxes)[kept], torch.cat(kept_scores)[kept]
        w, h = info["width"], info["height"]
        for (l, t, r, bt), score, label in zip(b.tolist(), s.tolist(), [kept_labels[i] for i in kept.tolist()]):
            rows.append([image_id, l * w, t * h, (r - l) * w, (bt - t) * h, score, inv_map[label]])
    detections = gt.loadRes(np.array(rows, dtype=np.float64))
    evaluator = COCOeval(gt, detections, iouType="bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return float(evaluator.stats[0])


def box_iou(a, b):
    """IoU of ltrb boxes (n, 4) against (m, 4), as the reference's calc_iou_tensor (no +1)."""
    import torch

    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall time and stdout of `cmd`, run outside the checkout: `python -m ssdconvert` started in
    it would import this checkout's package, not the one installed beside that python."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, proc.stdout


def evict(folder: Path) -> None:
    """Drop the files of `folder` from the page cache (clean pages only: nothing is lost)."""
    for path in folder.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_files(result: Path, start: int, stop: int) -> None:
    """Map and check the result files [start, stop) of `result` (sorted names), as eval's reader."""
    import numpy as np

    from stageio.reader import _map

    for name in sorted(os.listdir(result))[start:stop]:
        path = result / name
        data = np.frombuffer(_map(path, path.stat().st_size), dtype=np.float32)
        if not np.isfinite(data).all():
            raise SystemExit(f"{path} holds NaN or Inf")


def read_floor(result: Path, workers: int) -> float:
    """Wall time for `workers` processes to read every result file (contiguous shares, as eval)."""
    count = len(os.listdir(result))
    bounds = [(k * count // workers, (k + 1) * count // workers) for k in range(workers)]
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--read-worker", str(result),
                               str(a), str(b)]) for a, b in bounds]
    if any(p.wait() for p in procs):
        raise SystemExit("a read-floor worker failed")
    return time.perf_counter() - started


def main() -> None:
    from postprocess_bench import write_eval_set

    from ssdconvert.cpu import cpu_features

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=400, help="images with annotations to evaluate")
    ap.add_argument("--without-annotations", type=int, default=4, help="further images without annotations")
    ap.add_argument("--runs", type=int, default=2, help="alternating runs of each; the best is reported")
    ap.add_argument("--skip-reference", action="store_true", help="time ssdconvert eval only")
    ap.add_argument("--cold", action="store_true", help="also time ssdconvert eval with the files out of the page cache")
    ap.add_argument("--workers", default="", help="ssdconvert eval --workers values to time, comma-separated "
                                                  "(default: eval's own default)")
    ap.add_argument("--baseline", default=None, metavar="PYTHON",
                    help="the Python of another checkout (e.g. main's .venv/bin/python): its `ssdconvert eval` is "
                         "timed in the same rounds, for a before/after")
    ap.add_argument("--model", choices=["ssd-resnet34", "ssd-vgg16"], default="ssd-resnet34",
                    help="whose head's outputs to generate (the MLPerf reference applies to ssd-resnet34 only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where to write the result files (default: $TMPDIR)")
    ap.add_argument("--set", default=None, metavar="DIR",
                    help="keep the generated result set in DIR, and reuse it when DIR already holds it")
    args = ap.parse_args()

    python = sys.executable
    total = args.images + args.without_annotations
    if args.model != "ssd-resnet34" and not args.skip_reference:
        ap.error("the MLPerf reference decodes ssd-resnet34's outputs only: pass --skip-reference")
    suffix = "" if args.model == "ssd-resnet34" else f"_{args.model}"
    work = Path(args.set) / f"evalset_{total}_{args.without_annotations}_seed{args.seed}{suffix}" if args.set else \
        Path(tempfile.mkdtemp(prefix="ssdconvert-evalbench-", dir=args.workdir))
    try:
        result = work / "out" / "result"
        if not (work / "complete").is_file():
            shutil.rmtree(work, ignore_errors=True)
            write_eval_set(work, total, args.without_annotations, "float32", args.seed, args.model)
            (work / "complete").touch()
        annotation = work / "annotations" / "instances_val2017.json"
        size = sum(f.stat().st_size for f in result.iterdir())
        ours = {w: [str(ROOT / ".venv" / "bin" / "ssdconvert"), "eval", "--bin_path", str(result), "--no-progress",
                    "--output", str(work / f"report_{w or 'default'}.json")] + (["--workers", w] if w else [])
                for w in (args.workers.split(",") if args.workers else [""])}
        if args.baseline:
            ours["baseline"] = [args.baseline, "-m", "ssdconvert", "eval", "--bin_path", str(result), "--no-progress",
                                "--output", str(work / "report_baseline.json")]
        reference = [python, str(Path(__file__).resolve()), "--reference-worker", str(result), str(annotation)]
        times: dict[str, list[float]] = {name: [] for name in ours}
        if not args.skip_reference:
            times["reference"] = []
        ap_of: dict[str, float] = {}
        stages: dict[str, dict] = {}
        timed(next(iter(ours.values())))  # warm the page cache and the imports' files
        workers = int(args.workers.split(",")[0]) if args.workers else len(os.sched_getaffinity(0))
        floor = [read_floor(result, workers) for _ in range(args.runs)]
        for _ in range(args.runs):
            if not args.skip_reference:
                wall, out = timed(reference)
                times["reference"].append(wall)
                ap_of["reference"] = float(out.strip().splitlines()[-1])
            for name, cmd in ours.items():
                wall, _ = timed(cmd)
                times[name].append(wall)
                report = json.loads((work / f"report_{name or 'default'}.json").read_text())
                ap_of[name] = report["stats"]["AP"]
                stages[name] = report["seconds"]
        cold: dict[str, float] = {}
        for name, cmd in ours.items() if args.cold else ():
            evict(result)
            cold[name], _ = timed(cmd)
        if args.cold:
            evict(result)
            cold["read floor"] = read_floor(result, workers)
        best = {name: min(v) for name, v in times.items()}
        out = {"machine": {"cpu": cpu_features().describe(), "cores": len(os.sched_getaffinity(0)),
                           "load_avg": os.getloadavg()},
               "model": args.model, "images": args.images, "bytes": size, "runs": args.runs, "seconds": times,
               "best": best,
               "ap": ap_of, "stage_seconds_last_run": stages, "cold_seconds": cold,
               "read_floor_seconds": {"workers": workers, "runs": floor, "best": min(floor)}}
        print(f"{args.model}: {args.images} images ({size / 1e9:.2f} GB of float32 outputs); {out['machine']['cpu']}; "
              f"{out['machine']['cores']} cores; best of {args.runs}, whole processes")
        for name, value in best.items():
            label = {"reference": "reference (MLPerf decode + pycocotools)",
                     "baseline": f"baseline: {args.baseline} -m ssdconvert eval"}.get(
                name, f"ssdconvert eval{' --workers ' + name if name else ''}")
            ratio = f"  {best['reference'] / value:5.1f}x the reference" if "reference" in best else ""
            cold_text = f"  cold {cold[name]:.2f} s" if name in cold else ""
            print(f"  {label:42s} {value:7.2f} s{ratio}  AP {ap_of[name]:.4f}{cold_text}")
            if name in stages:
                split = stages[name]
                print(f"    last warm run: setup {split['setup']:.2f} s, decode+NMS+matching {split['postprocess']:.2f} s"
                      f" (reading included), accumulate {split['evaluate']:.2f} s")
        print(f"  read floor: {workers} processes map and check every file   {min(floor):7.2f} s "
              f"({size / 1e9 / min(floor):.1f} GB/s)" + (f"  cold {cold['read floor']:.2f} s "
                                                          f"({size / 1e9 / cold['read floor']:.2f} GB/s from disk)"
                                                          if "read floor" in cold else ""))
        path = HERE / "results" / f"eval_bench_{args.images}{suffix}.json"
        path.write_text(json.dumps(out, indent=2) + "\n")
        print(f"results: {path}")
    finally:
        if not args.set:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--reference-worker":
        print(reference_eval(Path(sys.argv[2]), Path(sys.argv[3])))
    elif len(sys.argv) == 5 and sys.argv[1] == "--read-worker":
        read_files(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
