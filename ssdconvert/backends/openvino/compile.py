"""OpenVINO `ovc`: ONNX -> IR (.xml + .bin), static or dynamic batch, FP32 or FP16 weights.

Contract (ovc's help text and runs, observed with openvino 2026.4.1): `--output_model x/name.xml`
writes exactly x/name.xml and x/name.bin (without it ovc writes into the *current directory*);
weights are compressed to FP16 unless `--compress_to_fp16=False`; success prints
`[ SUCCESS ] XML file: ...` / `BIN file: ...`, errors go to stderr as `[ ERROR ] ...` with exit 1.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ssdconvert.backends.compiling import CompileResult, CompilerError, check_artefacts, log_path_for, write_sidecar
from ssdconvert.backends.onnxinfo import read_onnx
from ssdconvert.fileio import sha256_of
from ssdconvert.launcher import Progress, ToolFailedError, ToolSpec, raise_failure, resolve_command, run_tool

TOOL = ToolSpec(
    name="ovc",
    executables=("ovc",),
    # The ovc beside the running interpreter belongs to the openvino this venv imports.
    prefer_dirs=(str(Path(sys.executable).parent),),
    install_hint="Install OpenVINO (`pip install openvino`, a dependency of ssdconvert) in this environment.",
)

SUCCESS_RE = re.compile(r"^\[ SUCCESS \] (XML|BIN) file: (.+)$")
ERROR_RE = re.compile(r"^\[ ERROR \]\s*(.+)$")


def default_output(onnx: Path, batch: int | None, fp16: bool) -> Path:
    name = onnx.stem
    if batch is not None:
        name = re.sub(r"_bs\d+$", "", name) + f"_bs{batch}"
    if fp16:
        name += "_fp16"
    return onnx.parent / name


def _output_stem(onnx: Path, output: Path | None, batch: int | None, fp16: bool) -> Path:
    if output is None:
        return default_output(onnx, batch, fp16)
    text = str(output)
    if text.endswith("/") or Path(text).is_dir():
        return Path(text) / default_output(onnx, batch, fp16).name
    path = Path(text)
    return path.with_suffix("") if path.suffix in (".xml", ".bin") else path


def convert_ir(
    onnx: Path,
    output: Path | None = None,
    *,
    batch: int | None = None,
    fp16: bool = False,
    precision: str = "fp32",
    tool: str | None = None,
    timeout: float = 1800,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> CompileResult:
    """Convert `onnx` to OpenVINO IR with ovc. Artefacts: [xml, bin].

    `batch` fixes the batch axis; None keeps it dynamic (`?`). FP32 weights unless `fp16` (or
    precision fp16). `precision` (fp32 | fp16 | bf16) is recorded as the inference precision the
    runner asks the CPU plugin for (INFERENCE_PRECISION_HINT f32 | f16 | bf16).
    """
    if precision not in ("fp32", "fp16", "bf16"):
        raise CompilerError(f"ovc builds fp32, fp16 or bf16 IR, not {precision!r} (int8: `ssdconvert quantize "
                            "--backend openvino`, or `ssdconvert openvino --precision int8 --calib BINS`)")
    fp16 = fp16 or precision == "fp16"
    onnx = Path(onnx)
    info = read_onnx(onnx)
    inputs = info.batched_inputs(dynamic_tail=True)  # an exact-mode model keeps its dynamic height and width
    inp = inputs[0]
    if batch is not None:
        if batch < 1:
            raise CompilerError(f"--bs must be >= 1, got {batch}")
        if info.batch is not None and info.batch != batch:
            raise CompilerError(f"{onnx} has a fixed batch of {info.batch}, not {batch}")
    first = "?" if batch is None and info.batch is None else str(batch or info.batch)
    shapes = {i.name: [first, *("?" if d is None else str(d) for d in i.dims[1:])] for i in inputs}

    stem = _output_stem(onnx, output, batch, fp16)
    xml, bin_ = stem.with_name(stem.name + ".xml"), stem.with_name(stem.name + ".bin")
    log_path = log_path_for(stem, "ovc")
    argv = resolve_command(TOOL, tool, dry_run=dry_run) + [
        str(onnx),
        f"--output_model={xml}",
        "--input=" + ",".join(f"{name}[{','.join(dims)}]" for name, dims in shapes.items()),
        f"--compress_to_fp16={'True' if fp16 else 'False'}",
    ]
    record = {
        "tool": "ovc",
        "weights": "float16" if fp16 else "float32",
        "precision": precision,
        "batch": batch if batch is not None else inp.batch,
        "dynamic_batch": first == "?",
        "input": {"name": inp.name, "shape": [first, *inp.dims[1:]], "dtype": "float32", "layout": "NCHW"},
        "inputs": [{"name": i.name, "shape": [first, *i.dims[1:]], "dtype": i.dtype} for i in inputs],
        "source_onnx": {"path": str(onnx.resolve()), "opset": info.opset},
    }
    if dry_run:
        return CompileResult([xml, bin_], argv, 0.0, log_path, tool="ovc", dry_run=True, info=record)

    outcome = run_tool(argv, log_path=log_path, timeout=timeout, progress=progress)
    lines = outcome.lines()
    reported = {m.group(1): m.group(2) for m in map(SUCCESS_RE.match, lines) if m}
    if not outcome.ok_exit or "XML" not in reported:
        errors = [m.group(0) for m in map(ERROR_RE.match, lines) if m]
        summary = [ln for ln in lines if ln.startswith("-- ")]  # e.g. "-- No conversion rule found for ..."
        if errors and summary:
            errors[0] += " " + " ".join(summary)
        raise_failure("ovc", outcome, log_path, error_lines=errors, timeout=timeout)
    # A model without constants has an empty .bin; the .xml is never empty.
    artefacts = check_artefacts("ovc", [xml, bin_], outcome, log_path, may_be_empty=[bin_])
    record.update({"artefacts": [str(p) for p in artefacts], "command": argv, "log": str(log_path),
                   "seconds": round(outcome.seconds, 2), "ovc_reported": reported})
    record["source_onnx"]["sha256"] = sha256_of(onnx)
    sidecar = write_sidecar(xml, record)
    return CompileResult(artefacts, argv, outcome.seconds, log_path, tool="ovc", sidecar=sidecar, info=record)


def ovc_version(executable: Path, timeout: float = 30) -> str | None:
    """`ovc --version` -> '2026.4.1-...' (observed output: 'OpenVINO Model Converter (ovc) <version>')."""
    try:
        outcome = run_tool([str(executable), "--version"], log_path=None, timeout=timeout)
    except ToolFailedError:
        return None
    m = re.search(r"\(ovc\)\s+(\S+)", outcome.output)
    return m.group(1) if m and not outcome.timed_out else None
