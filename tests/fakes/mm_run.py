#!/usr/bin/env python3
"""Fake Cambricon `mm_run` (the MagicMind benchmark binary) for tests.

Contract source: the flags Cambricon/magicmind_cloud's buildin/**/benchmark/perf.sh scripts pass,
and the output sections of an mm_run log saved in that repository's history (commit 3fac70f).
Strict: an unknown or malformed flag prints usage and exits 2 (the fake's own choice; the real
tool's reaction is undocumented).

It runs the model for real through the fake MagicMind runtime beside it (tests/fakes/magicmind,
which runs the recorded ONNX with ONNX Runtime), on random input data: warm-up, then at least
`--iterations` iterations and at least the duration (3000 ms by default, as the saved log shows;
FAKE_MM_RUN_DURATION_MS overrides it so tests stay fast). It checks what mm_run would: one
`--batch_size` and one `--input_dims` per model input, N of each dims equal to its batch size,
dims the model takes (static dims; mutable dims within the build's range), a visible device.

Output, in the documented order: `==================== Parameter Information`, Device
Information, `[MMINFO]` timing lines, Model Information, Device Utilization Summary, Performance
Summary (Iterations, Host Wall Time (s), MLU Compute Time (s), Throughput (qps) = iterations x
batch / wall, Enqueue Time / H2D Latency / MLU Compute Latency / D2H Latency with min, max, mean,
median and percentiles (90%) (95%) (99%), then `Trace averages of N runs:` lines).
Errors: `[MMERROR] ...` and exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import magicmind.python.runtime as mm


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mm_run", allow_abbrev=False)
    p.add_argument("--magicmind_model", required=True)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--batch_size", type=int, nargs="+")
    p.add_argument("--input_dims", nargs="+")
    p.add_argument("--devices", default="0")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--input_files", nargs="+")
    p.add_argument("--duration", type=int, default=int(os.environ.get("FAKE_MM_RUN_DURATION_MS", "3000")))
    p.add_argument("--warmup", type=int, default=200)
    return p


def fail(message: str) -> int:
    print(f"[MMERROR] {message}", flush=True)
    return 1


def stats(values: list[float]) -> str:
    a = np.asarray(values, dtype=np.float64)
    p90, p95, p99 = np.percentile(a, [90, 95, 99])
    return (f"min: {a.min():.4g} max: {a.max():.4g} mean: {a.mean():.4g} median: {np.median(a):.4g} "
            f"percentile: (90%) {p90:.4g} (95%) {p95:.4g} (99%) {p99:.4g}")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # exits 2 on unknown / malformed flags
    print("==================== Parameter Information")
    print(f"magicmind model file: {args.magicmind_model}")
    print(f"iterations: {args.iterations}\nduration: {args.duration}\nwarm_up: {args.warmup}")
    print(f"thread_num: {args.threads}\ndevices: {args.devices}\nbatch: {args.batch_size}")
    print("=================== Device Information")
    if not args.devices.isdigit() or int(args.devices) >= mm.System().device_count():
        return fail(f"device {args.devices} is not visible ({mm.System().device_count()} MLU(s))")
    device = mm.Device()
    device.id = int(args.devices)
    if not device.active().ok():
        return fail(f"cannot activate device {args.devices}")
    print(f"device {device.id}: MLU370 (fake)")
    started = time.perf_counter()
    model = mm.Model()
    status = model.deserialize_from_file(args.magicmind_model)
    if not status.ok():
        return fail(str(status).replace("[MMERROR] ", ""))
    print(f"[MMINFO] CreateModel time is {1000 * (time.perf_counter() - started):.0f} ms")
    n = model.get_input_num()
    if not args.input_dims or len(args.input_dims) != n or not args.batch_size or len(args.batch_size) != n:
        return fail(f"the model has {n} input(s): give one --input_dims and one --batch_size per input")
    try:
        dims = [[int(v) for v in text.split(",")] for text in args.input_dims]
    except ValueError:
        return fail(f"--input_dims {args.input_dims}: expected comma-separated integers per input")
    if [d[0] for d in dims] != args.batch_size:
        return fail(f"--batch_size {args.batch_size} disagrees with the N of --input_dims {args.input_dims}")
    print("==================== Model Information")
    for k, (name, want, dtype) in enumerate(zip(model.get_input_names(), model.get_input_dimensions(),
                                                 model.get_input_data_types())):
        print(f"input[{k}] name: {name}, datatype: {dtype.name}, layout: NCHW, dims: {want.GetDims()}")
    engine = model.create_i_engine(mm.Model.EngineConfig())
    context = engine.create_i_context()
    queue = device.create_queue()
    inputs = context.create_inputs()
    rng = np.random.default_rng(0)
    for tensor, shape, dtype in zip(inputs, dims, model.get_input_data_types()):
        tensor.from_numpy(rng.standard_normal(shape).astype(mm._NUMPY[dtype]))

    def once() -> tuple[float, float]:
        outputs: list = []
        t0 = time.perf_counter()
        status = context.enqueue(inputs, outputs, queue)
        t1 = time.perf_counter()
        if not status.ok():
            raise RuntimeError(str(status))
        queue.sync()
        return (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3

    try:
        warm_end = time.perf_counter() + args.warmup / 1000
        while time.perf_counter() < warm_end:
            once()
        enqueue, compute = [], []
        wall_start = time.perf_counter()
        while len(compute) < args.iterations or (time.perf_counter() - wall_start) * 1000 < args.duration:
            e, c = once()
            enqueue.append(e)
            compute.append(c)
        wall = time.perf_counter() - wall_start
    except RuntimeError as exc:
        return fail(str(exc).replace("[MMERROR] ", ""))
    print("==================== Device Utilization Summary")
    print("dev0_chip_util(%): 0.0")
    print("==================== Performance Summary")
    print(f"Iterations: {len(compute)}")
    print(f"Host Wall Time (s): {wall:.6g}")
    print(f"MLU Compute Time (s): {sum(compute) / 1000:.6g}")
    print(f"Throughput (qps): {len(compute) * args.batch_size[0] / wall:.6g}")
    print(f"Enqueue Time (ms): {stats(enqueue)}")
    print(f"H2D Latency (ms): {stats([0.0] * len(compute))}")
    print(f"MLU Compute Latency (ms): {stats(compute)}")
    print(f"D2H Latency (ms): {stats([0.0] * len(compute))}")
    print(f"Trace averages of {len(compute)} runs:")
    print(f"MLU Compute Latency (ms): {np.mean(compute):.4g} Enqueue: {np.mean(enqueue):.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
