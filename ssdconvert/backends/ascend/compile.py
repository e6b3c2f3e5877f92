"""Huawei Ascend ATC: ONNX -> offline model (.om).

Contract (CANN ATC documentation, hicann/ge docs/zh/user_guides/atc_tools/CLI_options/*.md and
api/atc/main_impl.cc): argv list, `--framework=5`, `--input_shape` built from the ONNX
graph input, `--soc_version` as `npu-smi info` names it; success needs exit code 0 *and* the line
`ATC run success`; error lines are `E[0-9A-Z]{5}: ...` on stdout; the model is `<output>.om` or,
for dynamic-shape graphs, `<output>_<os>_<arch>.om`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ssdconvert.backends.base import build_record
from ssdconvert.backends.compiling import CompileResult, CompilerError, check_artefacts, fresh, log_path_for, write_sidecar
from ssdconvert.backends.onnxinfo import read_onnx
from ssdconvert.fileio import sha256_of
from ssdconvert.launcher import Progress, ToolFailedError, ToolSpec, raise_failure, resolve_command, run_tool

if TYPE_CHECKING:
    from preprocess.spec import ImageTransform

TOOL = ToolSpec(
    name="atc",
    executables=("atc",),
    env_homes=("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"),
    home_subdirs=("bin", "compiler/bin", "atc/bin"),
    install_hint=("Install the CANN toolkit and source its environment: "
                  "`source /usr/local/Ascend/ascend-toolkit/set_env.sh` (CANN <= 8.3) or "
                  "`source /usr/local/Ascend/cann/set_env.sh` (CANN 8.5+)."),
)

# --precision_mode values (CANN ATC documentation: --precision_mode). None = do not pass the flag: ATC's
# default is force_fp16.
PRECISION_MODES = (
    "force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_fp32_to_fp16", "must_keep_origin_dtype",
    "allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16", "allow_fp32_to_bf16",
)
ATC_DEFAULT_PRECISION = "force_fp16"
LOG_LEVELS = ("debug", "info", "warning", "error", "null")

# Chip families ATC knows (CANN ATC documentation: --soc_version). `Ascend` + the Name column of
# `npu-smi info`; A3/950 parts are `<Chip Name>_<NPU Name>`. Strict on the family so typos fail
# here, not after a long build.
# The SoC names CANN knows (its platform tables and ops build lists): a name outside them is a typo
# that ATC would only reject after loading its op libraries. A3 parts are <Chip Name>_<NPU Name>.
KNOWN_SOCS = frozenset({
    "Ascend310",
    "Ascend310P1", "Ascend310P2", "Ascend310P3", "Ascend310P4", "Ascend310P5", "Ascend310P7",
    "Ascend310P3vir01", "Ascend310P3vir02", "Ascend310P3vir04", "Ascend310P3vir08",
    "Ascend310B1", "Ascend310B2", "Ascend310B3", "Ascend310B4",
    "Ascend910", "Ascend910A", "Ascend910ProA", "Ascend910B", "Ascend910ProB", "Ascend910PremiumA",
    "Ascend910B1", "Ascend910B2", "Ascend910B2C", "Ascend910B3", "Ascend910B4", "Ascend910B4-1",
})
SOC_RE = re.compile(r"^(Ascend910_93\d\d|Ascend950(PR|DT)_95\d\d)$")  # A3 (Ascend910_9392), 950 (Ascend950PR_9599)
# bfloat16 (ATC --precision_mode allow_mix_precision_bf16 / allow_fp32_to_bf16, --precision_mode_v2 mixed_bfloat16)
# exists only on the products the --precision_mode page lists (hicann/ge docs/zh/user_guides/atc_tools/
# CLI_options/--precision_mode.md, "bfloat16数据类型仅支持以下产品类型", read at ffdcbc9f, 2026-08):
# Atlas A2 training/inference (Ascend910B1-B4, B2C, B4-1; a bare Ascend910B is the first Ascend 910: hicann/ge
# device_capability.cc), Atlas A3 (Ascend910_93xx), Atlas 200I/500 A2 (Ascend310B1-B4) and Ascend 950PR/950DT.
# Not 310, 310P or the first 910.
BF16_SOC_RE = re.compile(r"^Ascend(910B[1-4]|910B2C|910B4-1|910_93\d\d|310B[1-4]|950(PR|DT)_95\d\d)$")
BF16_CHIPS = ("Atlas A2 (Ascend910B1-B4), Atlas A3 (Ascend910_93xx), Atlas 200I/500 A2 (Ascend310B1-B4) and "
              "Ascend 950PR/950DT")
BF16_MODES = ("allow_mix_precision_bf16", "allow_fp32_to_bf16", "mixed_bfloat16")
SOC_EXAMPLES = "Ascend310, Ascend310P1/P3/P5/P7, Ascend310B1-B4, Ascend910, Ascend910B1-B4, Ascend910_9392"
SOC_HINT = ("Run `npu-smi info` on the device host: --soc is 'Ascend' + the Name column (310P3 -> "
            "Ascend310P3); on A3/950 parts use `npu-smi info -t board -i <id>` (<Chip Name>_<NPU Name>).")

# Flags the adapter sets itself; --extra must not repeat them (use the real option instead).
MANAGED_FLAGS = {
    "--framework": "(always 5, ONNX)", "--model": "--onnx", "--output": "--output",
    "--soc_version": "--soc", "--input_shape": "(read from the ONNX; use --bs/--dynamic-bs)",
    "--input_format": "(always NCHW)", "--dynamic_batch_size": "--dynamic-bs",
    "--precision_mode": "--precision", "--insert_op_conf": "--aipp", "--log": "--log",
}
OUTPUT_NAME_RE = re.compile(r"^[\w.\-/]+$")  # letters (incl. CJK), digits, _, -, . (and / for dirs)

SUCCESS_RE = re.compile(r"^ATC run success", re.M)
FAILED_RE = re.compile(r"^ATC run failed", re.M)
CODE_RE = re.compile(r"^(E[0-9A-Z]{5}):\s*(.*)$")
NO_PARSER_RE = re.compile(r"No parser is registered for Op \[[^\]]*\]")

CODE_HINTS = {
    "E10001": "ATC rejected a parameter value: check --bs / --dynamic-bs / --extra.",
    "E10016": "The --input_shape name does not match the ONNX graph input; pass the ONNX you exported.",
    "E16005": ("The ONNX has several opset/domain imports; ATC allows one. Re-export with "
               "`ssdconvert export --opset 11`."),
    "E19999": "Internal ATC error; rerun with --log info and read the plog under ~/ascend/log/.",
    "EZ9999": "Internal ATC error; rerun with --log info and read the plog under ~/ascend/log/.",
}
# Known environment failures printed before ATC even starts (third-party FAQ, not checked against CANN
# release notes: ascend-ai-coding/awesome-ascend-skills atc-model-converter/references/FAQ.md).
ENV_ERRORS = (
    (re.compile(r"cannot pickle 'FrameLocalsProxy'"),
     "ATC's op compiler needs the CANN Python (3.7-3.10 for older CANN), not Python 3.11+."),
    (re.compile(r"np\.float_|numpy.*has no attribute 'float_'"),
     "ATC's op compiler needs NumPy < 2 in the Python CANN uses."),
    (re.compile(r"No module named '?\w+"), "A Python package ATC needs is missing from CANN's Python."),
    (re.compile(r"error while loading shared libraries"),
     "The CANN environment is not sourced (set_env.sh)."),
)


# How ATC's ONNX parser maps the ops of a detector graph with NMS in it, read in the CANN op plugins
# (canndev ops/built-in/framework/onnx_plugin: non_max_suppression_plugin.cc, topk_plugin.cc,
# scatter_nd_plugin.cc; the 2025 CANN RoiAlign plugin; the NonMaxSuppressionV6 op proto). Not run
# on hardware: the build log's W11001 lines and ATC's errors have the last word.
ATC_OP_NOTES = {
    "NonMaxSuppression": (
        "ATC parses it as NonMaxSuppressionV6 (int32 selected_indices; the op's documentation marks it experimental "
        "and asks for float16 boxes and scores). Older CANN registers it for ONNX opsets 10-13 only: on `No parser "
        "is registered for Op [ai.onnx::16::NonMaxSuppression]` export with --opset 11. Its output length depends "
        "on the data, so ATC may build a dynamic-shape model (<name>_<os>_<arch>.om) and may refuse batch gears "
        "(\"networks with data-dependent intermediate shapes are not supported\"): then build one static .om per "
        "batch."),
    "RoiAlign": (
        "ATC parses it as ROIAlign with roi_end_mode 0 (no half-pixel shift: the legacy aligned=False geometry) at "
        "opsets 11-15, and at opsets 16-18 only when coordinate_transformation_mode is output_half_pixel, as the "
        "export writes it; an opset-16 RoiAlign without the attribute runs shifted (roi_end_mode 2). It casts the "
        "int64 batch indices to float and concatenates them with the boxes."),
    "TopK": "ATC parses TopK for opsets 10-13 in older CANN, 10-18 in newer (ONNX TopK: ties to the lower index).",
    "ScatterND": "ATC parses ScatterND as TensorScatterUpdate (older CANN) or a ScatterNd subgraph (opsets 8-18).",
}
NMS_HINT = ("The graph runs NonMaxSuppression on the device: if ATC refuses it (or its data-dependent output with "
            "--dynamic-bs), build a static --bs or export with --opset 11")
INT64_OUTPUT_NOTE = ("int64 outputs ({names}) are kept as int64 unless --output_type says otherwise; eval reads "
                     "int64 or int32 results (do not pass a global --output_type=FP32: int32 and float32 files "
                     "have the same size)")


def op_notes(onnx: Path) -> list[str]:
    """The ATC notes for the ops and output types of `onnx` that need them (ATC_OP_NOTES); the note on NMS names
    the variants the model's family splits into device models and a host stage (variants_note)."""
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx), load_external_data=False)
    present = {node.op_type for node in model.graph.node}
    variants = variants_note(onnx)
    notes = [f"{op}: {text}" + (f" Or {variants}." if op == "NonMaxSuppression" and variants else "")
             for op, text in ATC_OP_NOTES.items() if op in present]
    wide = [o.name for o in model.graph.output if o.type.tensor_type.elem_type == onnx_lib.TensorProto.INT64]
    if wide:
        notes.append(INT64_OUTPUT_NOTE.format(names=", ".join(wide)))
    return notes


def variants_note(onnx: Path) -> str:
    """`or export --variant NAME (...)` for the variants of the zoo model that the export record `<onnx>.json`
    names (ModelSpec.composite: device models and a host stage), or "" (no record, no such variant)."""
    from ssdconvert.errors import SsdConvertError
    from ssdconvert.zoo import get_spec

    name = build_record(onnx).get("model")
    try:
        variants = list(get_spec(name).composite) if isinstance(name, str) else []
    except SsdConvertError:
        return ""
    return " or ".join(f"export --variant {v} ({name} as device models with a host stage between them)"
                       for v in variants)


def nms_hint(onnx: Path) -> str:
    """What to do when ATC refuses a graph with NonMaxSuppression on the device."""
    variants = variants_note(onnx)
    return f"{NMS_HINT}{', or ' + variants if variants else ''}."


def validate_soc(soc: str) -> str:
    soc = (soc or "").strip()
    if soc in KNOWN_SOCS or SOC_RE.match(soc):
        return soc
    suggestion = ""
    folded = {known.lower(): known for known in KNOWN_SOCS}
    fixed = folded.get(soc.lower()) or folded.get(f"ascend{soc.lower()}")
    if fixed:
        suggestion = f" Did you mean {fixed}?"
    raise CompilerError(f"unknown --soc '{soc}' (known families: {SOC_EXAMPLES}, ...).{suggestion} {SOC_HINT}")


def bf16_refusal(soc: str, modes: Sequence[str | None]) -> str | None:
    """Why ATC cannot build any of the precision `modes` (a --precision_mode or --precision_mode_v2 value) for
    `soc`, or None: bfloat16 exists only on the chips BF16_SOC_RE matches."""
    wanted = next((m for m in modes if m in BF16_MODES), None)
    if wanted is None or BF16_SOC_RE.match(soc or ""):
        return None
    return f"{wanted} needs bfloat16, which {soc} does not have: ATC builds bfloat16 only for {BF16_CHIPS}"


def validate_precision(precision: str | None) -> str | None:
    if precision is None or precision in PRECISION_MODES:
        return precision
    raise CompilerError(f"unknown --precision '{precision}'; ATC's --precision_mode takes "
                        f"{', '.join(PRECISION_MODES)} (default {ATC_DEFAULT_PRECISION})")


def normalise_gears(gears: Sequence[int]) -> list[int]:
    values = sorted({int(g) for g in gears})
    if len(values) < 2 or len(values) > 100:
        raise CompilerError(f"--dynamic-bs needs 2 to 100 distinct batch sizes (ATC gears), got {values}; "
                            "for one batch size use --bs")
    if values[0] < 1 or values[-1] > 2048:
        raise CompilerError(f"--dynamic-bs values must be in 1..2048, got {values}")
    return values


def validate_extra(extra: Sequence[str]) -> list[str]:
    extra = [str(e) for e in extra]
    if extra and not extra[0].startswith("--"):
        raise CompilerError(f"--extra must be ATC flags such as '--op_select_implmode=high_precision', "
                            f"got {extra[0]!r}")
    for item in extra:
        if item.startswith("--"):
            name = item.split("=", 1)[0]
            if name in MANAGED_FLAGS:
                raise CompilerError(f"--extra {item}: the adapter sets {name} itself; use {MANAGED_FLAGS[name]}")
    return extra


def default_output(onnx: Path, batch: int | None, gears: Sequence[int] | None, precision: str | None,
                   aipp: bool) -> Path:
    """`build/ssd_resnet34_bs16.onnx` -> `build/ssd_resnet34_bs16` (+ _<precision>, _aipp)."""
    stem = re.sub(r"_bs\d+$", "", onnx.stem)
    name = f"{stem}_dynbs{'-'.join(map(str, gears))}" if gears else f"{stem}_bs{batch}"
    if precision:
        name += f"_{precision}"
    if aipp:
        name += "_aipp"
    return onnx.parent / name


def strip_om(output: str | Path) -> Path:
    text = str(output)
    if text.endswith(".om"):
        text = text[: -len(".om")]
    if not text or text.endswith("/"):
        raise CompilerError(f"--output {output!r} must name a file (without .om), e.g. build/ssd_bs16")
    if not OUTPUT_NAME_RE.match(text):
        raise CompilerError(f"--output {output!r}: ATC accepts only letters, digits, '_', '-' and '.' "
                            "in output paths")
    return Path(text)


def resolve_om(out: Path, outcome=None) -> Path | None:
    """`<out>.om`, else the newest `<out>_<os>_<arch>.om` (dynamic-shape builds; ATC docs: --output).

    With `outcome`, only files written by that run count (a stale model from an earlier build
    must not pass for a fresh one).
    """
    plain = out.with_name(out.name + ".om")
    candidates = [plain] + sorted(out.parent.glob(f"{_glob_escape(out.name)}_*_*.om"),
                                  key=lambda p: p.stat().st_mtime, reverse=True)
    if outcome is None:
        return next((c for c in candidates if c.is_file()), None)
    if fresh(plain, outcome):
        return plain
    return next((c for c in candidates[1:] if fresh(c, outcome)), None)


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


# ----------------------------------------------------------------------------------------- AIPP


def aipp_values(transform: ImageTransform, label: str = "model") -> list[dict]:
    """Per-channel AIPP constants that reproduce `transform`'s normalisation from uint8 input.

    The model wants x = (v*scale - mean)/std = (v - mean/scale) / (std/scale); AIPP computes
    x = (v - mean_chn - min_chn) * var_reci_chn with an integer (uint8) mean_chn, so the mean is
    split into its integer part and an fp16 remainder. Channels are in the network's order (after
    AIPP's R<->B swap, which comes first in the hardware).
    """
    t = transform
    channels = []
    for c, (mean, std) in enumerate(zip(t.mean, t.std)):
        pixel_mean = mean / t.scale
        pixel_std = std / t.scale
        mean_chn = int(math.floor(pixel_mean + 1e-9))
        min_chn = pixel_mean - mean_chn
        var_reci = 1.0 / pixel_std
        if not 0 <= mean_chn <= 255:
            raise CompilerError(f"{label}: mean {mean} / scale {t.scale} = {pixel_mean:g} does not fit "
                                "AIPP's uint8 mean_chn")
        if not 0 < abs(var_reci) <= 65504:
            raise CompilerError(f"{label}: 1/std in pixel units ({var_reci:g}) is outside fp16 range")
        channels.append({"channel": c, "name": t.channel_order[c], "mean": mean, "std": std,
                         "pixel_mean": pixel_mean, "pixel_std": pixel_std,
                         "mean_chn": mean_chn, "min_chn": min_chn, "var_reci_chn": var_reci})
    return channels


def aipp_config_text(transform: ImageTransform, label: str = "model") -> str:
    """The `--insert_op_conf` file: static AIPP, uint8 HWC in (the transform's raw pixel order), the
    transform's channel swap and normalisation."""
    from ssdconvert import __version__

    t = transform
    ch = aipp_values(t, label)
    order, raw = t.channel_order.upper(), t.raw_order.upper()
    swap = order != raw  # the .om gets the bins' raw order; AIPP swaps R<->B first when the model wants the other
    lines = [
        f"# AIPP config for {label}, written by ssdconvert {__version__}.",
        "# Pass to ATC with --insert_op_conf. Device-side normalisation: the .om input becomes uint8",
        f"# NHWC {raw}, {t.height}x{t.width}x3 = {t.height * t.width * 3} bytes per image: un-normalised pixels,",
        "# resized on the host, as `ssdconvert preprocess --dtype uint8` writes them (HWC).",
        f"# rbuv_swap_switch {'true: R<->B swapped first, ' + raw + ' -> ' + order if swap else 'false: already ' + order}.",
        "#",
        "# The model expects   x = (v * scale - mean_c) / std_c",
        f"#   scale = {t.scale:.9g}, mean = {tuple(t.mean)}, std = {tuple(t.std)}, order {order}",
        "# which for uint8 v is   x = (v - mean_c/scale) / (std_c/scale).",
        "# AIPP computes        x = (v - mean_chn_c - min_chn_c) * var_reci_chn_c   (uint8 -> fp16)",
        "# with mean_chn a uint8, so:",
        "#   mean_chn_c     = floor(mean_c / scale)",
        "#   min_chn_c      = mean_c / scale - mean_chn_c      (fp16, the fractional remainder)",
        "#   var_reci_chn_c = 1 / (std_c / scale)              (fp16)",
    ]
    for c in ch:
        lines.append(
            f"#   channel {c['channel']} ({c['name']}): mean/scale = {c['pixel_mean']:.6g} -> mean_chn "
            f"{c['mean_chn']} + min_chn {c['min_chn']:.6g}; std/scale = {c['pixel_std']:.6g} -> "
            f"var_reci_chn {c['var_reci_chn']:.7g}")
    lines += [
        "# fp16 storage of min_chn and var_reci_chn (relative rounding <= 2^-11) and fp16 arithmetic",
        "# in AIPP are the only deviation from the host-side float32 normalisation.",
        "# Hardware order: channel swap -> crop -> colour-space conversion -> normalise -> padding.",
        "aipp_op {",
        "    aipp_mode: static",
        "    related_input_rank: 0",
        "    input_format: RGB888_U8",
        f"    src_image_size_w: {t.width}",
        f"    src_image_size_h: {t.height}",
        "    crop: false",
        "    csc_switch: false",
        f"    rbuv_swap_switch: {'true' if swap else 'false'}",
    ]
    for key in ("mean_chn", "min_chn", "var_reci_chn"):
        for c in ch:
            value = c[key]
            text = str(value) if key == "mean_chn" else f"{value:.9g}"
            lines.append(f"    {key}_{c['channel']}: {text}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_aipp_config(path: Path, transform: ImageTransform, label: str = "model") -> Path:
    from ssdconvert.fileio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(aipp_config_text(transform, label))
    return path


# ------------------------------------------------------------------------------------- build_om


def _batch(onnx: Path, onnx_batch: int | None, batch: int | None, gears: list[int] | None) -> tuple[int | None, str]:
    """(the static batch, where it comes from); (None, "") for gears."""
    if gears:
        if onnx_batch is not None:
            raise CompilerError(f"{onnx} has a fixed batch of {onnx_batch}; batch gears need a dynamic-batch "
                                "export (ssdconvert export without --static-batch)")
        return None, ""
    source = "--bs"
    if batch is None:
        batch, source = _default_batch(onnx, onnx_batch)
    if batch < 1:
        raise CompilerError(f"--bs must be >= 1, got {batch}")
    if onnx_batch is not None and batch != onnx_batch:
        raise CompilerError(f"{onnx} has a fixed batch of {onnx_batch}, not {batch}; re-export with "
                            f"a dynamic batch or use --bs {onnx_batch}")
    return batch, source


def _default_batch(onnx: Path, onnx_batch: int | None) -> tuple[int, str]:
    if onnx_batch is not None:
        return onnx_batch, "the ONNX's fixed batch"
    try:
        traced = int(build_record(onnx)["onnx"]["traced_batch"])
        return traced, f"the batch {onnx.name} was exported and validated at"
    except (KeyError, TypeError, ValueError):
        return 1, "default"


def _write_aipp(out: Path, onnx: Path, transform: ImageTransform | None, model_name: str | None) -> Path:
    """`<out>.aipp.cfg` for `transform`, else for the zoo model `model_name` (the export record's by default)."""
    if transform is None:
        if model_name is None:
            raise CompilerError(f"--aipp folds the model's normalisation into the .om: pass --model (no export record "
                                f"{onnx.name}.json names the model)")
        from ssdconvert.zoo import get_spec

        transform = get_spec(model_name).transform
    path = out.with_name(out.name + ".aipp.cfg")
    write_aipp_config(path, transform, model_name or "model")
    return path


def build_om(
    onnx: Path,
    soc: str,
    *,
    batch: int | None = None,
    dynamic_batches: Sequence[int] | None = None,
    precision: str | None = None,
    output: Path | None = None,
    aipp: bool = False,
    log_level: str = "error",
    extra: Sequence[str] = (),
    tool: str | None = None,
    timeout: float = 3600,
    dry_run: bool = False,
    model_name: str | None = None,
    transform: ImageTransform | None = None,
    progress: Progress | None = None,
) -> CompileResult:
    """Build an Ascend .om from `onnx` with ATC; static batch, or batch gears (`dynamic_batches`).

    Writes `<output>.om` (or `<output>_<os>_<arch>.om`), `<output>.atc.log`, `<om>.json` and, with
    `aipp`, `<output>.aipp.cfg` derived from `transform` (default: that of the zoo model `model_name`, by
    default the one the ONNX's export record names). A dry run returns the command without running (the
    AIPP config is still written so the printed command can be run as is).
    """
    onnx = Path(onnx)
    soc = validate_soc(soc)
    precision = validate_precision(precision)
    if log_level not in LOG_LEVELS:
        raise CompilerError(f"unknown --log '{log_level}'; ATC takes {', '.join(LOG_LEVELS)}")
    extra = validate_extra(extra)
    refusal = bf16_refusal(soc, [precision, _extra_value(extra, "--precision_mode_v2")])
    if refusal:
        raise CompilerError(refusal)
    if batch is not None and dynamic_batches:
        raise CompilerError("give either --bs (one static batch) or --dynamic-bs (gears), not both")

    info = read_onnx(onnx)
    inputs = info.batched_inputs()
    gears = normalise_gears(dynamic_batches) if dynamic_batches else None
    batch, batch_source = _batch(onnx, info.batch, batch, gears)
    shapes = {i.name: [-1 if gears else batch, *i.shape] for i in inputs}
    if aipp and len(inputs) > 1:
        raise CompilerError(f"{onnx} has {len(inputs)} inputs ({', '.join(shapes)}); --aipp normalises one "
                            "uint8 image input and this model takes float32 tensors only")

    out = strip_om(output) if output is not None else default_output(onnx, batch, gears, precision, aipp)
    log_path = log_path_for(out, "atc")
    model_name = model_name or build_record(onnx).get("model")
    aipp_path = _write_aipp(out, onnx, transform, model_name) if aipp else None
    argv = resolve_command(TOOL, tool, dry_run=dry_run) + [
        "--framework=5", f"--model={onnx}", f"--output={out}", "--input_format=NCHW",
        "--input_shape=" + ";".join(f"{name}:{','.join(map(str, dims))}" for name, dims in shapes.items()),
        f"--soc_version={soc}", f"--log={log_level}",
        *([f"--precision_mode={precision}"] if precision else []),
        *([f"--dynamic_batch_size={','.join(map(str, gears))}"] if gears else []),
        *([f"--insert_op_conf={aipp_path}"] if aipp_path else []), *extra]
    record = {
        "tool": "atc", "model": model_name, "soc": soc, "precision": precision or ATC_DEFAULT_PRECISION,
        "precision_source": "--precision" if precision else "ATC default",
        "batch": batch, "batch_source": None if gears else batch_source, "dynamic_batches": gears,
        **_input_record(inputs, shapes, aipp), "op_notes": op_notes(onnx),
        "aipp_config": str(aipp_path) if aipp_path else None,
        "output_type": _extra_value(extra, "--output_type") or f"{info.output_dtype} (ATC default: follows the ONNX)",
        "source_onnx": {"path": str(onnx.resolve()), "opset": info.opset},
    }
    if dry_run:
        return CompileResult([out.with_name(out.name + ".om")], argv, 0.0, log_path, tool="atc",
                             dry_run=True, info=record)
    return _run_atc(onnx, argv, out, log_path, record, timeout, progress)


def _input_record(inputs, shapes: dict[str, list[int]], aipp: bool) -> dict:
    """The record's `input` (the first) and `inputs`: uint8 NHWC with AIPP, else the ONNX's dtype, NCHW."""
    first = inputs[0]
    return {"input": {"name": first.name, "shape": shapes[first.name], "dtype": "uint8" if aipp else first.dtype,
                      "layout": "NHWC" if aipp else "NCHW"},
            "inputs": [{"name": i.name, "shape": shapes[i.name], "dtype": "uint8" if aipp else i.dtype}
                       for i in inputs]}


def _run_atc(onnx: Path, argv: list[str], out: Path, log_path: Path, record: dict, timeout: float,
             progress: Progress | None) -> CompileResult:
    """Run ATC, check it said `ATC run success` and wrote a fresh .om, and write the build record."""
    outcome = run_tool(argv, log_path=log_path, timeout=timeout, progress=progress)
    success = bool(SUCCESS_RE.search(outcome.output.replace("\r", "\n")))
    if not (outcome.ok_exit and success):
        errors, codes, hint = parse_failure(outcome.output)
        if any(note.startswith("NonMaxSuppression:") for note in record["op_notes"]):
            hint = " ".join(filter(None, [hint, nms_hint(onnx)]))
        if outcome.ok_exit and not success and not errors:
            raise ToolFailedError(
                f"atc exited with code 0 but never printed 'ATC run success'; treating the build as failed. "
                f"Full log: {log_path}", returncode=0, log_path=log_path)
        raise_failure("atc", outcome, log_path, error_lines=errors, codes=codes, hint=hint, timeout=timeout)

    om = resolve_om(out, outcome)
    if om is None:
        check_artefacts("atc", [out.with_name(out.name + ".om")], outcome, log_path)  # raises the clear error
    check_artefacts("atc", [om], outcome, log_path)
    warnings = [ln for ln in outcome.lines() if re.match(r"^W[0-9]{5}:", ln)]
    record.update({
        "artefact": str(om), "command": argv, "log": str(log_path), "seconds": round(outcome.seconds, 2),
        "os_arch_suffix": om.name != out.name + ".om", "warnings": warnings,
    })
    record["source_onnx"]["sha256"] = sha256_of(onnx)
    sidecar = write_sidecar(om, record)
    return CompileResult([om], argv, outcome.seconds, log_path, tool="atc", sidecar=sidecar, info=record)


def parse_failure(output: str) -> tuple[list[str], list[str], str]:
    """(error lines, E-codes, hint) from ATC's stdout."""
    raw = [ln for ln in output.replace("\r", "\n").splitlines() if ln.strip()]
    lines = [ln.strip() for ln in raw]
    errors, codes = [], []
    in_error = False  # indented lines right after an E-code line continue its message
    for raw_line, ln in zip(raw, lines):
        m = CODE_RE.match(ln)
        if m:
            errors.append(ln)
            codes.append(m.group(1))
            in_error = True
        elif NO_PARSER_RE.search(ln):
            errors.append(ln)
            in_error = False
        elif in_error and raw_line[:1].isspace() and not ln.startswith("TraceBack"):
            errors[-1] += " " + ln
        else:
            in_error = False
    hints = [CODE_HINTS[c] for c in dict.fromkeys(codes) if c in CODE_HINTS]
    if any(NO_PARSER_RE.search(e) for e in errors):
        hints.append("The ONNX opset is newer than this CANN parses (v11-v18 at best); "
                     "re-export with `ssdconvert export --opset 11`.")
    if not errors:
        for pattern, hint in ENV_ERRORS:
            hit = next((ln for ln in lines if pattern.search(ln)), None)
            if hit:
                errors.append(hit)
                hints.append(hint)
                break
    return errors, codes, " ".join(hints[:1])


def _extra_value(extra: Sequence[str], flag: str) -> str | None:
    for i, item in enumerate(extra):
        if item.startswith(flag + "="):
            return item.split("=", 1)[1]
        if item == flag and i + 1 < len(extra):
            return extra[i + 1]
    return None


# ------------------------------------------------------------------------------- for run and bench


# The precision names of `run` and `bench --precision` -> --precision_mode. fp16 passes no flag:
# ATC's default is force_fp16, so the om is built exactly as the reference scripts build it. bf16 is the
# BF16 mixed mode (there is no force_bf16). INT8 is AMCT's job (Backend.int8_note); a raw ATC mode passes through.
MODES = {None: None, "fp16": None, "fp32": "force_fp32", "bf16": "allow_mix_precision_bf16"}


def precision_mode(precision: str | None) -> str | None:
    if precision in MODES:
        return MODES[precision]
    if precision in PRECISION_MODES:
        return precision
    raise CompilerError(f"ATC builds fp16 (its default force_fp16), fp32 or bf16, or an ATC --precision_mode "
                        f"({', '.join(PRECISION_MODES)}); not {precision!r}")


def build_static(onnx: Path, out_dir: Path, batch: int, precision: str | None, soc: str,
                 tool: str | None) -> CompileResult:
    """One static .om at `batch` for `run` and `bench`: `<out_dir>/<onnx stem>_bs<batch>[_<precision>].om`, at a
    precision name of theirs (or a raw ATC mode)."""
    mode = precision_mode(precision)
    name = f"{onnx.stem}_bs{batch}" + (f"_{precision}" if mode else "")
    return build_om(onnx, soc, batch=batch, precision=mode, output=out_dir / name, tool=tool)
