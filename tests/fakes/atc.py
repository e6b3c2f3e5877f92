#!/usr/bin/env python3
"""Fake Huawei `atc` (ONNX path, --mode=0) that honours the command-line contract strictly.

Contract source: the CANN ATC documentation in hicann/ge (`docs/zh/user_guides/atc_tools/`, read at
commit ffdcbc9f, 2026-08-21: every option name in CLI_options/, value sets, `--input_shape` and gears,
`--dynamic_dims`, `--input_fp16_nodes`, `--op_precision_mode`, `--enable_small_channel`,
`--precision_mode` with its bfloat16 product list, the `_<os>_<arch>` output rule, the AIPP template
AIPP/config_file_template.md) and hicann/ge api/atc/main_impl.cc (the stdout protocol, E-codes, exit
codes). It writes a small placeholder model instead of compiling anything.

Run it with an interpreter that has `onnx` (the project venv). Tests create an `atc` launcher that
execs this file, the way the real `atc` wrapper execs `atc.bin`.

What it checks (each failure prints the documented failure block and exits non-zero):
  * every argument is `--name=value` or `--name value` with a documented option name, given once;
    options it does not model beyond their name take any value;
  * `--framework=5` (the fake implements ONNX only), `--model` readable as ONNX, `--output`,
    `--soc_version` of a known family, `--input_format`, `--precision_mode` (exclusive with
    `--precision_mode_v2`), `--log`, `--output_type`, `--op_select_implmode`, `--host_env_os/cpu`,
    `--enable_small_channel` (0|1);
  * bfloat16 modes (`allow_mix_precision_bf16`, `allow_fp32_to_bf16`, `--precision_mode_v2=mixed_bfloat16`)
    only on the chips the --precision_mode doc lists: Atlas A2 (Ascend910B1..B4, B2C, B4-1), Atlas A3
    (Ascend910_93xx), Atlas 200I/500 A2 (Ascend310B1..B4), Ascend 950PR/950DT; not on 310, 310P or the
    first 910 (E10001, the wording is the fake's);
  * `--input_shape` names exist in the ONNX (else E10016), rank and fixed dims match (else
    E10001), a dynamic ONNX dim without `--input_shape` fails with E10001;
  * `--dynamic_batch_size`: 2..100 positive gears, `-1` only as the first dim (else E10001), and no
    op with a data-dependent output shape in the graph ("networks with data-dependent intermediate
    shapes are not supported"; the E10001 wording is the fake's);
  * `--dynamic_dims`: needs `--input_format=ND`, one value per `-1` of `--input_shape` in each of 2..100
    gears, and is exclusive with `--dynamic_batch_size`, `--dynamic_image_size` and `--insert_op_conf`;
    `--dynamic_image_size` needs `-1` at H and W; 950 parts allow up to 256 gears;
  * `--input_fp16_nodes` name graph inputs, not the AIPP input; `--op_precision_mode` names an existing .ini;
  * `--insert_op_conf`: `aipp_op { ... }` blocks with the template's fields, in range, input format
    NCHW/NHWC, `related_input_rank` an input of the model;
  * the ONNX has one opset import (else E16005) at ai.onnx opset <= 18 (else the code-less
    `No parser is registered for Op [ai.onnx::<v>::<op>]` line).
`--input_shape_range` (deprecated by the docs in favour of ranges inside --input_shape) is not modelled.

stdout protocol: first line `ATC start working now, please wait for a moment.`, progress dots,
a lone `...`, then `ATC run success, welcome to the next use.` (+ a W11001 warning line, exit 0)
or `ATC run failed, Please check the detail log, Try 'atc --help' for more information`, the
E-code line(s), an indented TraceBack block, and exit 255 (flag/parameter errors: GE status -1)
or 1 (model errors). The E-line wording for cases no public log shows is the fake's own.

Output: `<output>.om` for static and gear builds; `<output>_<host_env_os>_<host_env_cpu>.om` for
dynamic-shape builds (a bare `-1` without gears, a `lo~hi` range, or a data-dependent op such as
NonZero or NonMaxSuppression, whose output length depends on the data, in the graph). The file holds
`FAKE-OM` and a JSON record of the build, which the fake ais_bench (tests/fakes/ais_bench) runs: each
input's final shape, dtype and layout as the .om presents them. With AIPP the input at
`related_input_rank` becomes uint8 NHWC [N, src_h or H, src_w or W, C] ("AIPP ... input becomes
uint8 NHWC": AIPP/config_file_template.md, the --insert_op_conf doc); `--input_fp16_nodes` inputs
become float16; others keep the ONNX dtype, NCHW.

Test-only knobs (environment):
  FAKE_ATC_MODE=crash        die by SIGSEGV before printing anything
  FAKE_ATC_MODE=hang         print the first line, then sleep for an hour (timeout tests)
  FAKE_ATC_MODE=no-artefact  behave as success (exit 0, success line) but write no model
  FAKE_ATC_MODE=no-verdict   exit 0 after the first line, without a verdict line
  FAKE_ATC_MODE=fail:<CODE>  fail with <CODE> (E19999 prints the documented internal-error text)
  FAKE_ATC_ARGV_LOG=<file>   append each call's argv as one JSON line
  FAKE_ATC_DOTS=<n>          progress dots to print (default 3)
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import sys
import time

START = "ATC start working now, please wait for a moment."
SUCCESS = "ATC run success, welcome to the next use."
FAILED = "ATC run failed, Please check the detail log, Try 'atc --help' for more information"

# SoC names from CANN's platform tables (310P: 1/2/3/4/5/7 and the 310P3 virtual splits; A3 as
# <Chip Name>_<NPU Name>); ATC refuses others.
SOC_RE = re.compile(r"^Ascend(310|310P[1-57]|310P3vir0[1248]|310B[1-4]|910|910A|910ProA|910B|910ProB|910PremiumA|"
                    r"910B[1-4]|910B2C|910B4-1|910_93\d\d|950(PR|DT)_95\d\d)$")
# --precision_mode doc ("bfloat16数据类型仅支持以下产品类型"): Atlas A2 training/inference (910B1..B4; a bare
# Ascend910B is the first 910, hicann/ge device_capability.cc), Atlas A3, Atlas 200I/500 A2, Ascend 950PR/DT.
BF16_SOC_RE = re.compile(r"^Ascend(910B[1-4]|910B2C|910B4-1|910_93\d\d|310B[1-4]|950(PR|DT)_95\d\d)$")
BF16_MODES = {("precision_mode", "allow_mix_precision_bf16"), ("precision_mode", "allow_fp32_to_bf16"),
              ("precision_mode_v2", "mixed_bfloat16")}
VALUES = {
    "mode": {"0", "1", "3", "5", "6", "30"},
    "framework": {"0", "1", "3", "5"},
    "input_format": {"NCHW", "NCDHW", "ND", "NHWC", "NDHWC"},
    "precision_mode": {"force_fp16", "force_fp32", "cube_fp16in_fp32out", "allow_fp32_to_fp16",
                       "must_keep_origin_dtype", "allow_mix_precision", "allow_mix_precision_fp16",
                       "allow_mix_precision_bf16", "allow_fp32_to_bf16"},
    "precision_mode_v2": {"fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16",
                          "mixed_hif8", "cube_hif8"},
    "op_select_implmode": {"high_performance", "high_precision", "high_performance_for_all",
                           "high_precision_for_all"},
    "output_type": {"FP32", "FP16", "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "UINT64",
                    "INT64", "DOUBLE"},
    "log": {"debug", "info", "warning", "error", "null"},
    "host_env_os": {"linux"},
    "host_env_cpu": {"x86_64", "aarch64"},
    "buffer_optimize": {"l1_optimize", "l2_optimize", "off_optimize"},
    "op_compiler_cache_mode": {"enable", "disable", "force"},
    "enable_small_channel": {"0", "1"},
}
# Every option page of hicann/ge docs/zh/user_guides/atc_tools/CLI_options/ (ffdcbc9f); values not checked.
FREE_FORM = {
    "ac_parallel_enable", "aicore_num", "allow_hf32", "atomic_clean_policy", "check_report", "cluster_config",
    "compression_optimize_conf", "core_type", "customize_dtypes", "debug_dir", "deterministic",
    "deterministic_level", "disable_reuse_memory", "display_model_info", "dump_mode", "dynamic_batch_size",
    "dynamic_dims", "dynamic_image_size", "enable_attr_compression", "enable_scope_fusion_passes",
    "enable_single_stream", "export_compile_stat", "external_weight", "fusion_switch_file",
    "h2d_overlapped_with_compute", "hccl_sub_comm_config", "input_fp16_nodes", "input_shape", "input_shape_range",
    "insert_op_conf", "is_input_adjust_hw_layout", "is_output_adjust_hw_layout", "is_weight_clip", "jit_compile",
    "json", "keep_dtype", "mdl_bank_path", "model", "modify_mixlist", "multi_stream_parallel_mode", "om",
    "oo_constant_folding", "oo_dead_code_elimination", "oo_level", "op_bank_path", "op_compiler_cache_dir",
    "op_debug_config", "op_debug_level", "op_name_map", "op_precision_mode", "optimization_switch",
    "optypelist_for_implmode", "out_nodes", "output", "quant_dumpable", "raw_ge_options",
    "raw_ge_options_ignore_unsupported", "shape_generalized_build_mode", "singleop", "soc_version", "sparsity",
    "static_model_ops_lower_limit", "status_check", "tiling_schedule_optimize", "topo_sorting_mode",
    "virtual_type", "weight",
}
KNOWN = set(VALUES) | FREE_FORM
PARAM_ERROR_EXIT = 255  # GE status -1 as the shell sees it
MODEL_ERROR_EXIT = 1
DATA_DEPENDENT_OPS = {"NonZero", "Unique", "NonMaxSuppression"}

# AIPP fields of AIPP/config_file_template.md (hicann/ge 84719ef8) by type.
AIPP_INT = {"related_input_rank", "src_image_size_w", "src_image_size_h", "load_start_pos_w",
            "load_start_pos_h", "crop_size_w", "crop_size_h", "left_padding_size", "right_padding_size",
            "top_padding_size", "bottom_padding_size", "max_src_image_size", "resize_output_w", "resize_output_h",
            "rotation_angle", "raw_rgbir_to_f16_n",
            *(f"matrix_r{r}c{c}" for r in range(3) for c in range(3)),
            *(f"output_bias_{i}" for i in range(3)), *(f"input_bias_{i}" for i in range(3)),
            *(f"mean_chn_{i}" for i in range(4))}
AIPP_FLOAT = {*(f"min_chn_{i}" for i in range(4)), *(f"var_reci_chn_{i}" for i in range(4)), "padding_value",
              "cpadding_value"}
AIPP_BOOL = {"crop", "padding", "csc_switch", "rbuv_swap_switch", "ax_swap_switch", "support_rotation", "resize",
             "single_line_mode"}
AIPP_STRING = {"related_input_name"}
AIPP_ENUM = {"aipp_mode": {"static", "dynamic"},
             "input_format": {"YUV420SP_U8", "XRGB8888_U8", "RGB888_U8", "YUV400_U8", "ARGB8888_U8",
                              "YUYV_U8", "YUV422SP_U8", "AYUV444_U8", "RAW10", "RAW12", "RAW16", "RAW24"}}
AIPP_RANGES = {"mean_chn": (0, 255), "min_chn": (0, 255), "var_reci_chn": (-65504, 65504),
               "cpadding_value": (-65504, 65504), "rotation_angle": (0, 3), "raw_rgbir_to_f16_n": (0, 31)}
AIPP_CHANNELS = {"RGB888_U8": 3, "XRGB8888_U8": 4, "ARGB8888_U8": 4, "YUV400_U8": 1}


class AtcFailure(Exception):
    def __init__(self, lines, exit_code=PARAM_ERROR_EXIT):
        super().__init__(lines[0])
        self.lines = lines
        self.exit_code = exit_code


def e10001(value, param, reason):
    return AtcFailure([f"E10001: Value [{value}] for parameter [{param}] is invalid. Reason: {reason}"])


def parse_argv(argv):
    args, i = {}, 0
    while i < len(argv):
        item = argv[i]
        if not item.startswith("--") or item == "--":
            raise e10001(item, "argv", "arguments must be --name=value or --name value")
        if "=" in item:
            name, value = item[2:].split("=", 1)
        else:
            name = item[2:]
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise e10001(item, "--" + name, "the flag needs a value")
            value = argv[i + 1]
            i += 1
        if name not in KNOWN:
            raise e10001(item, "--" + name, "unknown option")
        if name in args:
            raise e10001(value, "--" + name, "the option is given more than once")
        if value == "" or value != value.strip() or value.startswith('"') or value.startswith("'"):
            raise e10001(value, "--" + name, "empty value, stray whitespace or shell quotes in the value")
        if name in VALUES and value not in VALUES[name]:
            raise e10001(value, "--" + name, f"valid values are {sorted(VALUES[name])}")
        args[name] = value
        i += 1
    return args


def load_onnx(path):
    import onnx

    if not os.path.isfile(path):
        raise e10001(path, "--model", "the file does not exist")
    try:
        return onnx.load(path, load_external_data=False)
    except Exception:
        raise AtcFailure([f"E10001: Value [{path}] for parameter [--model] is invalid. "
                          "Reason: the file cannot be parsed as ONNX."]) from None


def graph_inputs(model):
    """name -> (dims with -1 for a dynamic dim, numpy dtype name), in graph order."""
    from onnx import helper

    inits = {i.name for i in model.graph.initializer}
    out = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim]
        out[value.name] = (dims, helper.tensor_dtype_to_np_dtype(tensor.elem_type).name)
    return out


def parse_input_shape(text):
    shapes = {}
    for part in text.split(";"):
        if ":" not in part:
            raise e10001(text, "--input_shape", "expected name:d0,d1,... entries separated by ';'")
        name, dims = part.rsplit(":", 1)
        if not name or name in shapes:
            raise e10001(text, "--input_shape", "empty or repeated input name")
        parsed = []
        for d in dims.split(",") if dims else []:
            if re.fullmatch(r"-1|\d+", d):
                parsed.append(int(d))
            elif re.fullmatch(r"\d+~\d+", d):
                lo, hi = map(int, d.split("~"))
                if lo > hi:
                    raise e10001(d, "--input_shape", "range low > high")
                parsed.append(d)
            else:
                raise e10001(d, "--input_shape", "a dim must be an integer, -1 or lo~hi")
        shapes[name] = parsed
    return shapes


def gear_limit(soc):
    return 256 if soc.startswith("Ascend950") else 100


def parse_gears(text, soc):
    if not re.fullmatch(r"\d+(,\d+)*", text):
        raise e10001(text, "--dynamic_batch_size", "expected comma-separated positive integers")
    gears = [int(g) for g in text.split(",")]
    if not 2 <= len(gears) <= gear_limit(soc) or min(gears) < 1 or len(set(gears)) != len(gears):
        raise e10001(text, "--dynamic_batch_size", f"2 to {gear_limit(soc)} distinct positive gears are required")
    return gears


def _aipp_value(key, value):
    """One AIPP field's value, typed and range-checked."""
    if key in AIPP_INT:
        if not re.fullmatch(r"-?\d+", value):
            raise e10001(value, key, "integer expected")
        value = int(value)
    elif key in AIPP_FLOAT:
        try:
            value = float(value)
        except ValueError:
            raise e10001(value, key, "number expected") from None
    elif key in AIPP_BOOL:
        if value not in ("true", "false"):
            raise e10001(value, key, "true or false expected")
        return value == "true"
    elif key in AIPP_ENUM:
        if value not in AIPP_ENUM[key]:
            raise e10001(value, key, f"valid values are {sorted(AIPP_ENUM[key])}")
        return value
    elif key in AIPP_STRING:
        return value.strip('"')
    else:
        raise e10001(key, "--insert_op_conf", "unknown AIPP field")
    bounds = next((r for prefix, r in AIPP_RANGES.items() if key.startswith(prefix)), None)
    if bounds and not bounds[0] <= value <= bounds[1]:
        raise e10001(value, key, f"out of range [{bounds[0]}, {bounds[1]}]")
    return value


def check_aipp(path):
    if not os.path.isfile(path):
        raise e10001(path, "--insert_op_conf", "the file does not exist")
    text = re.sub(r"#[^\n]*", "", open(path, encoding="utf-8").read())
    blocks = re.findall(r"aipp_op\s*\{([^{}]*)\}", text)
    rest = re.sub(r"aipp_op\s*\{[^{}]*\}", "", text).strip()
    if not blocks or rest:
        raise e10001(path, "--insert_op_conf", "expected one or more aipp_op { ... } blocks")
    parsed = []
    for block in blocks:
        fields = {}
        for line in block.strip().splitlines():
            line = line.strip()
            if not line:
                continue
            m = re.fullmatch(r'(\w+)\s*:\s*("[^"]*"|\S+)', line)
            if not m:
                raise e10001(line, "--insert_op_conf", "malformed line")
            key, value = m.groups()
            if key in fields:
                raise e10001(key, "--insert_op_conf", "field given twice")
            fields[key] = _aipp_value(key, value)
        if "aipp_mode" not in fields or (fields["aipp_mode"] == "static" and "input_format" not in fields):
            raise e10001(path, "--insert_op_conf", "aipp_mode and input_format are required")
        for size in ("src_image_size_w", "src_image_size_h"):
            if size in fields and fields[size] != 0 and not 1 <= fields[size] <= 4096:
                raise e10001(fields[size], size, "out of range")
        parsed.append(fields)
    return parsed


def check_options(args):
    """The option rules that need no model: framework, soc, precision (bf16 per chip), output name."""
    if args.get("mode", "0") != "0":
        raise e10001(args["mode"], "--mode", "this fake implements --mode=0 only")
    for required in ("framework", "model", "output", "soc_version"):
        if required not in args:
            raise e10001("", "--" + required, "the option is required")
    if args["framework"] != "5":
        raise e10001(args["framework"], "--framework", "this fake implements ONNX (--framework=5) only")
    soc = args["soc_version"]
    if not SOC_RE.match(soc):
        raise e10001(soc, "--soc_version", "unsupported soc version; see npu-smi info")
    if "precision_mode" in args and "precision_mode_v2" in args:
        raise e10001(args["precision_mode_v2"], "--precision_mode_v2", "cannot be used with --precision_mode")
    for name, value in BF16_MODES:
        if args.get(name) == value and not BF16_SOC_RE.match(soc):
            raise e10001(value, "--" + name, f"bfloat16 is not supported on {soc} (Atlas A2/A3 training and "
                                             "inference series, Atlas 200I/500 A2 and Ascend 950PR/950DT only)")
    if "input_shape_range" in args:
        raise e10001(args["input_shape_range"], "--input_shape_range", "deprecated; not modelled by this fake")
    if "op_precision_mode" in args and not os.path.isfile(args["op_precision_mode"]):
        raise e10001(args["op_precision_mode"], "--op_precision_mode", "the .ini file does not exist")
    if not re.fullmatch(r"[\w.\-/]+", args["output"]):
        raise e10001(args["output"], "--output", "only letters, digits, '_', '-' and '.' are allowed")
    exclusive = [n for n in ("dynamic_batch_size", "dynamic_image_size", "dynamic_dims") if n in args]
    if len(exclusive) > 1:
        raise e10001(args[exclusive[1]], "--" + exclusive[1], f"cannot be used with --{exclusive[0]}")
    if "dynamic_dims" in args and "insert_op_conf" in args:
        raise e10001(args["dynamic_dims"], "--dynamic_dims", "cannot be used with --insert_op_conf")


def check_model(model):
    if len(model.opset_import) > 1:
        raise AtcFailure([f"E16005: The model has [{len(model.opset_import)}] [--domain_version] fields, "
                          "but only one is allowed."], MODEL_ERROR_EXIT)
    opset = model.opset_import[0].version if model.opset_import else 0
    if opset > 18:
        op = model.graph.node[0].op_type if model.graph.node else "Identity"
        raise AtcFailure([f"No parser is registered for Op [ai.onnx::{opset}::{op}]"], MODEL_ERROR_EXIT)


def final_shapes(args, inputs, gears):
    """name -> the dims the build uses, and whether the graph is dynamic-shape (bare -1 or lo~hi)."""
    shapes = parse_input_shape(args["input_shape"]) if "input_shape" in args else {}
    for name in shapes:
        if name not in inputs:
            raise AtcFailure([f"E10016: Opname [{name}] specified in [--input_shape] is not found in the model, "
                              "confirm whether this node name exists, or node is not split with the specified "
                              "delimiter ';'"])
    gear_mode = gears is not None or "dynamic_dims" in args or "dynamic_image_size" in args
    dynamic_shape, final = False, {}
    for name, (dims, _) in inputs.items():
        given = shapes.get(name)
        if given is None:
            if -1 in dims:
                raise e10001(-1, name, "maybe you should set input_shape to specify its shape.")
            final[name] = dims
            continue
        if len(given) != len(dims):
            raise e10001(args["input_shape"], "--input_shape", f"input [{name}] has rank {len(dims)}")
        for axis, (g, d) in enumerate(zip(given, dims)):
            if d != -1 and g != d and g != -1 and not isinstance(g, str):
                raise e10001(args["input_shape"], "--input_shape",
                             f"dim {axis} of [{name}] is {d} in the model, not {g}")
        if gears is not None and (given[0] != -1 or any(g == -1 for g in given[1:])):
            raise e10001(args["input_shape"], "--input_shape",
                         "with --dynamic_batch_size the -1 must be the first dim only")
        if not gear_mode and any(g == -1 or isinstance(g, str) for g in given):
            dynamic_shape = True  # bare -1 or lo~hi: a dynamic-shape (not gear) graph
        final[name] = given
    return final, dynamic_shape


def check_gear_options(args, final, soc):
    """--dynamic_batch_size's, --dynamic_dims' and --dynamic_image_size's rules against the final shapes."""
    if "dynamic_batch_size" in args and not any(dims and dims[0] == -1 for dims in final.values()):
        raise e10001(args["dynamic_batch_size"], "--dynamic_batch_size", "no input has a -1 batch dim")
    if "dynamic_dims" in args:
        if args.get("input_format") != "ND":
            raise e10001(args["dynamic_dims"], "--dynamic_dims", "needs --input_format=ND")
        unknowns = sum(d == -1 for dims in final.values() for d in dims)
        gears = args["dynamic_dims"].split(";")
        if not unknowns or not 2 <= len(gears) <= gear_limit(soc) or any(
                not re.fullmatch(r"\d+(,\d+)*", g) or len(g.split(",")) != unknowns for g in gears):
            raise e10001(args["dynamic_dims"], "--dynamic_dims",
                         f"2 to {gear_limit(soc)} gears of {unknowns} value(s), one per -1 in --input_shape")
    if "dynamic_image_size" in args:
        if not any(len(d) == 4 and d[2] == -1 and d[3] == -1 for d in final.values()):
            raise e10001(args["dynamic_image_size"], "--dynamic_image_size", "--input_shape needs -1 for H and W")


def input_records(args, inputs, final):
    """name -> the .om input: shape, dtype and layout (AIPP: uint8 NHWC; --input_fp16_nodes: float16)."""
    records = {name: {"shape": final[name], "dtype": dtype, "layout": "NCHW"} for name, (_, dtype) in inputs.items()}
    fp16 = [n for n in args.get("input_fp16_nodes", "").split(";") if n]
    for name in fp16:
        if name not in inputs:
            raise AtcFailure([f"E10016: Opname [{name}] specified in [--input_fp16_nodes] is not found in the model"])
        records[name]["dtype"] = "float16"
    aipp = None
    if "insert_op_conf" in args:
        fmt = args.get("input_format", "NCHW")
        if fmt not in ("NCHW", "NHWC"):
            raise e10001(fmt, "--input_format", "--insert_op_conf needs NCHW or NHWC")
        aipp = check_aipp(args["insert_op_conf"])
        names = list(inputs)
        for block in aipp:
            rank = block.get("related_input_rank", 0)
            if not 0 <= rank < len(names):
                raise e10001(rank, "related_input_rank", f"the model has {len(names)} input(s)")
            name = names[rank]
            if name in fp16:
                raise e10001(name, "--input_fp16_nodes", "cannot name the input --insert_op_conf applies AIPP to")
            n, _, h, w = records[name]["shape"]
            records[name] = {"shape": [n, block.get("src_image_size_h") or h, block.get("src_image_size_w") or w,
                                       AIPP_CHANNELS.get(block.get("input_format"), 3)],
                             "dtype": "uint8", "layout": "NHWC", "aipp": block}
    return records, aipp


def build(argv):
    args = parse_argv(argv)
    check_options(args)
    soc = args["soc_version"]
    fmt = args.get("input_format", "NCHW")
    if fmt not in ("NCHW", "NCDHW", "ND"):
        raise e10001(fmt, "--input_format", "ONNX models take NCHW, NCDHW or ND")
    model = load_onnx(args["model"])
    inputs = graph_inputs(model)
    check_model(model)
    gears = parse_gears(args["dynamic_batch_size"], soc) if "dynamic_batch_size" in args else None
    final, dynamic_shape = final_shapes(args, inputs, gears)
    check_gear_options(args, final, soc)
    data_dependent = sorted({node.op_type for node in model.graph.node if node.op_type in DATA_DEPENDENT_OPS})
    if data_dependent and gears is not None:
        raise e10001(args["dynamic_batch_size"], "--dynamic_batch_size",
                     f"the network has data-dependent intermediate shapes ({', '.join(data_dependent)})")
    if data_dependent:
        dynamic_shape = True  # unknown-shape partitions need host op libraries in the model
    records, aipp = input_records(args, inputs, final)

    out = args["output"]
    target = out[:-3] if out.endswith(".om") else out
    if dynamic_shape:
        target += f"_{args.get('host_env_os', 'linux')}_{args.get('host_env_cpu', platform.machine())}"
    return target + ".om", {"argv": argv, "soc_version": soc, "input_shape": final, "inputs": records,
                            "dynamic_batch_size": gears, "dynamic_dims": args.get("dynamic_dims"),
                            "precision_mode": args.get("precision_mode", "force_fp16"), "aipp": aipp,
                            "dynamic_shape": dynamic_shape}


def main(argv):
    log = os.environ.get("FAKE_ATC_ARGV_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(argv) + "\n")
    mode = os.environ.get("FAKE_ATC_MODE", "")
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if argv in (["--help"], ["-h"]):
        print("usage: atc <args>\n  --framework=5 --model=<onnx> --output=<name> --soc_version=<soc> ...")
        return 0
    print(START, flush=True)
    if mode == "hang":
        time.sleep(3600)
    if mode == "no-verdict":
        return 0
    for _ in range(int(os.environ.get("FAKE_ATC_DOTS", "3"))):
        print(".", end="", flush=True)
        time.sleep(0.01)
    print("\n...", flush=True)
    try:
        if mode.startswith("fail:"):
            code = mode.split(":", 1)[1]
            if code == "E19999":
                raise AtcFailure(["E19999: Internal Error!", "        An unknown error occurred. Please check the log."],
                                 MODEL_ERROR_EXIT)
            raise AtcFailure([f"{code}: forced failure (FAKE_ATC_MODE)"], MODEL_ERROR_EXIT)
        target, record = build(argv)
    except AtcFailure as failure:
        print(FAILED)
        for line in failure.lines:
            print(line)
        print("        TraceBack (most recent call last):")
        print("        [fake] no trace available")
        return failure.exit_code
    if mode != "no-artefact":
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with open(target, "wb") as f:
            f.write(b"FAKE-OM\n" + json.dumps(record).encode() + b"\n")
    print(SUCCESS)
    print("W11001: Op [Slice_29] does not hit the high-priority operator information library, "
          "which might result in compromised performance.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
