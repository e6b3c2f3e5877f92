"""Cambricon MagicMind: ONNX -> offline MagicMind model for the MLU370 (mtp_372).

The build tool is ssdconvert's own script, `build_model.py` beside this file (its docstring says what it
calls), run with the Python that has Cambricon's magicmind wheel; `--tool` takes another one instead: a
magicmind_cloud `gen_model.py`, or the build sample of the MagicMind release package
(magicmind/python/samples/mm_build/, named in magicmind_cloud buildin/python_common/README.md; not public).
No `mm_build` executable is looked for: no public Cambricon source ships one.

The model is serialised exactly to `--magicmind_model` (no extension added). No stdout protocol is
documented for building, so success is exit code 0 plus a fresh, non-empty model file; on failure the last
error-looking line is shown.

Every flag spelling lives in FLAGS below: the argparse flags of Cambricon/magicmind_cloud
`buildin/python_common/build_param.py` (release v1.7, git dc085c19), which gen_model.py scripts and our
script both take. `--input_dims`, `--dim_range_min`, `--dim_range_max`, `--means` and `--vars` are `append`
options there, one per model input (model_process.py writes `dim_range` and `insert_bn_before_firstnode` keyed
by input index), so a mutable shape covers every input. The calibration flags (`--calibration_data_path` with `--file_list`, one list per input) are read
only by our script: magicmind_cloud v1.7's gen_model.py scripts calibrate from their own dataset arguments.

Naming note: Cambricon's modelzoo "CNNL" infer mode is eager layer-by-layer PyTorch on the MLU
(Cambricon/catch docs/user_guide/source/pytorch_9_inference/Pytorch_inference.rst) and builds no
offline model; `ssdconvert cnnl` is this offline MagicMind build.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ssdconvert.backends.compiling import CompileResult, CompilerError, check_artefacts, log_path_for, write_sidecar
from ssdconvert.backends.onnxinfo import read_onnx
from ssdconvert.fileio import sha256_of
from ssdconvert.launcher import Progress, ToolSpec, locate_tool, raise_failure, run_tool

PYTHON_ENV = "SSDCONVERT_MAGICMIND_PYTHON"
BUILD_SCRIPT = Path(__file__).with_name("build_model.py")
RUNTIME = "magicmind.python.runtime"


@dataclass(frozen=True)
class Flag:
    spelling: str
    style: str  # "value": --f v | "list": --f a b c | "bool": --f true|false
    verified: str  # evidence level: "verified" = read in build_param.py (release v1.7)


# The ONE table of build flags: build_param.py v1.7 (git dc085c19) spellings, which build_model.py takes too.
FLAGS: dict[str, Flag] = {
    "onnx": Flag("--onnx", "value", "verified (README says onnx_model; the code flag is --onnx)"),
    "model": Flag("--magicmind_model", "value", "verified"),
    "precision": Flag("--precision", "value", "verified"),
    "input_dims": Flag("--input_dims", "list", "verified (append: once per input)"),
    "batch_size": Flag("--batch_size", "list", "verified (one value per input)"),
    "dynamic_shape": Flag("--dynamic_shape", "bool", "verified"),
    "dim_range_min": Flag("--dim_range_min", "list", "verified (append: once per input)"),
    "dim_range_max": Flag("--dim_range_max", "list", "verified (append: once per input)"),
    "mlu_arch": Flag("--mlu_arch", "value", "verified"),
    # calibration for qint*: declared by build_param.py, read by build_model.py only (see the module docstring)
    "calibration_data_path": Flag("--calibration_data_path", "value", "verified spelling; read by build_model.py"),
    "file_list": Flag("--file_list", "list", "verified spelling (one list per input); read by build_model.py"),
    "calibration_algo": Flag("--calibration_algo", "value", "verified"),
}

PRECISIONS = ("force_float32", "force_float16", "qint16_mixed_float16", "qint8_mixed_float16",
              "qint16_mixed_float32", "qint8_mixed_float32")
MLU_ARCHS = ("mtp_220", "mtp_270", "mtp_290", "mtp_372", "tp_322", "mtp_592")
TOOL = ToolSpec(
    name="MagicMind build tool (--tool)",
    executables=(),
    install_hint=("Give a build script: a magicmind_cloud gen_model.py, or the release package's "
                  "magicmind/python/samples/mm_build/ sample."),
)
ERROR_LINE_RE = re.compile(r"(?i)(\berror\b|exception|traceback|\[MMERROR\]|failed)")

Ranges = Sequence[tuple[Sequence[int], Sequence[int]]]


def magicmind_python() -> str:
    """The Python that runs the build: $SSDCONVERT_MAGICMIND_PYTHON > this interpreter if it can import the
    MagicMind runtime > `python3` on PATH (Neuware's or the MagicMind container's)."""
    if os.environ.get(PYTHON_ENV):
        return os.environ[PYTHON_ENV]
    try:
        if importlib.util.find_spec(RUNTIME) is not None:
            return sys.executable
    except (ImportError, ValueError):
        pass
    return shutil.which("python3") or sys.executable


def build_command(tool: str | None, dry_run: bool) -> list[str]:
    """argv prefix of the build: our script under the MagicMind Python, or `tool` (a .py that is not executable
    runs under that Python too)."""
    if tool is None:
        return [magicmind_python(), str(BUILD_SCRIPT)]
    path = Path(tool).expanduser() if dry_run and not Path(tool).expanduser().exists() else locate_tool(TOOL, tool)
    if path.suffix == ".py" and not os.access(path, os.X_OK):
        return [magicmind_python(), str(path)]
    return [str(path)]


def _flag(key: str, value) -> list[str]:
    flag = FLAGS[key]
    if flag.style == "list":
        return [flag.spelling, *map(str, value)]
    if flag.style == "bool":
        return [flag.spelling, "true" if value else "false"]
    return [flag.spelling, str(value)]


def default_output(onnx: Path, precision: str, dynamic: bool, batch: int) -> Path:
    """Repository convention: `<net>_model_<precision>_<dynamic_shape>[_<batch>]` (static shapes)."""
    net = re.sub(r"_bs\d+$", "", onnx.stem)
    name = f"{net}_model_{precision}_{'true' if dynamic else 'false'}"
    if not dynamic:
        name += f"_{batch}"
    return onnx.parent / name


def build_magicmind(
    onnx: Path,
    *,
    precision: str = "force_float32",
    batch: int | None = None,
    dynamic: bool = False,
    dim_ranges: Ranges | None = None,
    mlu_arch: str = "mtp_372",
    calib: Path | None = None,
    calib_images: int = 300,
    output: Path | None = None,
    tool: str | None = None,
    extra: Sequence[str] = (),
    timeout: float = 3600,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> CompileResult:
    """Build a MagicMind model from `onnx`. Static shape by default (SSD supports only that: magicmind_cloud
    buildin/cv/detection/mmdetection).

    `dynamic=True` builds a shape-mutable model over `dim_ranges`, one (min, max) pair per model input; by
    default each input's batch runs 1..`batch` (or 1..64) at its fixed tail. A qint* precision calibrates on
    `calib_images` samples of the bins folder `calib` (our build script only), chosen as `quantize` chooses
    them, listed per input in `<model>.calib_list[.<k>].txt` beside the model.
    """
    onnx = Path(onnx)
    _check_settings(precision, mlu_arch, calib, tool)
    info = read_onnx(onnx)
    inputs = info.batched_inputs()
    batch = _batch(onnx, info.batch, batch)
    argv_flags = _flag("onnx", onnx) + _flag("precision", precision) + _flag("mlu_arch", mlu_arch)
    for each in inputs:  # build_param.py: --input_dims once per input, --batch_size one value per input
        argv_flags += _flag("input_dims", [batch, *each.shape])
    argv_flags += _flag("batch_size", [batch] * len(inputs)) + _flag("dynamic_shape", dynamic)
    ranges = _dim_ranges(onnx, info, inputs, batch, dim_ranges) if dynamic else None
    if ranges is None and dim_ranges is not None:
        raise CompilerError("--dim-range applies only with --dynamic")
    for lo, hi in ranges or ():
        argv_flags += _flag("dim_range_min", lo) + _flag("dim_range_max", hi)

    stem = Path(output) if output is not None else default_output(onnx, precision, dynamic, batch)
    if str(output or "").endswith("/"):
        raise CompilerError(f"--output {output!r} must name the model file (MagicMind adds no extension)")
    calibration = None
    if calib is not None:
        calibration = calibration_lists(Path(calib), calib_images, stem, len(inputs), dry_run)
        argv_flags += (_flag("calibration_data_path", calibration["folder"]) + _flag("file_list", calibration["lists"])
                       + _flag("calibration_algo", "linear"))
    log_path = log_path_for(stem, "magicmind")
    argv = build_command(tool, dry_run) + argv_flags + _flag("model", stem) + [str(e) for e in extra]
    record = {
        "tool": "magicmind", "builder": tool or f"ssdconvert {BUILD_SCRIPT.name}", "precision": precision,
        "mlu_arch": mlu_arch, "batch": batch, "dynamic_shape": dynamic,
        "dim_ranges": [{"min": list(lo), "max": list(hi)} for lo, hi in ranges] if ranges else None,
        "input": {"name": inputs[0].name, "shape": [batch, *inputs[0].shape], "dtype": "float32",
                  "layout": "NCHW"},
        "inputs": [{"name": i.name, "shape": [batch, *i.shape], "dtype": i.dtype} for i in inputs],
        "source_onnx": {"path": str(onnx.resolve()), "opset": info.opset},
        "flag_table": {k: f.spelling for k, f in FLAGS.items()},
        "calibration": calibration,
    }
    if dry_run:
        return CompileResult([stem], argv, 0.0, log_path, tool="magicmind", dry_run=True, info=record)
    return _run_build(onnx, argv, stem, log_path, record, timeout, progress)


def _check_settings(precision: str, mlu_arch: str, calib: Path | None, tool: str | None) -> None:
    if precision not in PRECISIONS:
        raise CompilerError(f"unknown --precision '{precision}'; MagicMind takes {', '.join(PRECISIONS)}")
    if mlu_arch not in MLU_ARCHS:
        raise CompilerError(f"unknown --mlu-arch '{mlu_arch}'; known: {', '.join(MLU_ARCHS)} (MLU370 = mtp_372)")
    if calib is not None and tool is not None:
        raise CompilerError(f"--calib feeds ssdconvert's own build script; {Path(tool).name} calibrates by its own "
                            "means (magicmind_cloud's gen_model.py from its dataset arguments: pass them with "
                            "--extra, without --calib)")
    if precision.startswith("qint") and calib is None and tool is None:
        raise CompilerError(f"--precision {precision} needs calibration data: pass --calib with the preprocessed "
                            "bins folder")
    if calib is not None and not precision.startswith("qint"):
        raise CompilerError(f"--calib applies to the quantized precisions (qint*), not {precision}")


def _batch(onnx: Path, onnx_batch: int | None, batch: int | None) -> int:
    batch = batch if batch is not None else onnx_batch or 1
    if batch < 1:
        raise CompilerError(f"--bs must be >= 1, got {batch}")
    if onnx_batch is not None and batch != onnx_batch:
        raise CompilerError(f"{onnx} has a fixed batch of {onnx_batch}, not {batch}")
    return batch


def _dim_ranges(onnx: Path, info, inputs, batch: int, given: Ranges | None) -> list[tuple[list[int], list[int]]]:
    """(min, max) of each input of a shape-mutable model: only the batch may vary, from 1 (default: to `batch`, or
    64), and every input carries the same batch range."""
    if info.batch is not None:
        raise CompilerError(f"{onnx} has a fixed batch of {info.batch}; a dynamic MagicMind model needs a "
                            "dynamic-batch export")
    top = batch if batch > 1 else 64
    if given is None:
        given = [((1, *i.shape), (top, *i.shape)) for i in inputs]
    if len(given) != len(inputs):
        raise CompilerError(f"{onnx} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}): give one "
                            f"--dim-range per input, in input order, not {len(given)}")
    ranges = []
    for inp, (lo, hi) in zip(inputs, given):
        lo, hi, tail = [int(v) for v in lo], [int(v) for v in hi], list(inp.shape)
        if len(lo) != len(inp.dims) or len(hi) != len(inp.dims):
            raise CompilerError(f"--dim-range of {inp.name} needs {len(inp.dims)} values for min and max, got "
                                f"{lo} / {hi}")
        if any(a > b for a, b in zip(lo, hi)) or lo[0] < 1:
            raise CompilerError(f"--dim-range min {lo} must be >= 1 and <= max {hi} in every dim")
        if lo[1:] != tail or hi[1:] != tail:
            raise CompilerError(f"--dim-range may vary only the batch; the ONNX fixes {inp.name}'s other dims to "
                                f"{tail}")
        ranges.append((lo, hi))
    if len({(lo[0], hi[0]) for lo, hi in ranges}) > 1:
        raise CompilerError("every input carries the batch: give all inputs the same batch range in --dim-range")
    return ranges


def _run_build(onnx: Path, argv: list[str], stem: Path, log_path: Path, record: dict, timeout: float,
               progress: Progress | None) -> CompileResult:
    """Run the build, check it wrote a fresh model, and write the build record."""
    outcome = run_tool(argv, log_path=log_path, timeout=timeout, progress=progress)
    if not outcome.ok_exit:
        errors = [ln for ln in outcome.lines() if ERROR_LINE_RE.search(ln) and not ln.startswith("Traceback")]
        raise_failure("MagicMind build", outcome, log_path, error_lines=errors[-1:], timeout=timeout,
                      hint="If the tool rejected a flag, correct FLAGS in ssdconvert/backends/magicmind/compile.py "
                           "(build_param.py v1.7 spellings) or give a build script that takes them (--tool).")
    artefacts = check_artefacts("MagicMind build", [stem], outcome, log_path)
    record.update({"artefact": str(stem), "command": argv, "log": str(log_path),
                   "seconds": round(outcome.seconds, 2)})
    record["source_onnx"]["sha256"] = sha256_of(onnx)
    sidecar = write_sidecar(stem, record)
    return CompileResult(artefacts, argv, outcome.seconds, log_path, tool="magicmind", sidecar=sidecar,
                         info=record)


def calibration_lists(calib: Path, count: int, stem: Path, inputs: int, dry_run: bool) -> dict:
    """Write one file list per model input of the calibration samples (names relative to the folder that holds
    every input's bins, one per line, the same deterministic choice as `quantize`): `<model>.calib_list.txt`,
    then `<model>.calib_list.<k>.txt` for input k > 0. Returns what the build record keeps."""
    from ssdconvert.fileio import atomic_path
    from ssdconvert.samples import open_samples

    chosen = open_samples(calib).pick(count)
    if len(chosen.folders) != inputs:
        raise CompilerError(f"--calib {calib} holds {len(chosen.folders)} input(s) per sample; the model has {inputs}")
    root = Path(os.path.commonpath([str(f.resolve()) for f in chosen.folders]))
    lists = []
    for k in range(inputs):
        path = stem.with_name(f"{stem.name}.calib_list{'' if k == 0 else f'.{k}'}.txt")
        names = [str(files[k].resolve().relative_to(root)) for files in chosen.files]
        if not dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text("".join(f"{n}\n" for n in names))
        lists.append(str(path))
    return {"folder": str(root), "lists": lists, "images": len(chosen.files)}


# ------------------------------------------------------------------------------- for run and bench

# The precision names of `run` and `bench --precision` -> MagicMind --precision (a MagicMind name passes through).
MODES = {None: "force_float32", "fp32": "force_float32", "fp16": "force_float16", "int8": "qint8_mixed_float16"}


def precision_mode(precision: str | None) -> str:
    if precision in MODES:
        return MODES[precision]
    if precision in PRECISIONS:
        return precision
    raise CompilerError(f"MagicMind builds fp32, fp16 or int8 ({', '.join(PRECISIONS)}), not {precision!r}")


def build_static(onnx: Path, out_dir: Path, batch: int, precision: str | None, calib: Path | None,
                 mlu_arch: str, tool: str | None) -> CompileResult:
    """One static model at `batch` for `run` and `bench`, at a precision name of theirs (force_float32 by default;
    int8 = qint8_mixed_float16 calibrated on `calib`), named as the repository does in `out_dir`."""
    mode = precision_mode(precision)
    return build_magicmind(onnx, precision=mode, batch=batch, mlu_arch=mlu_arch, tool=tool,
                           calib=calib if mode.startswith("qint") and tool is None else None,
                           output=out_dir / default_output(onnx, mode, False, batch).name)
