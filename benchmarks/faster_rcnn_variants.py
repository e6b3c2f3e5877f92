"""Faster R-CNN's two variants side by side through `ssdconvert bench` (ONNX Runtime and OpenVINO, f32).

    .venv/bin/python benchmarks/faster_rcnn_variants.py                         # 800x1344, bs 1,2
    .venv/bin/python benchmarks/faster_rcnn_variants.py --canvas 1344x1344 --bs 1 --duration 30

fixed: one graph (NonMaxSuppression, RoiAlign and the box head on the runtime). split: the dense
model and the box-head model on the runtime, proposal selection and RoIAlign on the host in
PyTorch (ssdconvert.backends.composite runs it as one model). Both are exported by the family's
exporter from the zoo's demo weights (seed 0) and validated on detections first; both are timed by
ssdconvert.bench.run_bench on the family's realistic inputs (synthetic images sized as a 640x480
photo is resized for the canvas, and their true sizes as im_info). Throughput is ais_bench's:
batch / mean time of the runtime call, which for the split variant is the whole composite call
(both models and the host stage).

Writes benchmarks/results/faster_rcnn_variants.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssdconvert.bench import machine_info  # noqa: E402
from ssdconvert.formatting import markdown_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BACKENDS = ("onnxruntime", "openvino")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canvas", default="800x1344")
    parser.add_argument("--bs", default="1,2")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per batch size")
    args = parser.parse_args()

    from ssdconvert.bench import run_bench
    from ssdconvert.checkpoints import build_model
    from ssdconvert.export import export_model
    from ssdconvert.zoo import get_spec

    canvas = tuple(int(v) for v in args.canvas.lower().split("x"))
    batches = [int(b) for b in args.bs.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="frcnn_variants_"))
    spec = get_spec("faster-rcnn-r101-fpn").with_canvas(canvas)
    model, weights = build_model(spec)
    result = {"machine": machine_info(), "canvas": list(canvas), "weights": weights.label(),
              "gflops_per_image": spec.flops_per_image / 1e9, "load_start": list(os.getloadavg()), "variants": {}}
    for variant in ("fixed", "split"):
        exported = export_model(model, spec, workdir / "frcnn.onnx", weights=weights, batch=1, variant=variant)
        print(f"{variant}: {exported.figure()} in {exported.seconds:.1f} s", flush=True)
        entry = {"export_s": exported.seconds, "validation": exported.metrics(), "runs": {}}
        for backend in BACKENDS:
            report = run_bench(exported.onnx_path, backend=backend, batch_sizes=batches, duration=args.duration,
                               output_dir=workdir / "bench", name=f"{variant}_{backend}", plot=False,
                               feeds=spec.feeds_for, flops_per_image=spec.flops_per_image)
            entry["runs"][backend] = [{"batch": r.batch_size, "status": r.status, "throughput": r.throughput,
                                       "latency_ms": r.latency_ms, "runs": r.runs, "error": r.error}
                                      for r in report.rows]
            entry["runs"][backend + "_label"] = report.label
            for r in report.rows:
                print(f"  {backend} bs={r.batch_size}: {r.status} {r.throughput or 0:.3f} images/s", flush=True)
        result["variants"][variant] = entry
    result["load_end"] = list(os.getloadavg())
    write_report(result)
    print(f"wrote {RESULTS / 'faster_rcnn_variants.md'}")


def write_report(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faster_rcnn_variants.json").write_text(json.dumps(result, indent=2) + "\n")
    h, w = result["canvas"]
    m = result["machine"]
    rows = []
    for variant, entry in result["variants"].items():
        for backend in BACKENDS:
            for r in entry["runs"][backend]:
                tput = f"{r['throughput']:.3f}" if r["throughput"] else r["status"]
                mean = f"{r['latency_ms']['mean']:.0f}" if r["latency_ms"] else "–"
                rows.append([variant, entry["runs"][backend + "_label"], r["batch"], tput, mean, r["runs"]])
    lines = [f"# Faster R-CNN variants at {h}x{w} ({result['gflops_per_image']:.0f} GFLOP per image)", "",
             f"- Machine: {m.get('cpu_model')}, {m.get('usable_cores')} usable cores; load average at start "
             f"{', '.join(f'{x:.2f}' for x in result['load_start'])}, at end "
             f"{', '.join(f'{x:.2f}' for x in result['load_end'])} (a shared machine: noisy)",
             f"- Weights: {result['weights']}",
             "- Throughput: batch / mean time of one call (ais_bench's definition); the split variant's call "
             "is both models plus the host stage (proposal selection, RoIAlign, box post-processing in PyTorch)",
             ""]
    for variant, entry in result["variants"].items():
        v = entry["validation"]
        lines.append(f"- {variant}: exported and validated in {entry['export_s']:.0f} s; {v['matched']}/"
                     f"{v['expected']} reference detections matched, max score diff {v['max_score_diff']:.2g}")
    lines += ["", markdown_table(["Variant", "Runtime", "Batch", "Images/s", "Mean ms per call", "Calls"], rows), ""]
    (RESULTS / "faster_rcnn_variants.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
