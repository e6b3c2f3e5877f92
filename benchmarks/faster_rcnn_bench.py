"""Faster R-CNN R-101-FPN: export time, ONNX Runtime and OpenVINO (f32) throughput, peak memory, and
the split variant's host-side RoI stage, per canvas.

    .venv/bin/python benchmarks/faster_rcnn_bench.py                       # 1344x1344 and 800x1344, bs 1,2,4
    .venv/bin/python benchmarks/faster_rcnn_bench.py --canvas 1344x1344 --bs 1 --repeat 1

For each canvas: the fixed-size detector is exported (opset 16, onnxslim) and timed; then every
(runtime, batch) runs in a fresh subprocess: load the model, one warm-up call, `--repeat` timed
calls on seeded images; the subprocess's peak RSS (VmHWM) is the peak memory of loading and
running that model at that batch. OpenVINO is forced to f32 (INFERENCE_PRECISION_HINT): on this
BF16-capable CPU it would otherwise run bf16. For the first canvas the split variant is exported
too, the dense model runs in ONNX Runtime at batch 1, and the host stages are timed per image:
the RoI stage (per-level top-k, decode, clip, NMS, top 1000, LevelMapper, RoIAlign, padding to the
head's 1000 rows) and the detection stage (softmax, per-class decode, clip, NMS, the 100 rule).

Weights: seeded random (ssdconvert's randomize, seed 0) with each bottleneck's last frozen-BN
scale damped x0.2 so activations stay finite (a deep random ResNet overflows otherwise, and
inf/NaN or denormal values would distort timings). A trained model has more candidates in the
final per-class NMS, which is a small part of the work; everything else is data-independent.
MACs are counted from the model's shapes (meta tensors): conv and linear multiply-accumulates with
1000 RoIs per image (~290 G at 800x1344).

Writes benchmarks/results/faster_rcnn.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
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
RUNTIMES = ("onnxruntime", "openvino")
ROIS = 1000


def parse_canvas(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def benchmark_net():
    """The seeded network used for timing (see the module docstring)."""
    import torch

    from ssdconvert.checkpoints import randomize
    from ssdconvert.zoo.faster_rcnn.network import Bottleneck, FasterRCNN

    net = FasterRCNN().eval()
    randomize(net, 0)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, Bottleneck):
                module.bn3.weight.mul_(0.2)
    return net


def count_macs(canvas: tuple[int, int]) -> dict[str, float]:
    """Multiply-accumulates per image (GMAC), dense part from meta-tensor shapes plus a 1000-RoI box head."""
    import torch

    from ssdconvert.zoo.faster_rcnn.network import FasterRCNN

    with torch.device("meta"):
        net = FasterRCNN()
    parts = {"backbone": 0, "fpn": 0, "rpn_head": 0}

    def hook(part):
        def count(module, inputs, output):
            parts[part] += output.numel() * module.in_channels // module.groups * module.kernel_size[0] \
                * module.kernel_size[1]
        return count

    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            part = "backbone" if name.startswith("backbone.body") else "fpn" if name.startswith("backbone.fpn") \
                else "rpn_head"
            module.register_forward_hook(hook(part))
    with torch.no_grad():
        net.dense(torch.empty(1, 3, *canvas, device="meta"))
    box = net.roi_heads.box
    parts["box_head"] = ROIS * sum(m.in_features * m.out_features for m in box.modules()
                                   if isinstance(m, torch.nn.Linear))
    gmac = {k: v / 1e9 for k, v in parts.items()}
    gmac["total"] = sum(gmac.values())
    return gmac


def seeded_batch(canvas: tuple[int, int], batch: int) -> tuple[np.ndarray, np.ndarray]:
    images = (np.random.default_rng(0).standard_normal((batch, 3, *canvas)) * 50).astype(np.float32)
    return images, np.tile(np.asarray([canvas], np.float32), (batch, 1))


def worker(runtime: str, onnx_path: str, canvas: tuple[int, int], batch: int, repeat: int) -> dict:
    """Load, warm up, time `repeat` calls; runs in its own process so its VmHWM is this model's peak."""
    images, im_info = seeded_batch(canvas, batch)
    feed = {"images": images, "im_info": im_info}
    started = time.perf_counter()
    if runtime == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        call = lambda: session.run(None, feed)  # noqa: E731
    else:
        import openvino as ov

        compiled = ov.Core().compile_model(onnx_path, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                             "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        call = lambda: request.infer(feed)  # noqa: E731
    load = time.perf_counter() - started
    call()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return {"runtime": runtime, "canvas": list(canvas), "batch": batch, "load_s": load, "call_s": times,
            "best_images_per_s": batch / min(times), "median_images_per_s": batch / statistics.median(times),
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (VmHWM). Not ru_maxrss: Linux keeps that across
    exec, so a worker started from the big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(runtime: str, path: Path, canvas: tuple[int, int], batch: int, repeat: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", runtime, str(path), f"{canvas[0]}x{canvas[1]}",
                          str(batch), str(repeat)], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def host_stages(net, workdir: Path, canvas: tuple[int, int], repeat: int) -> dict:
    """Export the split variant, run its dense model and head in ONNX Runtime, time the host stages."""
    import onnxruntime as ort
    import torch

    from ssdconvert.export import write_graph
    from ssdconvert.zoo.faster_rcnn.export import DEFAULT_OPSET
    from ssdconvert.zoo.faster_rcnn.graphs import split_graphs
    from ssdconvert.zoo.faster_rcnn.split import DENSE_OUTPUTS, SplitDetector

    started = time.perf_counter()
    dense_rec, head_rec = (write_graph(g, g.path, DEFAULT_OPSET, True)  # unvalidated: timing only
                           for g in split_graphs(net, workdir / "m", canvas))
    export_s = time.perf_counter() - started
    dense = ort.InferenceSession(str(dense_rec.path), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(head_rec.path), providers=["CPUExecutionProvider"])
    split = SplitDetector.of(net, canvas, lambda x: dense.run(list(DENSE_OUTPUTS), {"images": x}),
                          lambda x: head.run(None, {"roi_features": x}))
    images, _ = seeded_batch(canvas, 1)
    sizes = [canvas]
    *features, objectness, deltas = (torch.from_numpy(o) for o in split.run_dense(images))
    roi_times, det_times, proposals_count = [], [], 0
    with torch.no_grad():
        for _ in range(repeat + 1):
            t = time.perf_counter()
            proposals, roi_features = split.roi_stage(features, objectness, deltas, sizes)
            roi_times.append(time.perf_counter() - t)
            logits, box_deltas = (torch.from_numpy(o) for o in split.run_head(roi_features))
            t = time.perf_counter()
            detections = split.detection_stage(logits, box_deltas, proposals, sizes)
            det_times.append(time.perf_counter() - t)
            proposals_count = len(proposals[0].boxes)
    return {"canvas": list(canvas), "export_s": export_s, "proposals": proposals_count,
            "detections": len(detections[0]), "roi_stage_s": roi_times[1:], "detection_stage_s": det_times[1:]}


def write_report(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faster_rcnn.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        "# Faster R-CNN R-101-FPN (maskrcnn-benchmark layout), fixed-size ONNX export",
        "",
        f"- Machine: {m.get('cpu_model')}, {m.get('usable_cores')} usable cores, flags {', '.join(result['cpu_flags']) or 'n/a'}; "
        f"load average at start {result['load_start']}, at end {result['load_end']} (shared machine: noisy)",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in m.get('versions', {}).items())}",
        "- Weights: seeded random (randomize seed 0, bottleneck bn3 scale x0.2); OpenVINO forced to f32 "
        "(INFERENCE_PRECISION_HINT), LATENCY hint; ONNX Runtime CPU provider defaults.",
        f"- {result['repeat']} timed calls after one warm-up; images/s from the fastest call (median in brackets); "
        "peak RSS of a fresh process that loads the model and runs that batch.",
        "",
    ]
    rows = []
    for c in result["canvases"]:
        h, w = c["canvas"]
        lines.append(f"- {h}x{w}: {c['gmac']['total']:.1f} GMAC/image (backbone {c['gmac']['backbone']:.1f}, "
                     f"FPN {c['gmac']['fpn']:.1f}, RPN head {c['gmac']['rpn_head']:.1f}, box head "
                     f"{c['gmac']['box_head']:.1f}); export {c['export_s']:.1f} s ({c['nodes']} nodes after "
                     f"onnxslim)")
        for r in c["runs"]:
            rows.append([f"{h}x{w}", r["runtime"], r["batch"],
                         f"{r['best_images_per_s']:.3f} ({r['median_images_per_s']:.3f})",
                         f"{2 * c['gmac']['total'] * r['best_images_per_s']:.1f}", f"{r['peak_rss_mb']:.0f}",
                         f"{r['load_s']:.1f}"])
    lines += ["", markdown_table(["Canvas", "Runtime", "Batch", "Images/s best (median)", "GFLOP/s",
                                  "Peak RSS MB", "Load s"], rows), ""]
    host = result.get("split")
    if host:
        h, w = host["canvas"]
        lines += ["## Split variant, host stages per image (ONNX Runtime dense/head models, torch on the host)", "",
                  f"- {h}x{w}, export of both models {host['export_s']:.1f} s; {host['proposals']} proposals, "
                  f"{host['detections']} detections (random weights)",
                  f"- RoI stage (proposal selection + RoIAlign + padding): best {min(host['roi_stage_s']) * 1e3:.0f} ms, "
                  f"median {statistics.median(host['roi_stage_s']) * 1e3:.0f} ms",
                  f"- Detection stage (softmax, decode, per-class NMS, 100 rule): best "
                  f"{min(host['detection_stage_s']) * 1e3:.0f} ms, median "
                  f"{statistics.median(host['detection_stage_s']) * 1e3:.0f} ms", ""]
    (RESULTS / "faster_rcnn.md").write_text("\n".join(lines))


def cpu_flags() -> list[str]:
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    present = set(flags.split(":", 1)[1].split())
    return [f for f in wanted if f in present]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canvas", default="1344x1344,800x1344", help="comma-separated HxW canvases")
    parser.add_argument("--bs", default="1,2,4", help="comma-separated batch sizes")
    parser.add_argument("--repeat", type=int, default=2, help="timed calls per (runtime, canvas, batch)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the ONNX files go (default: a temp dir)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        runtime, path, canvas, batch, repeat = args.worker
        print(json.dumps(worker(runtime, path, parse_canvas(canvas), int(batch), int(repeat))))
        return

    from ssdconvert.export import write_graph
    from ssdconvert.zoo.faster_rcnn.export import DEFAULT_OPSET
    from ssdconvert.zoo.faster_rcnn.graphs import fixed_graph

    canvases = [parse_canvas(c) for c in args.canvas.split(",")]
    batches = [int(b) for b in args.bs.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="frcnn_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine_info(), "cpu_flags": cpu_flags(), "repeat": args.repeat,
              "load_start": ", ".join(f"{v:.2f}" for v in os.getloadavg()), "canvases": []}
    net = benchmark_net()
    for canvas in canvases:
        path = workdir / f"faster_rcnn_{canvas[0]}x{canvas[1]}.onnx"
        started = time.perf_counter()
        record = write_graph(fixed_graph(net, path, canvas), path, DEFAULT_OPSET, True)  # unvalidated: timing only
        entry = {"canvas": list(canvas), "gmac": count_macs(canvas), "export_s": time.perf_counter() - started,
                 "nodes": record.nodes_after, "runs": []}
        print(f"{canvas}: exported in {entry['export_s']:.1f} s, {entry['gmac']['total']:.1f} GMAC/image", flush=True)
        for runtime in RUNTIMES:
            for batch in batches:
                run = run_worker(runtime, path, canvas, batch, args.repeat)
                entry["runs"].append(run)
                print(f"  {runtime} bs={batch}: {run['best_images_per_s']:.3f} images/s, "
                      f"peak {run['peak_rss_mb']:.0f} MB", flush=True)
        result["canvases"].append(entry)
    result["split"] = host_stages(net, workdir, canvases[0], max(args.repeat, 3))
    print(f"split host stages: {result['split']}", flush=True)
    result["load_end"] = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    write_report(result)
    print(f"wrote {RESULTS / 'faster_rcnn.md'}")


if __name__ == "__main__":
    main()
