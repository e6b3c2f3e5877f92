"""ais_bench (Ascend .om inference): the subprocess adapter for `python3 -m ais_bench`.

Contract (Ascend/tools ais-bench_workload/tool/ais_bench, `ais_bench/infer/`): standalone flag
spellings; input files are concatenated up to the om batch and the last batch is padded; outputs
`<stem>_<i>.bin` (stem cut at the first dot) in `<output>/<output_dirname>/`;
`<output>/<output_dirname>_summary.json` beside it, whose NPU_compute_time percentile key may be
mangled (match it by prefix); throughput = 1000 * batchsize / mean NPU compute ms; exit code 0 on
success, 1 on any error.

Several devices (`--device 0,1,...`), as read in Ascend/tools `ais_bench/infer/__main__.py`
(multidevice_run, split_inputs_new; git 9d6da90, 2023-06) and mjlovesz/sync-ait
`ait/components/benchmark/ais_bench/infer/benchmark_process.py` (tags AIT-6.0.RC2.001, AIT-6.0.RC3.001):
one process per device, each writing its own folder and summary under `<output>/<output_dirname>/`:

    older standalone   device<N>/            device<N>_summary.json
    newer (ait era)    device<N>_<i>/        device<N>_<i>_summary.json    (i = position in the list)

The standalone tool and AIT 6.0.RC2 always split the natural-sorted files of each model input into
contiguous blocks in device-list order (the standalone tool gives every device ceil(files / devices)
files, the last ones fewer or none; ait floor(files / devices) plus one more for the first
files % devices devices). From AIT 6.0.RC3 (sync-ait commit 0765eb473, 2023-07-25) the split needs
`--divide_input 1` (default False: every device runs every input), a flag the older tools reject; so
the adapter asks the installed tool's `--help` whether it has the flag and passes it where it does
(`supports_divide_input`). Each summary's `args` is the parent's argv. The console ends with one
`i:<k> device_<N> throughput:...` line per device and `summary throughput:<sum>`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ssdconvert.launcher import ToolFailedError, raise_failure, run_tool
from ssdconvert.timing import stats_ms

PYTHON_ENV = "SSDCONVERT_AIS_BENCH_PYTHON"
STAT_KEYS = ("min", "max", "mean", "median", "percentile(99%)", "count")

COMPUTE_RE = re.compile(
    r"NPU_compute_time \(ms\): min = (\S+), max = (\S+), mean = (\S+), median = (\S+), percentile\(99%\) = (\S+)")
THROUGHPUT_RE = re.compile(
    r"throughput 1000\*batchsize\.mean\(([\d.]+)\)/NPU_compute_time\.mean\(([\d.eE+-]+)\): ([\d.eE+-]+)")
MULTI_DEVICE_RE = re.compile(r"summary throughput:([\d.eE+-]+)")
OUTPUT_PATH_RE = re.compile(r"output path:(.+)")


class AisBenchError(ToolFailedError):
    """ais_bench failed; the message says why in one line and where the full log is."""


# ---------------------------------------------------------------------------------------------
# Finding the tool


def ais_bench_python(explicit: str | None = None) -> str:
    """The Python that runs `-m ais_bench`: explicit > $SSDCONVERT_AIS_BENCH_PYTHON > this
    interpreter if it can import ais_bench > `python3` on PATH (the CANN environment's)."""
    if explicit:
        return explicit
    if os.environ.get(PYTHON_ENV):
        return os.environ[PYTHON_ENV]
    if api_available():
        return sys.executable
    return shutil.which("python3") or sys.executable


def api_available() -> bool:
    """True if `ais_bench.infer.interface` (the om inference tool, not AISBench's LLM
    benchmark that shares the `ais_bench` namespace) is importable here."""
    try:
        return importlib.util.find_spec("ais_bench.infer.interface") is not None
    except (ImportError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# Command line


def build_argv(model: str | Path, *, python: str | None = None, input: str | Path | Sequence | None = None,
               output: str | Path | None = None, output_dirname: str | None = None, outfmt: str = "BIN",
               batchsize: int | None = None, dym_batch: int | None = None, device: int | str = 0,
               warmup: int = 1, loop: int = 1, display_all_summary: bool = False,
               divide_input: bool = False) -> list[str]:
    """argv for the standalone tool. Always passes --batchsize and --output_dirname explicitly: the former
    fixes the throughput formula, the latter the folder. `divide_input`: split the inputs between the devices
    of a list (`--divide_input 1`, only for a tool that has the flag: see the module docstring)."""
    argv = [ais_bench_python(python), "-m", "ais_bench", "--model", str(model)]
    if input is not None:
        items = [input] if isinstance(input, (str, Path)) else list(input)
        argv += ["--input", ",".join(str(i) for i in items)]
    if output is not None:
        argv += ["--output", str(output)]
        if output_dirname:
            argv += ["--output_dirname", output_dirname]
        argv += ["--outfmt", outfmt]
    if batchsize:
        argv += ["--batchsize", str(batchsize)]
    if dym_batch:
        argv += ["--dymBatch", str(dym_batch)]
    argv += ["--device", str(device), "--warmup_count", str(warmup), "--loop", str(loop)]
    if display_all_summary:
        argv += ["--display_all_summary", "1"]
    if divide_input:
        argv += ["--divide_input", "1"]
    return argv


def supports_divide_input(python: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True if the installed ais_bench lists `--divide_input` in its `--help` (AIT 6.0.RC3 and later; without
    it such a tool runs every input on every device of a list)."""
    try:
        probe = run_tool([ais_bench_python(python), "-m", "ais_bench", "--help"], log_path=None, timeout=120,
                         env=env)
    except ToolFailedError:
        return False
    return probe.ok_exit and "--divide_input" in probe.output


# ---------------------------------------------------------------------------------------------
# Parsing what it prints and writes


@dataclass
class ConsoleSummary:
    compute_ms: dict[str, float] | None = None  # min, max, mean, median, percentile(99%)
    batchsize: float | None = None
    throughput: float | None = None
    multi_device_throughput: float | None = None
    output_path: str | None = None


def parse_console(text: str) -> ConsoleSummary:
    """Read the `[INFO] ... Performance Summary` block (the last one wins)."""
    out = ConsoleSummary()
    for m in COMPUTE_RE.finditer(text):
        out.compute_ms = dict(zip(STAT_KEYS[:5], (float(v.rstrip(",")) for v in m.groups())))
    for m in THROUGHPUT_RE.finditer(text):
        out.batchsize, out.throughput = float(m.group(1)), float(m.group(3))
    for m in MULTI_DEVICE_RE.finditer(text):
        out.multi_device_throughput = float(m.group(1))
    for m in OUTPUT_PATH_RE.finditer(text):
        out.output_path = m.group(1).strip()
    return out


def normalise_stats(stats: Mapping[str, object]) -> dict[str, float]:
    """A summary stat block with its percentile key repaired: the newer ais_bench writes
    'percentile(99%' + spaces + ')' for NPU_compute_time, so match it by prefix."""
    fixed: dict[str, float] = {}
    for key, value in stats.items():
        name = "percentile(99%)" if key.startswith("percentile(") else key
        if name == "count":
            fixed[name] = int(value or 0)
        else:
            fixed[name] = float(value) if value is not None else float("nan")
    return fixed


def om_gears(om: str | Path) -> list[int]:
    """Batch gears that `ssdconvert atc --dynamic-bs` recorded in `<om>.json` ([] if static or unknown)."""
    try:
        record = json.loads(Path(f"{om}.json").read_text())
    except (OSError, ValueError):
        return []
    gears = record.get("dynamic_batches") if isinstance(record, dict) else None
    return [int(g) for g in gears] if isinstance(gears, list) else []


def read_summary(path: str | Path) -> dict:
    """Load an ais_bench `<dirname>_summary.json`, with the stat blocks normalised."""
    from ssdconvert.fileio import read_json

    data = read_json(path, "ais_bench summary", AisBenchError)
    for key in ("NPU_compute_time", "H2D_latency", "D2H_latency"):
        if isinstance(data.get(key), dict):
            data[key] = normalise_stats(data[key])
    return data


# ---------------------------------------------------------------------------------------------
# Failures -> one clear line

_FAILURES: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(r"No module named '?ais_bench"),
     lambda m: "ais_bench is not installed for this Python: build and install the aclruntime and ais_bench "
               "wheels (Ascend/tools ais-bench_workload/tool/ais_bench) or set "
               f"{PYTHON_ENV} to a Python that has them"),
    (re.compile(r"No module named '?aclruntime"),
     lambda m: "ais_bench cannot import aclruntime: install the aclruntime wheel and source the CANN "
               "environment (set_env.sh) first"),
    (re.compile(r"required: --models|ais_bench\.benchmark"),
     lambda m: "the installed `ais_bench` is AISBench's LLM benchmark, not the .om inference tool "
               "(ais_bench.infer); install the inference tool's wheels"),
    (re.compile(r"tensorsize:\s*(\d+)\s+filesize:\s*(\d+)\s+not match"),
     lambda m: f"input files do not fit the om input: one file is {int(m.group(2)):,} bytes and the om "
               f"input is {int(m.group(1)):,} bytes, which is not a whole number of files; the .bin files "
               "must be in the om input dtype and shape (e.g. float32 3x300x300 = 1,080,000 B per image)"),
    (re.compile(r"ndata size:\s*(\d+)\s+not match\s*(\d+)"),
     lambda m: f"one batch of input files adds up to {int(m.group(1)):,} bytes but the om input needs "
               f"{int(m.group(2)):,}; all .bin files must have the same size"),
    (re.compile(r"the dymBatch parameter is not correct"),
     lambda m: "the .om was not built with this batch gear (--dymBatch): give one of the gears of its atc "
               "--dynamic_batch_size"),
    (re.compile(r"the dynamic_batch_size parameter is not specified for model conversion"),
     lambda m: "--dymBatch needs an .om built with batch gears (atc --dynamic_batch_size); this one has a static "
               "batch"),
    (re.compile(r"input dir num:\s*(\d+)\s+not equal to model inputs num:\s*(\d+)"),
     lambda m: f"--input has {m.group(1)} folder(s) but the om has {m.group(2)} input(s); give one folder per input"),
    (re.compile(r"save out files error array shape:\s*(.*)"),
     lambda m: f"cannot split an output of shape {m.group(1).strip()} per input file along axis 0 "
               "(output batch axis not divisible by files per inference)"),
    (re.compile(r"out of memory|malloc.*fail|alloc\w* (?:device )?memory fail|aclrtMalloc\w* failed", re.I),
     lambda m: "the device ran out of memory (try a smaller batch size)"),
    (re.compile(r"aclrtSetDevice failed|set_device failed|open device \d+ failed|device id .* (?:invalid|out of range)", re.I),
     lambda m: "cannot open the NPU device (check `npu-smi info`, the --device id, and that no other process holds it)"),
    (re.compile(r"aclmdlLoadFromFile\w* failed|load model .* failed|model load failed", re.I),
     lambda m: "the .om cannot be loaded on this device: was it built for another SoC "
               "(atc --soc_version must match `npu-smi info`) or another CANN version?"),
    (re.compile(r"dym string .* is not a legal string"),
     lambda m: "a dynamic-shape argument was rejected by ais_bench (input names must not contain '.', '/' or '-')"),
    (re.compile(r"multidevice run end qsize:\s*\d+ result:\s*1"),
     lambda m: "a device process failed (multi-device run); the log shows which device and why"),
    (re.compile(r"unrecognized arguments: (.*)"),
     lambda m: f"this ais_bench does not know the argument(s) {m.group(1).strip()} (too old a version?)"),
]

_LAST_ERROR_RE = re.compile(r"^(?:\w+\.)*(\w*(?:Error|Exception)): (.+)$|^\[ERROR\] (.+)$", re.M)


def explain_failure(log: str, returncode: int | None) -> str:
    """One line saying why ais_bench failed, from its console output."""
    for pattern, message in _FAILURES:
        m = pattern.search(log)
        if m:
            return message(m)
    errors = _LAST_ERROR_RE.findall(log)
    if errors:
        kind, text, err_line = errors[-1]
        return f"{kind}: {text}".strip() if kind else err_line.strip()
    tail = [line for line in log.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
    return f"exit code {returncode}: {tail[0].strip()}"


# ---------------------------------------------------------------------------------------------
# Running the tool


@dataclass
class AisBenchResult:
    command: list[str]
    returncode: int
    seconds: float
    log_path: Path
    console: ConsoleSummary
    output_dir: Path | None = None  # <output>/<output_dirname>: results, or one folder per device
    summary_path: Path | None = None  # single device: <output>/<output_dirname>_summary.json
    summary: dict = field(default_factory=dict)
    device_summaries: list[dict] = field(default_factory=list)  # several devices: one summary each

    @property
    def summaries(self) -> list[dict]:
        return self.device_summaries or ([self.summary] if self.summary else [])

    @property
    def throughput(self) -> float | None:
        """samples/s = 1000 * batchsize / mean NPU compute ms (ais_bench's definition), summed over devices."""
        if self.device_summaries:
            if self.console.multi_device_throughput is not None:
                return self.console.multi_device_throughput
            return sum(float(s.get("throughput") or 0.0) for s in self.device_summaries)
        if self.summary.get("throughput") is not None:
            return float(self.summary["throughput"])
        return self.console.throughput

    @property
    def compute_ms(self) -> dict[str, float]:
        if self.device_summaries:
            return stats_ms(self.compute_ms_list)
        if isinstance(self.summary.get("NPU_compute_time"), dict):
            return self.summary["NPU_compute_time"]
        return dict(self.console.compute_ms or {})

    @property
    def compute_ms_list(self) -> list[float]:
        return [float(v) for s in self.summaries for v in s.get("npu_compute_time_list", [])]


def run_ais_bench(model: str | Path, *, input: str | Path | Sequence | None = None,
                  output: str | Path | None = None, output_dirname: str | None = None,
                  batchsize: int | None = None, dym_batch: int | None = None, device: int | str = 0,
                  warmup: int = 1, loop: int = 1, python: str | None = None, log_path: str | Path | None = None,
                  timeout: float | None = None, echo: Callable[[str], None] | None = None,
                  env: Mapping[str, str] | None = None) -> AisBenchResult:
    """Run `python3 -m ais_bench`, keep its full log, parse its summary, raise AisBenchError on failure.

    With `output` and `output_dirname`, results land in `output/output_dirname/` and the summary in
    `output/<output_dirname>_summary.json`; with several devices (`device` "0,1"), one folder and
    one summary per device inside `output/output_dirname/` (see the module docstring). `echo`
    receives the tool's output as it arrives.
    """
    model = Path(model)
    if not model.is_file():
        raise AisBenchError(f"model not found: {model}")
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
    devices = str(device).split(",")
    env = {**os.environ, **(env or {})}
    divide = len(devices) > 1 and input is not None and supports_divide_input(python, env)
    argv = build_argv(model, python=python, input=input, output=output, output_dirname=output_dirname,
                      batchsize=batchsize, dym_batch=dym_batch, device=device, warmup=warmup, loop=loop,
                      divide_input=divide)
    if log_path is None:
        base = Path(output) if output is not None else Path.cwd()
        log_path = base / f"{output_dirname or 'ais_bench'}_ais_bench.log"
    log_path = Path(log_path)
    outcome = run_tool(argv, log_path=log_path, timeout=timeout, progress=echo, env=env)
    console = parse_console(outcome.output)
    result = AisBenchResult(argv, outcome.returncode, outcome.seconds, log_path, console)
    if not outcome.ok_exit:
        raise_failure("ais_bench", outcome, log_path, error_lines=[explain_failure(outcome.output, outcome.returncode)],
                      timeout=timeout, error=AisBenchError)
    if output is not None:
        _read_results(result, Path(output), output_dirname, devices)
    if result.throughput is None:
        raise AisBenchError(f"ais_bench exited 0 but printed no performance summary. Full log: {log_path}")
    return result


def _read_results(result: AisBenchResult, output: Path, output_dirname: str | None, devices: Sequence[str]) -> None:
    """Find the run's output folder and read its summary (one per device for a device list)."""
    log_path = result.log_path
    if output_dirname:
        result.output_dir = output / output_dirname
    elif result.console.output_path:
        result.output_dir = Path(result.console.output_path.rstrip("/"))
        if len(devices) > 1:  # the last `output path:` names a device folder
            result.output_dir = result.output_dir.parent
    if result.output_dir is not None and len(devices) > 1:
        result.device_summaries = _device_summaries(result.output_dir, devices, log_path)
    elif result.output_dir is not None:
        summary_path = result.output_dir.parent / f"{result.output_dir.name}_summary.json"
        if not summary_path.is_file():
            raise AisBenchError(f"ais_bench exited 0 but wrote no summary {summary_path}. Full log: {log_path}")
        result.summary_path = summary_path
        result.summary = read_summary(summary_path)


def _device_summaries(folder: Path, devices: Sequence[str], log_path: Path) -> list[dict]:
    """One summary per device of the list, in list order, beside its device folder."""
    from stageio.errors import LayoutError
    from stageio.reader import device_folders
    from stageio.results import summary_path

    try:
        folders = device_folders(folder, devices) or []
    except LayoutError as exc:
        raise AisBenchError(f"ais_bench exited 0 but {exc}. Full log: {log_path}") from None
    if len(folders) != len(devices):
        raise AisBenchError(f"ais_bench exited 0 but wrote no device folders in {folder}. Full log: {log_path}")
    summaries = []
    for device_folder in folders:
        path = summary_path(device_folder)
        if not path.is_file():
            raise AisBenchError(f"ais_bench exited 0 but wrote no summary {path}. Full log: {log_path}")
        summaries.append(read_summary(path))
    return summaries
