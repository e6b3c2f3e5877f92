"""`ssdconvert bench`: the batch-size sweep (throughput and latency per batch size).

For each batch size: the backend prepares what it runs (a dynamic ONNX/IR is reused for every
batch size; Ascend and MagicMind build one static model per batch size from an .onnx, like the
published tables), warms up, runs for a bounded time on in-memory synthetic input, and records
throughput and latency (in-process through its runner, or through its vendor benchmark tool
where the runtime is not importable here: ais_bench, mm_run). The sweep stops at the first batch
size that fails (e.g. out of memory) and reports what it has.

Outputs in DIR: <name>.md (a table shaped like Ascend ModelZoo's SSD-ResNet34 README: batch size -> throughput, plus
a detailed table), <name>.json (rows + machine + runtime versions), <name>.csv, <name>.png
(throughput and latency against batch size). Each states the throughput definition.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ssdconvert import __version__, backends
from ssdconvert.backends.base import Backend, BackendOptions, RunOptions, build_record
from ssdconvert.errors import Interrupted, SsdConvertError
from ssdconvert.fileio import atomic_path, ensure_writable_dir, write_json
from ssdconvert.formatting import markdown_table
from ssdconvert.timing import BenchContext, BenchRow, FeedMaker, timed_loop

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


class BenchInterrupted(Interrupted):
    """Ctrl-C stopped a sweep; `report` holds the batch sizes that ran (its files are written)."""

    def __init__(self, report: "BenchReport"):
        self.report = report
        ran = ", ".join(str(r.batch_size) for r in report.ok_rows) or "none"
        super().__init__(f"{report.failure}; the batch sizes that ran ({ran}) are kept in {report.outputs['md']} "
                         "(and .json, .csv)")


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
    precision: str = "fp32"

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
    from ssdconvert.cpu import cpu_features

    features = cpu_features()
    versions = {}
    for pkg in ("onnxruntime", "openvino", "nncf", "numpy", "torch", "ais_bench", "aclruntime"):
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
        "cpu_flags": features.shown_flags(),
        "cpu_features": features.describe(),
    }


# ---------------------------------------------------------------------------------------------
# The sweep


def run_bench(model: str | Path, *, backend: str | Backend = "auto",
              options: BackendOptions | Mapping[str, BackendOptions] | None = None,
              batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, duration: float = 10.0, warmup: int = 1,
              device: int | str = "0", output_dir: str | Path = "build/bench", name: str | None = None,
              flops_per_image: float | None = None, min_runs: int = 1, plot: bool = True,
              precision: str | None = None, calib: str | Path | None = None,
              progress: Callable[[str], None] | None = None, feeds: FeedMaker | None = None) -> BenchReport:
    """Sweep batch sizes and write <name>.md/.json/.csv/.png into `output_dir`.

    `backend`: a name, `auto` or a Backend; `options`: its own options (Backend.configured: e.g. Ascend's chip
    and compiler for per-batch builds from an .onnx, `AscendOptions(soc="Ascend310P3")`).
    `feeds`: realistic inputs (ModelSpec.feeds_for) instead of random ones.
    `precision` (fp32 | fp16 | bf16 | int8; None: the backend's default): per-batch builds use it,
    an .onnx is first built at it for the other backends (INT8 calibrated on `calib`, no gate:
    `quantize` or `run` gate it), and OpenVINO computes at it.
    """
    model = Path(model)
    batch_sizes = _check_request(model, batch_sizes, duration)
    target = backends.for_model(model, backend).configured(options)
    target.check_model(model, onnx_ok=target.builds_per_batch)
    if target.has_dynamic_image_size(model):  # the exact mode: batch 1 on a backend that takes any image size
        target.check_image_size(True, f"the model {model.name}")
        if batch_sizes != [1]:
            raise BenchError(f"{model.name} is in the exact mode (each image at its own height and width): it runs "
                             f"batch 1 only, not --bs {','.join(map(str, batch_sizes))}; a batch needs a fixed canvas")
    (device,) = _one_device(target, device)
    output_dir = ensure_writable_dir(output_dir)
    name = name or f"{model.stem}_{target.name}"
    say = progress or (lambda msg: log.info(msg))
    ctx = BenchContext(duration, warmup, output_dir / f"{name}_work", device=device, min_runs=min_runs, say=say,
                       feeds=feeds, precision=precision, calib=Path(calib) if calib else None)
    target.check_bench(model, ctx)
    refusal = target.precision_refusal(precision)
    if refusal:
        raise BenchError(refusal)
    if (precision not in (None, "fp32") and not target.builds_per_batch and model.suffix.lower() == ".onnx"
            and build_record(model).get("precision") != precision):  # not already that precision's model
        say(f"building the {precision} model ...")
        model = target.compile(model, ctx.workdir, batch=max(batch_sizes), precision=precision, calib=ctx.calib)[0]

    report = BenchReport(str(model.resolve()), target.name, target.name, batch_sizes, duration, warmup,
                         machine=machine_info(), flops_per_image=flops_per_image,
                         precision=precision or target.default_precision,
                         started=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    say(estimate(batch_sizes, duration, warmup, builds=target.builds_per_batch and model.suffix.lower() == ".onnx"))
    interrupted = False
    try:
        if target.shared_runner:
            _sweep_shared_runner(report, target, model, ctx)
        else:
            _sweep(report, target, model, ctx)
    except KeyboardInterrupt:
        interrupted = True
        _interrupt(report)
    report.label = target.runtime_label(report.runtime)
    if flops_per_image:
        for row in report.ok_rows:
            row.gflops_per_s = flops_per_image * row.throughput / 1e9
    report.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if hasattr(os, "getloadavg"):  # other jobs on the machine make the numbers noisy: say how busy it was
        report.machine["load_average_at_end"] = list(os.getloadavg())
    write_reports(report, output_dir, name, plot=plot)
    if interrupted:
        raise BenchInterrupted(report)
    return report


def estimate(batch_sizes: Sequence[int], duration: float, warmup: int, builds: bool) -> str:
    """One line: how long the sweep takes at least (its timed runs), said before it starts."""
    seconds = len(batch_sizes) * duration
    took = f"{seconds:.3g} s" if seconds < 120 else (f"{seconds / 60:.0f} min" if seconds < 7200
                                                      else f"{seconds / 3600:.1f} h")
    more = "warm-up runs and one build per batch size" if builds else f"{warmup} warm-up run(s) per batch size"
    return f"{len(batch_sizes)} batch size(s) x {duration:g} s: at least {took} of timed runs, plus {more}"


def _interrupt(report: BenchReport) -> None:
    """Ctrl-C during the sweep: the batch size it stopped at is left out, the later ones are marked not run."""
    ran = {r.batch_size for r in report.rows}
    left = [b for b in report.batch_sizes if b not in ran]
    report.stopped_early = True
    report.failure = (f"interrupted by the user at batch size {left[0]}" if left
                      else "interrupted by the user after the last batch size")
    report.rows += [BenchRow(b, status="skipped", error="not run: interrupted by the user") for b in left]


def _check_request(model: Path, batch_sizes: Sequence[int], duration: float) -> list[int]:
    """The batch sizes, sorted and unique; refuses a missing model, a non-positive size or duration."""
    if not model.exists():
        raise BenchError(f"model not found: {model}")
    sizes = sorted(dict.fromkeys(int(b) for b in batch_sizes))
    if not sizes or sizes[0] < 1:
        raise BenchError("batch sizes must be positive integers")
    if duration <= 0:
        raise BenchError("--duration must be > 0 seconds")
    return sizes


def _one_device(target: Backend, device: int | str) -> list[str]:
    devices = target.devices(device)
    if len(devices) > 1:
        raise BenchError(f"bench times one device; --device {device} lists {len(devices)} (run one sweep per device)")
    return devices


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


def _sweep_shared_runner(report: BenchReport, target: Backend, model: Path, ctx: BenchContext) -> None:
    """A dynamic-batch ONNX on ONNX Runtime: one session serves every batch size."""
    runner = target.make_runner(model, RunOptions(device=ctx.device, precision=ctx.precision))
    try:
        runner.activate()
    except Exception as exc:
        _fail(report, report.batch_sizes[0], exc)
        return
    with runner:
        report.runtime = runner.versions()
        static = runner.static_batch
        for bs in report.batch_sizes:
            if static is not None and bs != static:
                report.rows.append(BenchRow(bs, status="skipped", error=f"model has a static batch of {static}"))
                continue
            ctx.say(f"batch {bs}: warm-up {ctx.warmup}, then {ctx.duration:g} s ...")
            try:
                row = timed_loop(runner, bs, duration=ctx.duration, warmup=ctx.warmup, min_runs=ctx.min_runs,
                                 feeds=ctx.feeds)
            except Exception as exc:  # memory, runtime errors: stop and report
                _fail(report, bs, exc)
                return
            row.artefact = str(model)
            report.rows.append(row)
            ctx.say(_row_line(row))


def _sweep(report: BenchReport, target: Backend, model: Path, ctx: BenchContext) -> None:
    """Per batch size: what the backend builds for it (or the model itself), timed by the backend."""
    for bs in report.batch_sizes:
        try:
            artefact, build = target.bench_model(model, bs, ctx)
            ctx.say(f"batch {bs}: warm-up {ctx.warmup}, then {ctx.duration:g} s ...")
            row, versions = target.bench_row(artefact, bs, ctx)
        except Exception as exc:  # build failures, memory, runtime errors: stop and report
            _fail(report, bs, exc)
            return
        report.runtime = versions or report.runtime
        row.artefact = str(artefact)
        for key, value in build.items():
            setattr(row, key, value)
        report.rows.append(row)
        if row.status == "ok":
            ctx.say(_row_line(row))


def _row_line(row: BenchRow) -> str:
    return (f"batch {row.batch_size}: {row.throughput:.2f} samples/s (compute), mean latency "
            f"{row.latency_ms['mean']:.3g} ms, {row.runs} runs")


# ---------------------------------------------------------------------------------------------
# Reports


def fmt_throughput(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if value >= 100 else f"{value:.3f}"


def throughput_table(report: BenchReport) -> str:
    """`| Batch size | <runtime> |` with throughput in samples/s; best value in bold, like that README."""
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
    headers = ["Batch size", "Throughput (samples/s)", "Wall throughput (samples/s)", "Mean latency (ms)",
               "Median (ms)", "p99 (ms)", "Min (ms)", "Max (ms)", "Runs"]
    if report.flops_per_image:
        headers.append("GFLOP/s")
    placed = any(r.host for r in report.ok_rows)  # a sweep on a cluster: where each row ran
    if placed:
        headers += ["Host", "Device"]
    rows = []
    for r in report.ok_rows:
        lat = r.latency_ms
        row = [r.batch_size, fmt_throughput(r.throughput), fmt_throughput(r.wall_throughput), f"{lat['mean']:.2f}",
               f"{lat['median']:.2f}", f"{lat['percentile(99%)']:.2f}", f"{lat['min']:.2f}", f"{lat['max']:.2f}", r.runs]
        if report.flops_per_image:
            row.append(f"{r.gflops_per_s:.1f}")
        if placed:
            row += [r.host, r.device]
        rows.append(row)
    return markdown_table(headers, rows)


def markdown_report(report: BenchReport) -> str:
    m = report.machine
    lines = [
        f"# Batch-size sweep: {Path(report.model).name} on {report.label}, {report.precision}",
        "",
        f"**Throughput definition:** {THROUGHPUT_DEFINITION}. Inputs are synthetic full batches (no padding).",
        "",
        throughput_table(report),
        "",
        "Unit: samples/s.",
        "",
        "## Details",
        "",
        detail_table(report),
        "",
        f"{WALL_DEFINITION}.",
        "",
        f"- CPU: {m.get('cpu_features')}",
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
              "gflops_per_s", "backend", "runtime", "artefact", "error", "throughput_definition", "host", "device"]


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
            "throughput_definition": THROUGHPUT_DEFINITION, "host": r.host, "device": r.device,
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


# ---------------------------------------------------------------------------------------------
# Several precisions side by side


def precision_table(reports: Sequence[BenchReport]) -> str:
    """Batch size x (backend, precision): throughput in samples/s, with the speed-up over the first column."""
    sizes = sorted({r.batch_size for rep in reports for r in rep.rows})
    base = {r.batch_size: r.throughput for r in reports[0].ok_rows} if reports else {}
    rows = []
    for bs in sizes:
        cells = []
        for rep in reports:
            row = next((r for r in rep.rows if r.batch_size == bs), None)
            if row is None or row.status != "ok":
                cells.append(row.status if row else "–")
                continue
            ratio = f" ({row.throughput / base[bs]:.2f}x)" if base.get(bs) and rep is not reports[0] else ""
            cells.append(fmt_throughput(row.throughput) + ratio)
        rows.append((bs, *cells))
    return markdown_table(["Batch size", *(f"{rep.backend} {rep.precision}" for rep in reports)], rows)
