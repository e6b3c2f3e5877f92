"""Cambricon MagicMind: ONNX -> offline MagicMind model for the MLU370 (mtp_372).

Contract (Cambricon/magicmind_cloud buildin/python_common: build_param.py, model_process.py): the
model is serialised exactly to `--magicmind_model`
(no extension added). No stdout protocol is documented for the build tool, so success is
exit code 0 plus a fresh, non-empty model file; on failure the last error-looking line is shown.

Every flag spelling lives in FLAGS below, so a wrong spelling is fixed in one place. They are the
argparse flags of Cambricon/magicmind_cloud `buildin/python_common/build_param.py` (release v1.7),
which each network's `gen_model.py` uses. Whether the `mm_build` tool in the MagicMind release
package takes the same spellings is [unverified]: if it does not,
correct FLAGS, or point --tool at the user's gen_model.py.

Naming note: Cambricon's modelzoo "CNNL" infer mode is eager layer-by-layer PyTorch on the MLU
(Cambricon/catch docs/user_guide/source/pytorch_9_inference/Pytorch_inference.rst) and builds no
offline model; `ssdconvert cnnl` is this offline MagicMind build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ssdconvert.backends.compiling import CompileResult, CompilerError, check_artefacts, log_path_for, write_sidecar
from ssdconvert.backends.onnxinfo import read_onnx
from ssdconvert.fileio import sha256_of
from ssdconvert.launcher import Progress, ToolSpec, raise_failure, resolve_command, run_tool


@dataclass(frozen=True)
class Flag:
    spelling: str
    style: str  # "value": --f v | "list": --f a b c | "bool": --f true|false
    verified: str  # evidence level: "verified" = read in build_param.py (release v1.7)


# The ONE table of build-tool flags. [verified] = build_param.py v1.7; all are [unverified] for mm_build.
FLAGS: dict[str, Flag] = {
    "onnx": Flag("--onnx", "value", "verified (README says onnx_model; the code flag is --onnx)"),
    "model": Flag("--magicmind_model", "value", "verified"),
    "precision": Flag("--precision", "value", "verified"),
    "input_dims": Flag("--input_dims", "list", "verified"),
    "batch_size": Flag("--batch_size", "list", "verified"),
    "dynamic_shape": Flag("--dynamic_shape", "bool", "verified"),
    "dim_range_min": Flag("--dim_range_min", "list", "verified"),
    "dim_range_max": Flag("--dim_range_max", "list", "verified"),
    "mlu_arch": Flag("--mlu_arch", "value", "verified"),
    # calibration for qint*: `--calibration true`, and `--calibration_data_path` "MUST input with file_list"
    # (one list file per input) [verified: build_param.py help texts]. How a network's CalibData reads the
    # listed files is up to its gen_model.py [unverified for SSD]: here they are raw float32 NCHW tensors.
    "calibration": Flag("--calibration", "bool", "verified"),
    "calibration_data_path": Flag("--calibration_data_path", "value", "verified"),
    "file_list": Flag("--file_list", "list", "verified"),
    "calibration_algo": Flag("--calibration_algo", "value", "verified"),
}

PRECISIONS = ("force_float32", "force_float16", "qint16_mixed_float16", "qint8_mixed_float16",
              "qint16_mixed_float32", "qint8_mixed_float32")
MLU_ARCHS = ("mtp_220", "mtp_270", "mtp_290", "mtp_372", "tp_322", "mtp_592")

TOOL = ToolSpec(
    name="MagicMind build tool (mm_build)",
    executables=("mm_build",),
    env_homes=("NEUWARE_HOME",),
    home_subdirs=("bin",),
    install_hint=("It ships in the MagicMind release package (magicmind/python/samples/mm_build/); "
                  "source the Neuware environment (NEUWARE_HOME, usually /usr/local/neuware), or pass "
                  "--tool path/to/gen_model.py from Cambricon/magicmind_cloud."),
)

ERROR_LINE_RE = re.compile(r"(?i)(\berror\b|exception|traceback|\[MMERROR\]|failed)")


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
    dim_range: tuple[Sequence[int], Sequence[int]] | None = None,
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

    `dynamic=True` builds a shape-mutable model over `dim_range` = (min NCHW, max NCHW); the default
    range is batch 1..`batch` (or 1..64) at the ONNX's C, H, W. A qint* precision calibrates on
    `calib_images` samples of the bins folder `calib`, chosen as `quantize` chooses them, listed in
    `<model>.calib_list.txt` beside the model.
    """
    onnx = Path(onnx)
    _check_settings(precision, mlu_arch, calib)
    info = read_onnx(onnx)
    inputs = info.batched_inputs()
    batch = _batch(onnx, info.batch, batch)
    argv_flags = _flag("onnx", onnx) + _flag("precision", precision) + _flag("mlu_arch", mlu_arch)
    for each in inputs:  # build_param.py: --input_dims once per input, --batch_size one value per input
        argv_flags += _flag("input_dims", [batch, *each.shape])
    argv_flags += _flag("batch_size", [batch] * len(inputs)) + _flag("dynamic_shape", dynamic)
    if dynamic:
        lo, hi = _dim_range(onnx, info, inputs, batch, dim_range)
        argv_flags += _flag("dim_range_min", lo) + _flag("dim_range_max", hi)
    elif dim_range is not None:
        raise CompilerError("--dim-range applies only with --dynamic")

    stem = Path(output) if output is not None else default_output(onnx, precision, dynamic, batch)
    if str(output or "").endswith("/"):
        raise CompilerError(f"--output {output!r} must name the model file (MagicMind adds no extension)")
    calibration = None
    if calib is not None:
        calibration = calibration_list(Path(calib), calib_images, stem.with_name(f"{stem.name}.calib_list.txt"),
                                       dry_run)
        argv_flags += (_flag("calibration", True) + _flag("calibration_data_path", calibration["folder"])
                       + _flag("file_list", [calibration["list"]]) + _flag("calibration_algo", "linear"))
    log_path = log_path_for(stem, "magicmind")
    argv = resolve_command(TOOL, tool, dry_run=dry_run) + argv_flags + _flag("model", stem) + [str(e) for e in extra]
    tail = inputs[0].shape
    record = {
        "tool": "magicmind", "precision": precision, "mlu_arch": mlu_arch, "batch": batch, "dynamic_shape": dynamic,
        "dim_range": {"min": lo, "max": hi} if dynamic else None,
        "input": {"name": inputs[0].name, "shape": [batch, *tail], "dtype": "float32", "layout": "NCHW"},
        "inputs": [{"name": i.name, "shape": [batch, *i.shape], "dtype": i.dtype} for i in inputs],
        "source_onnx": {"path": str(onnx.resolve()), "opset": info.opset},
        "flag_table": {k: f.spelling for k, f in FLAGS.items()},
        "calibration": calibration,
    }
    if dry_run:
        return CompileResult([stem], argv, 0.0, log_path, tool="magicmind", dry_run=True, info=record)
    return _run_build(onnx, argv, stem, log_path, record, timeout, progress)


def _check_settings(precision: str, mlu_arch: str, calib: Path | None) -> None:
    if precision not in PRECISIONS:
        raise CompilerError(f"unknown --precision '{precision}'; MagicMind takes {', '.join(PRECISIONS)}")
    if mlu_arch not in MLU_ARCHS:
        raise CompilerError(f"unknown --mlu-arch '{mlu_arch}'; known: {', '.join(MLU_ARCHS)} (MLU370 = mtp_372)")
    if precision.startswith("qint") and calib is None:
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


def _dim_range(onnx: Path, info, inputs, batch: int,
               dim_range: tuple[Sequence[int], Sequence[int]] | None) -> tuple[list[int], list[int]]:
    """(min, max) NCHW of a shape-mutable model: only the batch may vary, from 1 (default: to `batch`, or 64)."""
    if len(inputs) > 1:
        raise CompilerError(f"{onnx} has {len(inputs)} inputs; the build tool's --dim_range_min/max set the range "
                            "of input 0 only (build_param.py), so build one static model per batch size (--bs)")
    if info.batch is not None:
        raise CompilerError(f"{onnx} has a fixed batch of {info.batch}; a dynamic MagicMind model needs a "
                            "dynamic-batch export")
    inp, tail = inputs[0], inputs[0].shape
    lo, hi = dim_range or ((1, *tail), (batch if batch > 1 else 64, *tail))
    lo, hi = [int(v) for v in lo], [int(v) for v in hi]
    if len(lo) != len(inp.dims) or len(hi) != len(inp.dims):
        raise CompilerError(f"--dim-range needs {len(inp.dims)} values for min and max, got {lo} / {hi}")
    if any(a > b for a, b in zip(lo, hi)) or lo[0] < 1:
        raise CompilerError(f"--dim-range min {lo} must be >= 1 and <= max {hi} in every dim")
    if list(lo[1:]) != list(tail) or list(hi[1:]) != list(tail):
        raise CompilerError(f"--dim-range may vary only the batch; the ONNX fixes C,H,W = {tail}")
    return lo, hi


def _run_build(onnx: Path, argv: list[str], stem: Path, log_path: Path, record: dict, timeout: float,
               progress: Progress | None) -> CompileResult:
    """Run the build tool, check it wrote a fresh model, and write the build record."""
    outcome = run_tool(argv, log_path=log_path, timeout=timeout, progress=progress)
    if not outcome.ok_exit:
        errors = [ln for ln in outcome.lines() if ERROR_LINE_RE.search(ln) and not ln.startswith("Traceback")]
        raise_failure("MagicMind build", outcome, log_path, error_lines=errors[-1:], timeout=timeout,
                      hint="If the tool rejected a flag, correct FLAGS in ssdconvert/backends/magicmind/compile.py "
                           "(spellings unverified for mm_build) or use --tool gen_model.py.")
    artefacts = check_artefacts("MagicMind build", [stem], outcome, log_path)
    record.update({"artefact": str(stem), "command": argv, "log": str(log_path),
                   "seconds": round(outcome.seconds, 2)})
    record["source_onnx"]["sha256"] = sha256_of(onnx)
    sidecar = write_sidecar(stem, record)
    return CompileResult(artefacts, argv, outcome.seconds, log_path, tool="magicmind", sidecar=sidecar,
                         info=record)


def calibration_list(calib: Path, count: int, list_path: Path, dry_run: bool) -> dict:
    """Write the file list of the calibration samples (names relative to the bins folder, one per
    line, the same deterministic choice as `quantize`); returns what the build record keeps."""
    from ssdconvert.fileio import atomic_path
    from ssdconvert.samples import open_samples

    chosen = open_samples(calib).pick(count)
    if len(chosen.folders) != 1:
        raise CompilerError("MagicMind calibration here takes one bins folder (a single-input model)")
    names = [files[0].name for files in chosen.files]
    if not dry_run:
        list_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(list_path) as tmp:
            tmp.write_text("".join(f"{n}\n" for n in names))
    return {"folder": str(chosen.folders[0].resolve()), "list": str(list_path), "images": len(names)}


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
                           calib=calib if mode.startswith("qint") else None,
                           output=out_dir / default_output(onnx, mode, False, batch).name)
