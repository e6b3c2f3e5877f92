"""Timing shared by infer, bench and the backends: ais_bench's stat block, one bench row, the timed loop.

Compute time is the runtime call only (a batch already in memory; no file I/O, no Python-side
batching); throughput = 1000 x batch / mean compute ms, as ais_bench defines it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError


def stats_ms(values: Sequence[float]) -> dict[str, float]:
    """ais_bench's stat block: min, max, mean, median, percentile(99%), count (ms)."""
    if not len(values):
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0, "count": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "median": float(np.median(a)),
            "percentile(99%)": float(np.percentile(a, 99)), "count": int(a.size)}


@dataclass
class BenchRow:
    batch_size: int
    status: str = "ok"  # ok | failed | skipped
    throughput: float | None = None  # samples/s, compute only
    wall_throughput: float | None = None  # samples/s, wall clock of the timed loop
    latency_ms: dict[str, float] = field(default_factory=dict)  # min max mean median percentile(99%) count
    runs: int = 0
    seconds: float = 0.0
    gflops_per_s: float | None = None
    artefact: str = ""
    build_seconds: float | None = None
    build_command: list[str] | None = None
    error: str = ""
    host: str = ""  # where the row was measured, for a sweep on a cluster (bench --cluster)
    device: str = ""  # the device there (`NPU 3`, `CPU`)


@dataclass
class BenchContext:
    """What one sweep asks of a backend, per batch size (its own settings are its options: Backend.options)."""

    duration: float  # seconds of timed runs per batch size (at least min_runs runs)
    warmup: int
    workdir: Path  # where per-batch artefacts and tool logs go
    device: str = "0"
    min_runs: int = 1
    precision: str | None = None  # what per-batch builds use (the backend's precision name), None: its default
    calib: Path | None = None  # preprocessed bins for builds that calibrate (MagicMind qint*)
    say: Callable[[str], None] = print
    feeds: "FeedMaker | None" = None  # realistic inputs where random ones would not be (timed_loop)


# (model inputs, batch) -> {input name: array}, or None to fall back to random values. Data-dependent
# graphs (NMS over proposals clipped to an image size input) need realistic values to be timed fairly.
FeedMaker = Callable[[Sequence, int], "dict[str, np.ndarray] | None"]


def synthetic_feeds(inputs, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One in-memory batch per model input (random data in the input dtype)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for meta in inputs:
        shape = meta.with_batch(batch)
        if any(d is None for d in shape):
            raise SsdConvertError(f"model input {meta.describe()} has dynamic non-batch dimensions; export a "
                                  "fixed image size")
        dtype = np.dtype(meta.dtype)
        feeds[meta.name] = (rng.integers(0, 255, shape).astype(dtype) if dtype.kind in "ui"
                            else rng.standard_normal(shape).astype(dtype))
    return feeds


def timed_loop(runner, batch: int, *, duration: float, warmup: int, min_runs: int = 1,
               feeds: "FeedMaker | None" = None) -> BenchRow:
    """Warm up, then run until `duration` seconds have passed (at least `min_runs` runs), on the inputs
    `feeds(runner.inputs, batch)` gives, else random ones (synthetic_feeds)."""
    feeds = (feeds(runner.inputs, batch) if feeds else None) or synthetic_feeds(runner.inputs, batch)
    for _ in range(max(warmup, 0)):
        runner.infer(feeds)
    runner.reset_timing()
    infer, clock = runner.infer, time.perf_counter
    started = clock()
    runs = 0
    while True:
        infer(feeds)
        runs += 1
        if runs >= min_runs and clock() - started >= duration:
            break
    wall = clock() - started
    latency = stats_ms(runner.compute_ms)
    return BenchRow(batch, throughput=1000.0 * batch / latency["mean"], wall_throughput=batch * runs / wall,
                    latency_ms=latency, runs=runs, seconds=wall)
