"""Decode + NMS per image, head by head: the vectorised decoder eval uses (postprocess.heads)
against a straightforward per-image, per-class loop (benchmarks/loop_baseline.py), side by side.

    .venv/bin/python benchmarks/head_bench.py                  # 256 images per head, best of 3
    .venv/bin/python benchmarks/head_bench.py --images 64 --repeat 1

Both heads get detector-like synthetic outputs around the same COCO-like objects (clusters of
candidates, confusable classes, stray false positives). Each run checks that the decoder and the
loop give the same detections (scores and categories; for the mmdet head the rows bit for bit).
The decoder's time includes the COCO rows; the loops stop at the detections. Figures go to
benchmarks/results/head_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from loop_baseline import mmdet_loop, reference_loop  # noqa: E402
from postprocess_bench import random_objects  # noqa: E402

from postprocess.heads import SSD300_MMDET, SSD300_NVIDIA, decoder_for  # noqa: E402
from postprocess.heads.mmdet_ssd.anchors import ssd_anchors  # noqa: E402
from postprocess.heads.mmdet_ssd.synthetic import mmdet_realistic_outputs  # noqa: E402
from postprocess.heads.nvidia_ssd.priors import default_boxes  # noqa: E402
from postprocess.heads.nvidia_ssd.synthetic import realistic_outputs  # noqa: E402
from postprocess.images import ImageRef  # noqa: E402
from ssdconvert.synth import COCO_CATEGORIES  # noqa: E402

SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (612, 612))
CATEGORIES = [{"id": i, "name": n} for i, n, _ in COCO_CATEGORIES]


def outputs(head, boxes, labels, rng):
    arrays = []
    for s in range(0, len(boxes), 32):
        if head is SSD300_NVIDIA:
            arrays.append(realistic_outputs(boxes[s:s + 32], [lb + 1 for lb in labels[s:s + 32]], rng))
        else:
            arrays.append(mmdet_realistic_outputs(boxes[s:s + 32], labels[s:s + 32], rng))
    return [np.concatenate(part) for part in zip(*arrays)]


def loop_for(head, arrays, images):
    if head is SSD300_NVIDIA:
        dboxes = default_boxes(head.priors)
        return lambda i: reference_loop(arrays[0][i], arrays[1][i], dboxes)
    anchors = ssd_anchors(head.anchors)
    return lambda i: mmdet_loop(arrays[0][i], arrays[1][i], anchors, (images[i].width, images[i].height))


def same(head, rows, loop_result, inv_map) -> bool:
    if head is SSD300_NVIDIA:
        return (np.array_equal(rows[:, 5].astype(np.float32), loop_result["score"])
                and np.array_equal(rows[:, 6], inv_map[loop_result["label"]]))
    expected = loop_result.copy()
    expected[:, 5] = inv_map[expected[:, 5].astype(int)]
    return np.array_equal(rows[:, 1:], expected)


def pairs_above(head, logits: np.ndarray, threshold: float) -> float:
    """Mean (anchor, foreground class) pairs per image with a score above the policy's threshold."""
    counts = []
    for z in logits[:: max(1, len(logits) // 32)]:
        e = np.exp(z - z.max(axis=0))
        p = np.delete(e / e.sum(axis=0), head.background_index, axis=0)
        counts.append(int((p > threshold).sum()))
    return float(np.mean(counts))


def bench(head, policy: str, images: int, batch: int, repeat: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    boxes, labels = random_objects(rng, images)
    labels = [lb - 1 for lb in labels]  # foreground indices 0..79
    arrays = outputs(head, boxes, labels, rng)
    refs = [ImageRef(1000 + k, f"{k}", *SIZES[k % len(SIZES)]) for k in range(images)]
    decoder = decoder_for(head, policy)
    inv_map = head.category_ids(CATEGORIES)
    loop = loop_for(head, arrays, refs)

    def run_decoder():
        return [decoder.rows(decoder.select([a[s:s + batch] for a in arrays]), refs[s:s + batch], inv_map)
                for s in range(0, images, batch)]

    def run_loop():
        return [loop(i) for i in range(images)]

    times: dict[str, list[float]] = {"loop": [], "decoder": []}
    results = {}
    for _ in range(repeat):  # interleaved, so background load hits both alike
        for name, fn in (("loop", run_loop), ("decoder", run_decoder)):
            started = time.perf_counter()
            results[name] = fn()
            times[name].append((time.perf_counter() - started) / images * 1e3)
    rows = np.concatenate(results["decoder"])
    mismatched = sum(not same(head, rows[rows[:, 0] == im.id], ref, inv_map)
                     for im, ref in zip(refs, results["loop"]))
    best = {k: min(v) for k, v in times.items()}
    return {"head": head.kind, "policy": policy, "images": images, "batch": batch, "repeat": repeat,
            "pairs_above_threshold_per_image": pairs_above(head, arrays[1], decoder.policy.score_threshold),
            "detections_per_image": len(rows) / images, "identical": mismatched == 0,
            "mismatched_images": mismatched,
            "ms_per_image": {"loop_best": best["loop"], "decoder_best": best["decoder"],
                             "loop_median": float(np.median(times["loop"])),
                             "decoder_median": float(np.median(times["decoder"]))},
            "speedup_best": best["loop"] / best["decoder"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=str(HERE / "results" / "head_bench.json"))
    args = ap.parse_args()
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                       "load_avg": os.getloadavg()}, "runs": []}
    for head, policy in ((SSD300_NVIDIA, "reference"), (SSD300_MMDET, "mmdet3")):
        r = bench(head, policy, args.images, args.batch, args.repeat, args.seed)
        out["runs"].append(r)
        ms = r["ms_per_image"]
        print(f"{r['head']:10s} {policy:9s}: loop {ms['loop_best']:7.2f} ms/image, decoder {ms['decoder_best']:6.3f} "
              f"ms/image ({r['speedup_best']:.1f}x); {r['pairs_above_threshold_per_image']:.0f} pairs above the "
              f"threshold, {r['detections_per_image']:.0f} detections per image; identical: {r['identical']}")
    nv, mm = (r["ms_per_image"]["decoder_best"] for r in out["runs"])
    print(f"mmdet head / NVIDIA head (decoder): {mm / nv:.2f}x the time per image")
    out["machine"]["load_avg_after"] = os.getloadavg()
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
