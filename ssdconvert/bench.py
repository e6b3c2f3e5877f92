"""`ssdconvert bench`: the batch-size sweep (throughput and latency per batch size).

For each batch size: build what the backend needs (a dynamic ONNX/IR is reused for every batch
size; for Ascend, ATC builds one static .om per batch size, like the published tables), warm up,
run for a bounded time on in-memory synthetic input, record throughput and latency. The sweep
stops at the first batch size that fails (e.g. out of memory) and reports what it has.

Outputs in DIR: <name>.md (a table shaped like the seed README's: batch size -> throughput, plus
a detailed table), <name>.json (rows + machine + runtime versions), <name>.csv, <name>.png
(throughput and latency against batch size). Each states the throughput definition.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ssdconvert import __version__
from ssdconvert.errors import SsdConvertError
from ssdconvert.fileio import atomic_path, ensure_writable_dir, write_json
from ssdconvert.runners import backend_for, make_runner

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZES = (1, 4, 8, 16, 32, 64)
THROUGHPUT_DEFINITION = (
    "throughput = 1000 x batch size / mean compute latency (ms), in samples/s: compute only (the runtime "
    "call on a batch already in memory; no file I/O, no pre/post-processing, no H2D/D2H on NPUs), "
    "as ais_bench defines it")
WALL_DEFINITION = ("wall throughput = samples / wall-clock time of the timed loop (adds the Python loop and "
                   "runner overhead; end to end for an in-memory batch)")


class BenchError(SsdConvertError):
    """The sweep cannot start (bad model/backend/batch sizes)."""


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


@dataclass
class BenchReport:
    model: str
    backend: str
    label: str
    batch_sizes: list[int]
    duration: float
    warmup: int
    rows: list[BenchRow] = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    runtime: dict = field(default_factory=dict)
    flops_per_image: float | None = None
    started: str = ""
    finished: str = ""
    stopped_early: bool = False
    failure: str = ""
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def ok_rows(self) -> list[BenchRow]:
        return [r for r in self.rows if r.status == "ok"]

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"schema": "ssdconvert.bench", "version": 1, "throughput_definition": THROUGHPUT_DEFINITION,
                "wall_throughput_definition": WALL_DEFINITION, **d}


# ---------------------------------------------------------------------------------------------
# Machine description


def machine_info() -> dict:
    """CPU model, cores, memory, OS, Python and runtime versions (without importing runtimes)."""
    from importlib.metadata import PackageNotFoundError, version

    cpu, physical = platform.processor() or platform.machine(), set()
    try:
        block: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines() + [""]:
            if ":" in line:
                k, v = (s.strip() for s in line.split(":", 1))
                block[k] = v
                if k == "model name":
                    cpu = v
            elif block:
                physical.add((block.get("physical id"), block.get("core id")))
                block = {}
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for pkg in ("onnxruntime", "openvino", "numpy", "torch", "ais_bench", "aclruntime"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "physical_cores": len(physical) if physical and None not in next(iter(physical)) else None,
        "memory_gib": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "ssdconvert": __version__,
        "versions": versions,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# ---------------------------------------------------------------------------------------------
# Measuring one batch size


def synthetic_batch(meta, batch: int, seed: int = 0) -> np.ndarray:
    shape = (batch, *meta.sample_shape)
    if any(d is None for d in shape):
        raise BenchError(f"model input {meta.describe()} has dynamic non-batch dimensions; export a fixed image size")
    rng = np.random.default_rng(seed)
    dtype = np.dtype(meta.dtype)
    if dtype.kind in "ui":
        return rng.integers(0, 255, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def timed_loop(runner, batch: int, *, duration: float, warmup: int, min_runs: int = 1) -> BenchRow:
    """Warm up, then run until `duration` seconds have passed (at least `min_runs` runs)."""
    from ssdconvert.infer import stats_ms

    meta = runner.inputs[0]
    feeds = {meta.name: synthetic_batch(meta, batch)}
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


def _ais_bench_cli_row(om: Path, batch: int, *, duration: float, warmup: int, device: int, dym_batch: bool,
                       workdir: Path) -> BenchRow:
    """Pure-inference timing with `python3 -m ais_bench --loop L --batchsize N` (how the seed's
    table was measured): a 10-loop probe sizes the loop count to fill `duration`."""
    from ssdconvert.runners.ais_bench import run_ais_bench

    kwargs = dict(output=workdir, batchsize=batch, dym_batch=batch if dym_batch else None, device=device)
    result = run_ais_bench(om, output_dirname=f"bs{batch}_probe", warmup=warmup, loop=10, **kwargs)
    mean = result.compute_ms.get("mean") or 0.0
    loops = math.ceil(duration * 1000.0 / mean) if mean > 0 else 10
    if loops > 10:
        result = run_ais_bench(om, output_dirname=f"bs{batch}", warmup=warmup, loop=min(loops, 100000), **kwargs)
    latency = dict(result.compute_ms)
    times = result.compute_ms_list
    if times:
        from ssdconvert.infer import stats_ms

        latency = stats_ms(times)
    return BenchRow(batch, throughput=result.throughput, wall_throughput=None, latency_ms=latency,
                    runs=int(latency.get("count", 0)), seconds=result.seconds)


# ---------------------------------------------------------------------------------------------
# The sweep


def runtime_label(backend: str, versions: dict[str, str], soc: str | None = None) -> str:
    if backend == "onnxruntime":
        return f"ONNX Runtime {versions.get('onnxruntime', '')} CPU".replace("  ", " ")
    if backend == "openvino":
        ver = versions.get("openvino", "").split("-")[0]
        return f"OpenVINO {ver} {versions.get('device', 'CPU')} {versions.get('inference_precision', '')}".strip()
    return f"ais_bench {soc or ''}".strip()


def run_bench(model: str | Path, *, backend: str = "auto", batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
              duration: float = 10.0, warmup: int = 1, soc: str | None = None, device: int | str = 0,
              output_dir: str | Path = "build/bench", name: str | None = None, flops_per_image: float | None = None,
              dym_batch: bool = False, min_runs: int = 1, plot: bool = True, atc_tool: str | None = None,
              progress: Callable[[str], None] | None = None) -> BenchReport:
    """Sweep batch sizes and write <name>.md/.json/.csv/.png into `output_dir`.

    `atc_tool`: the ATC executable for the per-batch .om builds (default: PATH, then the CANN env).
    """
    model = Path(model)
    if not model.exists():
        raise BenchError(f"model not found: {model}")
    batch_sizes = sorted(dict.fromkeys(int(b) for b in batch_sizes))
    if not batch_sizes or batch_sizes[0] < 1:
        raise BenchError("batch sizes must be positive integers")
    if duration <= 0:
        raise BenchError("--duration must be > 0 seconds")
    backend = backend_for(model, backend)
    suffix = model.suffix.lower()
    if backend == "ais_bench" and suffix == ".onnx" and not soc:
        raise BenchError("building .om files needs --soc (the chip, e.g. Ascend310P3; see `npu-smi info`)")
    output_dir = ensure_writable_dir(output_dir)
    name = name or f"{model.stem}_{backend}"
    say = progress or (lambda msg: log.info(msg))

    report = BenchReport(str(model.resolve()), backend, backend, batch_sizes, duration, warmup,
                         machine=machine_info(), flops_per_image=flops_per_image,
                         started=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    try:
        if backend == "onnxruntime":
            _sweep_shared_runner(report, model, backend, batch_sizes, duration, warmup, min_runs, say)
        elif backend == "openvino":
            _sweep_per_batch(report, model, backend, batch_sizes, duration, warmup, min_runs, device, say)
        else:
            from ssdconvert.runners.ais_bench import om_gears

            dym_batch = dym_batch or bool(suffix == ".om" and om_gears(model))  # gears from the build record
            _sweep_ais_bench(report, model, batch_sizes, duration, warmup, min_runs, soc, int(device), dym_batch,
                             output_dir / f"{name}_work", say, atc_tool)
    except KeyboardInterrupt:
        report.stopped_early, report.failure = True, "interrupted by the user"
    report.label = runtime_label(backend, report.runtime, soc)
    if flops_per_image:
        for row in report.ok_rows:
            row.gflops_per_s = flops_per_image * row.throughput / 1e9
    report.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if hasattr(os, "getloadavg"):  # other jobs on the machine make the numbers noisy: say how busy it was
        report.machine["load_average_at_end"] = list(os.getloadavg())
    write_reports(report, output_dir, name, plot=plot)
    return report


def _fail(report: BenchReport, batch: int, exc: BaseException) -> None:
    message = _explain(exc, batch)
    report.rows.append(BenchRow(batch, status="failed", error=message))
    report.stopped_early = True
    report.failure = f"batch size {batch}: {message}"
    for later in report.batch_sizes[report.batch_sizes.index(batch) + 1:]:
        report.rows.append(BenchRow(later, status="skipped", error=f"not run: batch size {batch} failed"))


def _explain(exc: BaseException, batch: int) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MemoryError) or "alloc" in text.lower() or "out of memory" in text.lower():
        return f"out of memory at batch {batch} ({text})" if text != "MemoryError" else f"out of memory at batch {batch}"
    return text


def _sweep_shared_runner(report, model, backend, batch_sizes, duration, warmup, min_runs, say) -> None:
    """Dynamic-batch ONNX on ONNX Runtime: one session serves every batch size."""
    runner = make_runner(model, backend)
    try:
        runner.activate()
    except Exception as exc:
        _fail(report, batch_sizes[0], exc)
        return
    with runner:
        report.runtime = runner.versions()
        static = runner.static_batch
        for bs in batch_sizes:
            if static is not None and bs != static:
                report.rows.append(BenchRow(bs, status="skipped", error=f"model has a static batch of {static}"))
                continue
            say(f"batch {bs}: warm-up {warmup}, then {report.duration:g} s ...")
            try:
                row = timed_loop(runner, bs, duration=duration, warmup=warmup, min_runs=min_runs)
            except Exception as exc:  # memory, runtime errors: stop and report
                _fail(report, bs, exc)
                return
            row.artefact = str(model)
            report.rows.append(row)
            say(_row_line(row))


def _sweep_per_batch(report, model, backend, batch_sizes, duration, warmup, min_runs, device, say) -> None:
    """OpenVINO: the same artefact reshaped and compiled per batch size."""
    for bs in batch_sizes:
        say(f"batch {bs}: compile, warm-up {warmup}, then {report.duration:g} s ...")
        try:
            with make_runner(model, backend, batch=bs, device=device) as runner:
                report.runtime = runner.versions()
                row = timed_loop(runner, bs, duration=duration, warmup=warmup, min_runs=min_runs)
        except Exception as exc:
            _fail(report, bs, exc)
            return
        row.artefact = str(model)
        report.rows.append(row)
        say(_row_line(row))


def _sweep_ais_bench(report, model, batch_sizes, duration, warmup, min_runs, soc, device, dym_batch, workdir,
                     say, atc_tool: str | None = None) -> None:
    """Ascend: one static .om per batch size built by ATC (or the given .om), timed with ais_bench
    (its Python API when importable, else `python3 -m ais_bench --loop`)."""
    from ssdconvert.runners.ais_bench import AisBenchRunner, api_available

    workdir.mkdir(parents=True, exist_ok=True)
    use_api = api_available()
    report.runtime = {"ais_bench": "python API (InferSession)" if use_api else "subprocess python3 -m ais_bench",
                      "soc": soc or "", **report.machine.get("versions", {})}
    for bs in batch_sizes:
        row_build: dict = {}
        try:
            if model.suffix.lower() == ".onnx":
                from ssdconvert.compilers.atc import build_om  # lazy: the compiler adapter

                say(f"batch {bs}: atc --soc_version={soc} ...")
                built = build_om(model, soc, batch=bs, output=workdir / f"{model.stem}_bs{bs}.om", tool=atc_tool)
                om = Path(built.artefacts[0])
                row_build = {"build_seconds": built.seconds, "build_command": [str(c) for c in built.command]}
            else:
                om = model
            say(f"batch {bs}: warm-up {warmup}, then {report.duration:g} s ...")
            if use_api:
                with AisBenchRunner(om, device=device, batch=bs, dym_batch=dym_batch) as runner:
                    if runner.static_batch is not None and runner.static_batch != bs and not runner.dym_batch:
                        report.rows.append(BenchRow(bs, status="skipped",
                                                    error=f"{om.name} has a static batch of {runner.static_batch}"))
                        continue
                    row = timed_loop(runner, bs, duration=duration, warmup=warmup, min_runs=min_runs)
            else:
                row = _ais_bench_cli_row(om, bs, duration=duration, warmup=warmup, device=device,
                                         dym_batch=dym_batch, workdir=workdir)
        except Exception as exc:
            _fail(report, bs, exc)
            return
        row.artefact = str(om)
        for key, value in row_build.items():
            setattr(row, key, value)
        report.rows.append(row)
        say(_row_line(row))


def _row_line(row: BenchRow) -> str:
    return (f"batch {row.batch_size}: {row.throughput:.2f} samples/s (compute), mean latency "
            f"{row.latency_ms['mean']:.3g} ms, {row.runs} runs")


# ---------------------------------------------------------------------------------------------
# Reports


def fmt_throughput(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if value >= 100 else f"{value:.3f}"


def seed_table(report: BenchReport) -> str:
    """`| Batch size | <runtime> |` with throughput in samples/s; best value in bold, like the seed."""
    from ssdconvert.cli.output import markdown_table

    best = max((r.throughput for r in report.ok_rows), default=None)
    rows = []
    for r in report.rows:
        if r.status == "ok":
            cell = fmt_throughput(r.throughput)
            rows.append((r.batch_size, f"**{cell}**" if r.throughput == best and len(report.ok_rows) > 1 else cell))
        else:
            rows.append((r.batch_size, f"{r.status}: {r.error}"))
    return markdown_table(["Batch size", report.label], rows)


def detail_table(report: BenchReport) -> str:
    from ssdconvert.cli.output import markdown_table

    headers = ["Batch size", "Throughput (samples/s)", "Wall throughput (samples/s)", "Mean latency (ms)",
               "Median (ms)", "p99 (ms)", "Min (ms)", "Max (ms)", "Runs"]
    if report.flops_per_image:
        headers.append("GFLOP/s")
    rows = []
    for r in report.ok_rows:
        lat = r.latency_ms
        row = [r.batch_size, fmt_throughput(r.throughput), fmt_throughput(r.wall_throughput), f"{lat['mean']:.2f}",
               f"{lat['median']:.2f}", f"{lat['percentile(99%)']:.2f}", f"{lat['min']:.2f}", f"{lat['max']:.2f}", r.runs]
        if report.flops_per_image:
            row.append(f"{r.gflops_per_s:.1f}")
        rows.append(row)
    return markdown_table(headers, rows)


def markdown_report(report: BenchReport) -> str:
    m = report.machine
    lines = [
        f"# Batch-size sweep: {Path(report.model).name} on {report.label}",
        "",
        f"**Throughput definition:** {THROUGHPUT_DEFINITION}. Inputs are synthetic full batches (no padding).",
        "",
        seed_table(report),
        "",
        "Unit: samples/s.",
        "",
        "## Details",
        "",
        detail_table(report),
        "",
        f"{WALL_DEFINITION}.",
        "",
        f"- Machine: {m.get('cpu_model')}, {m.get('usable_cores')} usable cores "
        f"({m.get('physical_cores')} physical), {m.get('memory_gib')} GiB, {m.get('os')}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m.get('load_average_at_start') or [])}, "
        f"at end {', '.join(f'{x:.2f}' for x in m.get('load_average_at_end') or [])}",
        f"- Runtime: {', '.join(f'{k} {v}' for k, v in report.runtime.items())}",
        f"- Per batch size: {report.warmup} warm-up run(s), then runs until {report.duration:g} s have passed "
        "(at least one run)",
        f"- Model: `{report.model}`",
        f"- Started {report.started}, finished {report.finished}",
    ]
    if report.flops_per_image:
        lines.append(f"- FLOPs per image: {report.flops_per_image / 1e9:.2f} GFLOP (2 x MAC)")
    if report.stopped_early:
        lines += ["", f"**Stopped early:** {report.failure}"]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ["batch_size", "status", "throughput_samples_per_s", "wall_throughput_samples_per_s", "latency_mean_ms",
              "latency_median_ms", "latency_p99_ms", "latency_min_ms", "latency_max_ms", "runs", "seconds",
              "gflops_per_s", "backend", "runtime", "artefact", "error", "throughput_definition"]


def csv_report(report: BenchReport) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in report.rows:
        lat = r.latency_ms
        writer.writerow({
            "batch_size": r.batch_size, "status": r.status, "throughput_samples_per_s": r.throughput,
            "wall_throughput_samples_per_s": r.wall_throughput, "latency_mean_ms": lat.get("mean"),
            "latency_median_ms": lat.get("median"), "latency_p99_ms": lat.get("percentile(99%)"),
            "latency_min_ms": lat.get("min"), "latency_max_ms": lat.get("max"), "runs": r.runs,
            "seconds": round(r.seconds, 3), "gflops_per_s": r.gflops_per_s, "backend": report.backend,
            "runtime": report.label, "artefact": r.artefact, "error": r.error,
            "throughput_definition": THROUGHPUT_DEFINITION,
        })
    return buf.getvalue()


def plot_report(report: BenchReport, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.ok_rows
    xs = [r.batch_size for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax1.plot(xs, [r.throughput for r in rows], "o-", label="compute")
    if any(r.wall_throughput for r in rows):
        ax1.plot(xs, [r.wall_throughput for r in rows], "s--", alpha=0.7, label="wall clock")
    ax1.set(xlabel="batch size", ylabel="throughput (samples/s)", title="Throughput")
    ax2.plot(xs, [r.latency_ms["mean"] for r in rows], "o-", label="mean")
    ax2.plot(xs, [r.latency_ms["percentile(99%)"] for r in rows], "^--", label="p99")
    ax2.set(xlabel="batch size", ylabel="latency per batch (ms)", title="Latency")
    for ax in (ax1, ax2):
        if xs:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_ylim(0, 1.12 * max((y for line in ax.get_lines() for y in line.get_ydata()), default=1))
        ax.grid(True, alpha=0.3)
        ax.legend()
    failed = [r for r in report.rows if r.status == "failed"]
    suffix = f"  (stopped at batch {failed[0].batch_size}: {failed[0].error[:60]})" if failed else ""
    fig.suptitle(f"{Path(report.model).name} on {report.label}{suffix}", fontsize=10)
    fig.text(0.01, 0.01, "throughput = 1000 x batch / mean compute ms (compute only, as ais_bench); "
             f"{report.machine.get('cpu_model')}, {report.machine.get('usable_cores')} cores", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_reports(report: BenchReport, output_dir: Path, name: str, *, plot: bool = True) -> None:
    paths = {kind: output_dir / f"{name}.{kind}" for kind in ("md", "json", "csv", "png")}
    report.outputs = {k: str(v) for k, v in paths.items() if plot or k != "png"}
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(markdown_report(report))
    with atomic_path(paths["csv"]) as tmp:
        tmp.write_text(csv_report(report))
    if plot:
        plot_report(report, paths["png"])
    write_json(paths["json"], report.to_dict())
