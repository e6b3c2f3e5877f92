"""Cambricon `mm_run` (the MagicMind benchmark binary): the adapter `bench` uses where the MagicMind
Python runtime is not importable in this Python.

Contract [verified: the flags Cambricon/magicmind_cloud's buildin/**/benchmark/perf.sh
scripts pass; the output sections of a saved mm_run log, history commit 3fac70f]:

    mm_run --magicmind_model M --iterations N --batch_size B [B2 ...] --input_dims 4,3,224,224 [...]
           --devices 0 --threads 1

`--iterations` is a minimum (the run also lasts at least its duration, 3000 ms by default).
`Throughput (qps):` is samples/s: iterations x batch / host wall time. The Performance Summary's
`MLU Compute Latency (ms): min: .. max: .. mean: .. median: ..` is the device compute time per
iteration. Exit codes are not documented: success needs the `Throughput (qps):` line.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ssdconvert.launcher import ToolFailedError, ToolSpec, raise_failure, resolve_command, run_tool

TOOL = ToolSpec(
    name="mm_run",
    executables=("mm_run",),
    env_homes=("NEUWARE_HOME",),
    home_subdirs=("bin",),
    install_hint="It ships with MagicMind (Neuware): source its environment (NEUWARE_HOME, usually /usr/local/neuware).",
)

THROUGHPUT_RE = re.compile(r"^Throughput \(qps\):\s+([\d.eE+-]+)", re.M)
LATENCY_RE = re.compile(r"^MLU Compute Latency \(ms\):\s+min:\s+(\S+)\s+max:\s+(\S+)\s+mean:\s+(\S+)\s+median:\s+(\S+)"
                        r"(?:.*?\(99%\)\s+(\S+))?", re.M)
WALL_RE = re.compile(r"^Host Wall Time \(s\):\s+(\S+)", re.M)
ITERATIONS_RE = re.compile(r"^Iterations:\s+(\d+)", re.M)
ERROR_RE = re.compile(r"(?i)\[MMERROR\]|\berror\b|failed")


@dataclass
class MmRunSummary:
    throughput: float  # samples/s (wall clock)
    compute_ms: dict[str, float]  # min, max, mean, median, percentile(99%) of MLU Compute Latency
    wall_seconds: float | None
    iterations: int | None


def parse_output(text: str) -> MmRunSummary | None:
    """The Performance Summary, or None if the run printed no `Throughput (qps):` line."""
    throughput = THROUGHPUT_RE.search(text)
    if throughput is None:
        return None
    latency = LATENCY_RE.search(text)
    compute = {key: float(value) for key, value in zip(("min", "max", "mean", "median", "percentile(99%)"),
                                                      latency.groups()) if value is not None} if latency else {}
    wall, iterations = WALL_RE.search(text), ITERATIONS_RE.search(text)
    return MmRunSummary(float(throughput.group(1)), compute, float(wall.group(1)) if wall else None,
                        int(iterations.group(1)) if iterations else None)


def build_argv(model: Path, batch: int, input_dims: Sequence[Sequence[int]], *, iterations: int, device: str = "0",
               threads: int = 1, tool: str | None = None) -> list[str]:
    """One `--batch_size` value and one comma-joined `--input_dims` per model input."""
    return resolve_command(TOOL, tool, dry_run=False) + [
        "--magicmind_model", str(model), "--iterations", str(iterations),
        "--batch_size", *[str(batch)] * len(input_dims),
        "--input_dims", *[",".join(str(d) for d in dims) for dims in input_dims],
        "--devices", str(device), "--threads", str(threads)]


def recorded_input_dims(model: Path, batch: int) -> list[list[int]]:
    """Each model input's dims at `batch`, from the build record `<model>.json` that `ssdconvert cnnl` writes."""
    try:
        record = json.loads(Path(f"{model}.json").read_text())
        shapes = [[int(d) for d in spec["shape"]] for spec in record.get("inputs") or [record["input"]]]
    except (OSError, ValueError, KeyError, TypeError):
        raise ToolFailedError(f"mm_run needs the input dims of {model.name}: its build record {model}.json (written "
                              "by `ssdconvert cnnl`) is missing or has no input shape") from None
    if not record.get("dynamic_shape") and shapes[0][0] != batch:
        raise ToolFailedError(f"{model.name} is a static model of batch {shapes[0][0]}, not {batch}")
    return [[batch, *shape[1:]] for shape in shapes]


def run_mm_run(model: Path, batch: int, *, iterations: int, device: str, log_path: Path, timeout: float,
               tool: str | None = None) -> MmRunSummary:
    argv = build_argv(model, batch, recorded_input_dims(model, batch), iterations=iterations, device=device,
                      tool=tool)
    outcome = run_tool(argv, log_path=log_path, timeout=timeout)
    summary = parse_output(outcome.output)
    if not outcome.ok_exit or summary is None:
        errors = [ln for ln in outcome.lines() if ERROR_RE.search(ln)]
        if outcome.ok_exit and not errors:
            errors = ["no `Throughput (qps):` line in its output"]
        raise_failure("mm_run", outcome, log_path, error_lines=errors[-1:], timeout=timeout)
    return summary


def bench_row(model: Path, batch: int, ctx, tool: str | None = None):
    """A 10-iteration probe sizes the iteration count that fills ctx.duration; then one timed run."""
    from ssdconvert.timing import BenchRow

    log = ctx.workdir / f"{model.name}_bs{batch}.mm_run.log"
    timeout = max(600.0, 20 * ctx.duration)
    summary = run_mm_run(model, batch, iterations=10, device=ctx.device, log_path=log, timeout=timeout, tool=tool)
    mean = summary.compute_ms.get("mean") or 0.0
    iterations = math.ceil(ctx.duration * 1000.0 / mean) if mean > 0 else 10
    if iterations > 10:
        summary = run_mm_run(model, batch, iterations=min(iterations, 100000), device=ctx.device, log_path=log,
                             timeout=timeout, tool=tool)
    if not summary.compute_ms.get("mean"):
        raise ToolFailedError(f"mm_run printed no `MLU Compute Latency (ms): ... mean:` line. Full log: {log}")
    latency = {"percentile(99%)": summary.compute_ms["max"], **summary.compute_ms, "count": summary.iterations or 0}
    row = BenchRow(batch, throughput=1000.0 * batch / summary.compute_ms["mean"], wall_throughput=summary.throughput,
                   latency_ms=latency, runs=summary.iterations or 0, seconds=summary.wall_seconds or 0.0)
    return row, {"mm_run": f"subprocess {TOOL.executables[0]}", "device": f"MLU {ctx.device}"}
