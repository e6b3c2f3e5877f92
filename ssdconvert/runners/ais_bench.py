"""ais_bench (Ascend .om inference): subprocess adapter for `python3 -m ais_bench`, plus a Runner
over its Python API (`ais_bench.infer.interface.InferSession`) when that is importable.

Contract (reference sheet device_toolchains.md §2): standalone flag spellings; input files are
concatenated up to the om batch and the last batch is padded; outputs `<stem>_<i>.bin` (stem cut
at the first dot) in `<output>/<output_dirname>/`; `<output>/<output_dirname>_summary.json`
beside it, whose NPU_compute_time percentile key may be mangled (match it by prefix);
throughput = 1000 * batchsize / mean NPU compute ms; exit code 0 on success, 1 on any error.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError
from ssdconvert.runners.base import Runner, RunnerError, TensorMeta, dim_or_none, first_line

PYTHON_ENV = "SSDCONVERT_AIS_BENCH_PYTHON"
STAT_KEYS = ("min", "max", "mean", "median", "percentile(99%)", "count")

COMPUTE_RE = re.compile(
    r"NPU_compute_time \(ms\): min = (\S+), max = (\S+), mean = (\S+), median = (\S+), percentile\(99%\) = (\S+)")
THROUGHPUT_RE = re.compile(
    r"throughput 1000\*batchsize\.mean\(([\d.]+)\)/NPU_compute_time\.mean\(([\d.eE+-]+)\): ([\d.eE+-]+)")
MULTI_DEVICE_RE = re.compile(r"summary throughput:([\d.eE+-]+)")
OUTPUT_PATH_RE = re.compile(r"output path:(.+)")


class AisBenchError(SsdConvertError):
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
               batchsize: int | None = None, dym_batch: int | None = None, device: int = 0,
               warmup: int = 1, loop: int = 1, display_all_summary: bool = False) -> list[str]:
    """argv for the standalone tool. Always passes --batchsize and --output_dirname explicitly
    (the sheet's checklist): the former fixes the throughput formula, the latter the folder."""
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
    return argv


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
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise AisBenchError(f"cannot read ais_bench summary {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise AisBenchError(f"ais_bench summary {path} is not valid JSON: {exc}") from None
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
    output_dir: Path | None = None
    summary_path: Path | None = None
    summary: dict = field(default_factory=dict)

    @property
    def throughput(self) -> float | None:
        """samples/s = 1000 * batchsize / mean NPU compute ms (ais_bench's definition)."""
        if self.summary.get("throughput") is not None:
            return float(self.summary["throughput"])
        return self.console.throughput

    @property
    def compute_ms(self) -> dict[str, float]:
        if isinstance(self.summary.get("NPU_compute_time"), dict):
            return self.summary["NPU_compute_time"]
        return dict(self.console.compute_ms or {})

    @property
    def compute_ms_list(self) -> list[float]:
        return [float(v) for v in self.summary.get("npu_compute_time_list", [])]


def run_ais_bench(model: str | Path, *, input: str | Path | Sequence | None = None,
                  output: str | Path | None = None, output_dirname: str | None = None,
                  batchsize: int | None = None, dym_batch: int | None = None, device: int = 0,
                  warmup: int = 1, loop: int = 1, python: str | None = None, log_path: str | Path | None = None,
                  timeout: float | None = None, echo: Callable[[str], None] | None = None,
                  env: Mapping[str, str] | None = None) -> AisBenchResult:
    """Run `python3 -m ais_bench`, keep its full log, parse its summary, raise AisBenchError on failure.

    With `output` and `output_dirname`, results land in `output/output_dirname/` and the summary in
    `output/<output_dirname>_summary.json`. `echo` receives the tool's output as it arrives.
    """
    model = Path(model)
    if not model.is_file():
        raise AisBenchError(f"model not found: {model}")
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
    argv = build_argv(model, python=python, input=input, output=output, output_dirname=output_dirname,
                      batchsize=batchsize, dym_batch=dym_batch, device=device, warmup=warmup, loop=loop)
    if log_path is None:
        base = Path(output) if output is not None else Path.cwd()
        log_path = base / f"{output_dirname or 'ais_bench'}_ais_bench.log"
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    text, returncode = _run_logged(argv, log_path, timeout=timeout, echo=echo, env=env)
    seconds = time.perf_counter() - started
    console = parse_console(text)
    result = AisBenchResult(argv, returncode, seconds, log_path, console)
    if returncode != 0:
        raise AisBenchError(f"ais_bench failed: {explain_failure(text, returncode)} (full log: {log_path})")

    if output is not None:
        if output_dirname:
            result.output_dir = Path(output) / output_dirname
        elif console.output_path:
            result.output_dir = Path(console.output_path.rstrip("/"))
        if result.output_dir is not None:
            summary_path = result.output_dir.parent / f"{result.output_dir.name}_summary.json"
            if not summary_path.is_file():
                raise AisBenchError(f"ais_bench exited 0 but wrote no summary {summary_path} (full log: {log_path})")
            result.summary_path = summary_path
            result.summary = read_summary(summary_path)
    if result.throughput is None:
        raise AisBenchError(f"ais_bench exited 0 but printed no performance summary (full log: {log_path})")
    return result


def _run_logged(argv: list[str], log_path: Path, *, timeout: float | None, echo, env) -> tuple[str, int]:
    """Run argv with stdout+stderr merged into `log_path`; return (text, returncode)."""
    chunks: list[str] = []
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env)
    except OSError as exc:
        raise AisBenchError(f"cannot start {argv[0]}: {exc.strerror}") from None

    def pump() -> None:
        with open(log_path, "w", encoding="utf-8", errors="replace") as log:
            log.write("$ " + " ".join(argv) + "\n")
            while True:
                data = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
                if not data:
                    break
                piece = data.decode("utf-8", errors="replace")
                chunks.append(piece)
                log.write(piece)
                if echo is not None:
                    echo(piece)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        raise AisBenchError(f"ais_bench did not finish within {timeout:.0f} s and was stopped (full log: {log_path})") from None
    reader.join()
    return "".join(chunks), returncode


# ---------------------------------------------------------------------------------------------
# Runner over the Python API


_ACL_DTYPES = {"float32": "float32", "float": "float32", "float16": "float16", "uint8": "uint8", "int8": "int8",
               "int32": "int32", "int64": "int64", "double": "float64", "float64": "float64", "bool": "bool"}


class AisBenchRunner(Runner):
    """Runs an .om in-process through `ais_bench.infer.interface.InferSession` (device compute
    time from the session's own exec_time_list, like the CLI's NPU_compute_time).

    `dym_batch`/`batch`: for an om built with dynamic batch gears, run gear `batch`.
    [inferred from the interface docs; not run on a real NPU here]
    """

    name = "ais_bench"

    def __init__(self, model: str | Path, *, device: int = 0, batch: int | None = None, dym_batch: bool = False):
        super().__init__(model)
        self.device = device
        self.batch = batch
        self.dym_batch = dym_batch
        self.session = None

    def _activate(self) -> None:
        if not api_available():
            raise RunnerError("the ais_bench Python API (ais_bench.infer.interface) is not importable here; "
                              "install the aclruntime and ais_bench wheels")
        from ais_bench.infer.interface import InferSession

        try:
            self.session = InferSession(self.device, str(self.model))
        except Exception as exc:
            raise RunnerError(f"ais_bench cannot load {self.model}: {first_line(exc)}") from None
        self.inputs = [_acl_meta(t) for t in self.session.get_inputs()]
        self.outputs = [_acl_meta(t) for t in self.session.get_outputs()]
        if self.inputs and self.inputs[0].batch is None:
            self.dym_batch = True
        if self.dym_batch and self.batch:
            self.inputs = [TensorMeta(m.name, (self.batch, *m.shape[1:]), m.dtype) for m in self.inputs]

    def _infer(self, feeds: Mapping[str, np.ndarray]):
        arrays = [np.ascontiguousarray(feeds[m.name]) for m in self.inputs]
        session = self.session
        start = self._clock()
        try:
            if self.dym_batch:
                outputs = session.infer(arrays, mode="dymbatch")
            else:
                outputs = session.infer(arrays)
        except Exception as exc:
            raise RunnerError(f"ais_bench inference failed: {first_line(exc)}") from None
        wall_ms = (self._clock() - start) * 1e3
        return list(outputs), _last_exec_ms(session, wall_ms)

    def _deactivate(self) -> None:
        session, self.session = self.session, None
        for name in ("free_resource", "finalize"):
            if session is not None and hasattr(session, name):
                getattr(session, name)()
                break

    def versions(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return {"ais_bench": version("ais_bench")}
        except PackageNotFoundError:
            return {"ais_bench": "unknown"}


def _acl_meta(tensor) -> TensorMeta:
    dtype = getattr(tensor, "datatype", "float32")
    dtype = str(getattr(dtype, "name", dtype)).split(".")[-1].lower()
    return TensorMeta(tensor.name, tuple(dim_or_none(d) for d in tensor.shape), _ACL_DTYPES.get(dtype, dtype))


def _last_exec_ms(session, fallback_ms: float) -> float:
    """The last NPU compute time: newer `summary()`, older `sumary()`; entries are ms or (start, end)."""
    for name in ("summary", "sumary"):
        fn = getattr(session, name, None)
        if fn is None:
            continue
        try:
            times = list(fn().exec_time_list)
        except Exception:
            continue
        if times:
            last = times[-1]
            if isinstance(last, (tuple, list)) and len(last) == 2:
                return float(last[1]) - float(last[0])
            return float(last)
    return fallback_ms
