"""Runner overhead and efficiency against this machine's FP32 matmul peak, measured side by side.

For each batch size, in cycles of one call per method back to back (so background load hits every
method alike):
  * ort bare      : a bare `onnxruntime.InferenceSession.run` loop (session defaults)
  * ort runner    : ssdconvert's OnnxRuntimeRunner.infer loop on the same model and batch
  * ov bare       : a bare OpenVINO `InferRequest.infer` loop (LATENCY hint, f32 precision)
  * ov runner     : ssdconvert's OpenVinoRunner.infer loop
  * torch eager   : the PyTorch model itself under inference_mode (reference)
and the FP32 matmul peak (best of numpy/OpenBLAS and torch sgemm, 1024..4096) measured before and
between and after the batch sizes. Efficiency = FLOPs/image x images/s / peak, from the fastest
call (the least disturbed one on a shared machine); medians are reported too.

    .venv/bin/python benchmarks/runner_overhead.py --bs 1,8,32 --seconds 20

Writes benchmarks/results/runner_overhead.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssdconvert.bench import machine_info  # noqa: E402
from ssdconvert.formatting import markdown_table  # noqa: E402
from ssdconvert.zoo import get_spec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def ensure_onnx(path: Path) -> Path:
    """The seeded-random SSD-ResNet34 as a dynamic-batch ONNX (exported once, then reused)."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "ssdconvert", "export", "--bs", "1", "--output", str(path)], check=True,
                       cwd=ROOT)
    return path


def matmul_peak(sizes=(1024, 2048, 4096), seconds: float = 1.0) -> dict:
    """Best sustained FP32 GEMM GFLOP/s over numpy (OpenBLAS) and torch (oneDNN/MKL) on all threads."""
    import torch

    best = {"numpy": 0.0, "torch": 0.0}
    for n in sizes:
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        for name, mm in (("numpy", lambda: a @ b), ("torch", lambda: torch.mm(ta, tb))):
            mm()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                mm()
                best[name] = max(best[name], 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return {"gflops": max(best.values()), **{f"{k}_gflops": v for k, v in best.items()}}


def per_call_cost(workdir: Path, calls: int = 20000) -> dict:
    """Fixed cost the runner adds per call, on a model that does almost nothing (1x1 conv on
    1x3x8x8): median and best time per call of bare vs runner, in microseconds. This is the
    runner's whole overhead; it does not grow with the model or batch."""
    import onnx
    import onnxruntime as ort
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    from ssdconvert.backends.onnxruntime.runner import OnnxRuntimeRunner
    from ssdconvert.backends.openvino.runner import OpenVinoRunner

    path = workdir / "tiny_conv.onnx"
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["ploc"])], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("ploc", TensorProto.FLOAT, [1, 4, 8, 8])],
        initializer=[numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    feeds = {"image": np.ones((1, 3, 8, 8), np.float32)}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    core = ov.Core()
    request = core.compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                    "INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
    ort_runner, ov_runner = OnnxRuntimeRunner(path).activate(), OpenVinoRunner(path).activate()
    fns = {"ort bare": lambda: session.run(None, feeds), "ort runner": lambda: ort_runner.infer(feeds),
           "ov bare": lambda: request.infer(feeds, share_inputs=True), "ov runner": lambda: ov_runner.infer(feeds)}
    times = {name: [] for name in fns}
    for rt in ("ort", "ov"):  # one runtime at a time: no cross-runtime thread wake-ups in the pairs
        order = [(n, f) for n, f in fns.items() if n.startswith(rt + " ")]
        for i in range(calls):
            for name, fn in (order if i % 2 == 0 else order[::-1]):  # alternate order: no position bias
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    out = {}
    for name, ts in times.items():
        a = np.asarray(ts[calls // 10:]) * 1e6
        out[name] = {"median_us": float(np.median(a)), "best_us": float(a.min())}
    for rt in ("ort", "ov"):
        out[f"{rt} added_us_median"] = out[f"{rt} runner"]["median_us"] - out[f"{rt} bare"]["median_us"]
    return out


def make_methods(onnx: Path, bs: int, x: np.ndarray, torch_model):
    import onnxruntime as ort
    import openvino as ov
    import torch

    from ssdconvert.backends.onnxruntime.runner import OnnxRuntimeRunner
    from ssdconvert.backends.openvino.runner import OpenVinoRunner

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    feeds = {"image": x}

    core = ov.Core()
    model = core.read_model(str(onnx))
    model.reshape({"image": [bs, 3, 300, 300]})
    request = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                "INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
    ort_runner = OnnxRuntimeRunner(onnx).activate()
    ov_runner = OpenVinoRunner(onnx, batch=bs).activate()
    tx = torch.from_numpy(x)

    def torch_call():
        with torch.inference_mode():
            torch_model(tx)

    return {
        "ort bare": (lambda: session.run(None, feeds), None),
        "ort runner": (lambda: ort_runner.infer(feeds), ort_runner),
        "ov bare": (lambda: request.infer(feeds, share_inputs=True), None),
        "ov runner": (lambda: ov_runner.infer(feeds), ov_runner),
        "torch eager": (torch_call, None),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bs", default="1,8,32")
    p.add_argument("--seconds", type=float, default=20.0, help="time budget per batch size")
    p.add_argument("--min-cycles", type=int, default=3, help="at least this many calls of every method")
    p.add_argument("--onnx", type=Path, default=ROOT / "build" / "bench" / "ssd_resnet34_dynamic.onnx")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.bs.split(",")]

    import torch

    from ssdconvert.checkpoints import build_model

    spec = get_spec("ssd-resnet34")
    onnx = ensure_onnx(args.onnx)
    torch_model, _ = build_model(spec)
    machine = machine_info()
    print(f"machine: {machine['cpu_model']}, {machine['usable_cores']} cores, load {machine['load_average_at_start']}",
          flush=True)
    peak_before = matmul_peak()
    print(f"FP32 matmul peak: {peak_before['gflops']:.1f} GFLOP/s", flush=True)

    results, peaks = [], [peak_before["gflops"]]
    for bs in sizes:
        x = np.random.default_rng(bs).standard_normal((bs, 3, 300, 300)).astype(np.float32)
        methods = make_methods(onnx, bs, x, torch_model)
        for fn, _ in methods.values():  # warm-up
            fn()
        for _, runner in methods.values():
            if runner is not None:
                runner.reset_timing()
        times: dict[str, list[float]] = {name: [] for name in methods}
        compute: dict[str, list[float]] = {name: [] for name in methods}
        started, cycles = time.perf_counter(), 0
        # One call per method per cycle, methods back to back: background load hits each alike,
        # and consecutive calls of bare and runner form pairs.
        order = list(methods.items())
        while cycles < args.min_cycles or time.perf_counter() - started < args.seconds:
            for name, (fn, runner) in (order if cycles % 2 == 0 else order[::-1]):  # no position bias
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
                if runner is not None:
                    compute[name].append(runner.last_compute_ms / 1e3)
            cycles += 1
            print(f"bs {bs} cycle {cycles}: " + ", ".join(f"{n} {bs / times[n][-1]:.3f}" for n in methods)
                  + " img/s", flush=True)
        for name in methods:
            wall = np.asarray(times[name])
            rec = {"batch_size": bs, "method": name, "runs": len(wall),
                   "wall_images_per_s": bs / wall.min(), "wall_images_per_s_median": bs / float(np.median(wall)),
                   "compute_images_per_s": bs / min(compute[name]) if compute[name] else None}
            if name.endswith("runner"):
                bare = np.asarray(times[name.split()[0] + " bare"])
                rec["paired_ratio_median"] = float(np.median(bare / wall))  # >1: runner faster
            results.append(rec)
        for _, runner in methods.values():
            if runner is not None:
                runner.deactivate()
        del methods
        peaks.append(matmul_peak(sizes=(2048,), seconds=1.0)["gflops"])
    peak_after = matmul_peak()
    peaks.append(peak_after["gflops"])
    cost = per_call_cost(onnx.parent)
    print(f"per-call cost: {cost}", flush=True)
    peak = max(peaks)
    print(f"FP32 matmul peak after: {peak_after['gflops']:.1f} GFLOP/s", flush=True)

    flops = spec.flops_per_image
    rows = []
    for r in results:
        r["gflops_per_s"] = flops * r["wall_images_per_s"] / 1e9
        r["percent_of_peak"] = 100 * r["gflops_per_s"] / peak
        ratio = ""
        if r["method"].endswith("runner"):
            bare = next(b for b in results if b["batch_size"] == r["batch_size"]
                        and b["method"] == r["method"].split()[0] + " bare")
            r["best_ratio_vs_bare"] = r["wall_images_per_s"] / bare["wall_images_per_s"]
            r["compute_ratio_vs_bare"] = r["compute_images_per_s"] / bare["wall_images_per_s"]
            ratio = (f"{r['best_ratio_vs_bare']:.3f} / {r['compute_ratio_vs_bare']:.3f} / "
                     f"{r['paired_ratio_median']:.3f}")
        rows.append([r["batch_size"], r["method"], f"{r['wall_images_per_s']:.3f}",
                     f"{r['wall_images_per_s_median']:.3f}",
                     f"{r['compute_images_per_s']:.3f}" if r["compute_images_per_s"] else "",
                     f"{r['gflops_per_s']:.1f}", f"{r['percent_of_peak']:.1f} %", ratio, r["runs"]])
    table = markdown_table(["Batch", "Method", "Images/s (best call)", "Images/s (median call)",
                            "Compute images/s (best)", "GFLOP/s (best)", "% of FP32 peak (best)",
                            "Runner / bare: best / compute / paired median", "Calls"], rows)
    md = "\n".join([
        "# Runner overhead and efficiency (SSD-ResNet34, 300x300, seeded random weights)",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['usable_cores']} cores, load average at start "
        f"{', '.join(f'{v:.2f}' for v in machine['load_average_at_start'])}, at end "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} (shared with other jobs: noisy)",
        f"- FP32 matmul peak (best sgemm of numpy/torch, all cores): {peak:.1f} GFLOP/s "
        f"(measured {len(peaks)} times in this run, between the batch sizes: "
        f"{', '.join(f'{v:.0f}' for v in peaks)}; the highest is used)",
        f"- FLOPs per image: {flops / 1e9:.2f} GFLOP (2 x MAC, convs only)",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in machine['versions'].items())}; torch threads "
        f"{torch.get_num_threads()}",
        f"- Per batch size: one warm-up call of every method, then cycles of one call per method back to back "
        f"(>= {args.min_cycles} cycles, {args.seconds:g} s budget), so background load hits every method alike.",
        "- Best call = batch / fastest single call (wall time around the call, the least disturbed estimate on a "
        "shared machine); median call likewise. Compute = batch / fastest runtime call as the runner times it "
        "(what `ssdconvert infer`/`bench` report). % of peak = FLOPs/image x best images/s / peak.",
        "- Runner / bare: best-call ratio, runner compute vs bare best call, and the median over cycles of "
        "bare time / runner time for back-to-back calls (>= 0.95 is the target).",
        "",
        table,
        "",
        "## Fixed cost per call",
        "",
        "The runner's overhead does not depend on the model: measured on a model that does almost nothing "
        "(one 1x1 conv on 1x3x8x8), 20000 calls of each method, bare and runner alternating, one runtime at a "
        "time, first 10 % dropped:",
        "",
        markdown_table(["Method", "Median per call (us)", "Best per call (us)"],
                       [[k, f"{v['median_us']:.1f}", f"{v['best_us']:.1f}"] for k, v in cost.items()
                        if isinstance(v, dict)]),
        "",
        f"Added by the runner (median): ONNX Runtime {cost['ort added_us_median']:.1f} us, OpenVINO "
        f"{cost['ov added_us_median']:.1f} us per call, against "
        f"{1e6 / max(r['wall_images_per_s'] for r in results if r['batch_size'] == min(sizes)) * min(sizes):.0f} us "
        f"for one SSD-ResNet34 batch of {min(sizes)} here.",
        "",
    ])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runner_overhead.md").write_text(md)
    (args.out / "runner_overhead.json").write_text(json.dumps(
        {"machine": machine, "peak_gflops": peak, "peaks": peaks, "peak_before": peak_before, "peak_after": peak_after,
         "flops_per_image": flops, "seconds": args.seconds, "min_cycles": args.min_cycles, "results": results,
         "per_call_cost": cost,
         "torch_threads": torch.get_num_threads()}, indent=1) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
