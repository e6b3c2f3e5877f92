#!/usr/bin/env python3
"""Fake Cambricon MagicMind build tool (the gen_model.py / mm_build command line) for tests.

Contract source: the argparse flags of Cambricon/magicmind_cloud
`buildin/python_common/build_param.py` (release v1.7). Like that tool it is an argparse program: an
unknown or malformed flag prints `usage: ...` and `error: ...` on stderr and exits 2. Run it with an
interpreter that has `onnx` (the project venv).

What it checks beyond argparse (exit 1 with a `RuntimeError: ...` line, like an uncaught
exception in the Python tool):
  * exactly one framework input, and it is `--onnx` (the fake builds nothing else);
  * `--input_dims` has the ONNX input's rank and its fixed C/H/W; its N equals `--batch_size`;
  * `--dynamic_shape true` needs both `--dim_range_min` and `--dim_range_max`, min <= max;
  * `--means` and `--vars` come together; `qint*` precisions need calibration data:
    `--random_calib_range`, or `--calibration_data_path` with `--file_list` (build_param.py: the
    path "MUST input with file_list" and the lists "MUST input with calibration_data_path"), one
    list per model input; every listed file must exist under the path [the fake's reading of
    "Directory for calibration data"; how a network's CalibData joins them is unverified].

Output: the model is written exactly at `--magicmind_model` (default `./model`, no extension
added). No stdout protocol is documented for the build tool, so the two lines this fake
prints (`[fake mm_build] ...`) are its own; the adapter must not depend on them.

Test-only knobs (environment):
  FAKE_MM_MODE=crash        die by SIGSEGV before printing anything
  FAKE_MM_MODE=hang         print one line, then sleep for an hour
  FAKE_MM_MODE=no-artefact  exit 0 without writing the model
  FAKE_MM_MODE=fail         print a traceback ending in `RuntimeError: [MMERROR] ...`, exit 1
  FAKE_MM_ARGV_LOG=<file>   append each call's argv as one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

PRECISIONS = ["force_float32", "force_float16", "qint16_mixed_float16", "qint8_mixed_float16",
              "qint16_mixed_float32", "qint8_mixed_float32"]
ARCHS = ["mtp_220", "mtp_270", "mtp_290", "mtp_372", "tp_322", "mtp_592"]
BOOL = ["true", "false"]
LAYOUTS = ["NCHW", "NHWC", "NCT", "NTC", "NCDHW", "NDHWC"]
DTYPES = ["INT8", "INT16", "INT32", "UINT8", "UINT16", "UINT32", "HALF", "FLOAT", "BOOL", "QINT8", "QINT16"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mm_build", allow_abbrev=False)
    config = p.add_argument_group("config")
    config.add_argument("--input_dims", type=int, nargs="+", action="append")
    config.add_argument("--batch_size", type=int, nargs="+")
    config.add_argument("--rgb2bgr", choices=BOOL, default="false")
    builder = p.add_argument_group("builder")
    builder.add_argument("--mlu_arch", choices=ARCHS, default="mtp_372")
    builder.add_argument("--cluster_num", type=int, nargs="+", action="append")
    builder.add_argument("--precision", choices=PRECISIONS, default="force_float32")
    builder.add_argument("--means", type=float, nargs="+")
    builder.add_argument("--vars", type=float, nargs="+")
    builder.add_argument("--toolchain_path")
    builder.add_argument("--input_layout", choices=LAYOUTS, nargs="+")
    builder.add_argument("--output_layout", choices=LAYOUTS, nargs="+")
    builder.add_argument("--dim_range_min", type=int, nargs="+")
    builder.add_argument("--dim_range_max", type=int, nargs="+")
    builder.add_argument("--build_config")
    builder.add_argument("--dynamic_shape", choices=BOOL, default="true")
    builder.add_argument("--computation_preference", choices=["auto", "fast", "high_precision"], default="auto")
    builder.add_argument("--type64to32_conversion", choices=BOOL, default="false")
    builder.add_argument("--conv_scale_fold", choices=BOOL, default="false")
    calib = p.add_argument_group("calibration")
    calib.add_argument("--device_id", type=int, default=0)
    calib.add_argument("--random_calib_range", type=float, nargs="*")
    calib.add_argument("--file_list", nargs="+")
    calib.add_argument("--calibration_data_path")
    calib.add_argument("--calibration", choices=BOOL, default="false")
    calib.add_argument("--rpc_server")
    calib.add_argument("--calibration_algo", choices=["linear", "eqnm"], default="linear")
    calib.add_argument("--weight_quant_granularity", choices=["per_tensor", "per_axis"], default="per_tensor")
    calib.add_argument("--activation_quant_algo", choices=["symmetric", "asymmetric"], default="symmetric")
    serialise = p.add_argument_group("serialise")
    serialise.add_argument("--input_dtypes", choices=DTYPES, nargs="+")
    serialise.add_argument("--output_dtypes", choices=DTYPES, nargs="+")
    serialise.add_argument("--magicmind_model", default="./model")
    serialise.add_argument("--plugin_path", nargs="+")
    framework = p.add_argument_group("framework")
    framework.add_argument("--onnx")
    framework.add_argument("--pytorch_pt")
    framework.add_argument("--pt_input_dtypes", nargs="+")
    framework.add_argument("--tf_pb")
    framework.add_argument("--input_names", nargs="+")
    framework.add_argument("--output_names", nargs="+")
    framework.add_argument("--prototxt")
    framework.add_argument("--caffemodel")
    return p


def fail(message: str) -> int:
    print("Traceback (most recent call last):", file=sys.stderr)
    print('  File "gen_model.py", line 1, in <module>', file=sys.stderr)
    print(f"RuntimeError: {message}", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    log = os.environ.get("FAKE_MM_ARGV_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(argv) + "\n")
    mode = os.environ.get("FAKE_MM_MODE", "")
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    args = parser().parse_args(argv)  # exits 2 on unknown / malformed flags, like the real argparse tool
    print(f"[fake mm_build] building {args.magicmind_model} ({args.precision}, {args.mlu_arch})", flush=True)
    if mode == "hang":
        time.sleep(3600)
    if mode == "fail":
        return fail("[MMERROR] forced failure (FAKE_MM_MODE=fail)")

    frameworks = [f for f in ("onnx", "pytorch_pt", "tf_pb", "prototxt") if getattr(args, f)]
    if frameworks != ["onnx"]:
        return fail(f"exactly one framework input is required and this fake builds only --onnx, got {frameworks}")
    import onnx

    if not os.path.isfile(args.onnx):
        return fail(f"{args.onnx} does not exist")
    model = onnx.load(args.onnx, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [[d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
               for d in v.type.tensor_type.shape.dim] for v in model.graph.input if v.name not in inits]
    dims_list = args.input_dims or []
    if dims_list and len(dims_list) != len(inputs):
        return fail(f"--input_dims given for {len(dims_list)} inputs, the model has {len(inputs)}")
    for dims, model_dims in zip(dims_list, inputs):
        if len(dims) != len(model_dims):
            return fail(f"--input_dims {dims} has rank {len(dims)}, the model input has rank {len(model_dims)}")
        for given, fixed in zip(dims, model_dims):
            if given < 1 or (fixed != -1 and given != fixed):
                return fail(f"--input_dims {dims} does not fit the model input {model_dims}")
    if args.batch_size and dims_list and [d[0] for d in dims_list] != args.batch_size:
        return fail(f"--batch_size {args.batch_size} disagrees with --input_dims N {[d[0] for d in dims_list]}")
    if args.dynamic_shape == "true":
        if (args.dim_range_min is None) != (args.dim_range_max is None):
            return fail("--dim_range_min and --dim_range_max must be given together")
        if args.dim_range_min is None:
            return fail("--dynamic_shape true needs --dim_range_min and --dim_range_max")
        if len(args.dim_range_min) != len(args.dim_range_max) or any(
                a > b for a, b in zip(args.dim_range_min, args.dim_range_max)):
            return fail(f"bad dim range {args.dim_range_min} .. {args.dim_range_max}")
    elif any(-1 in dims for dims in inputs) and not dims_list:
        return fail("--dynamic_shape false with a dynamic model input needs --input_dims")
    if (args.means is None) != (args.vars is None):
        return fail("--means and --vars must be given together")
    if (args.calibration_data_path is None) != (args.file_list is None):
        return fail("--calibration_data_path MUST input with --file_list (and the other way round)")
    if args.file_list:
        if len(args.file_list) != len(inputs):
            return fail(f"--file_list gives {len(args.file_list)} list(s), the model has {len(inputs)} input(s)")
        for listed in args.file_list:
            if not os.path.isfile(listed):
                return fail(f"file list {listed} does not exist")
            with open(listed, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
            if not names:
                return fail(f"file list {listed} is empty")
            absent = [n for n in names if not os.path.isfile(os.path.join(args.calibration_data_path, n))]
            if absent:
                return fail(f"{absent[0]} (listed in {listed}) is not in {args.calibration_data_path}")
    if args.precision.startswith("qint") and not (args.file_list or args.random_calib_range):
        return fail(f"--precision {args.precision} needs calibration data")

    if mode != "no-artefact":
        target = args.magicmind_model
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        record = {"argv": argv, "precision": args.precision, "mlu_arch": args.mlu_arch,
                  "input_dims": dims_list, "dynamic_shape": args.dynamic_shape}
        with open(target, "wb") as f:
            f.write(b"FAKE-MAGICMIND\n" + json.dumps(record).encode() + b"\n")
    print(f"[fake mm_build] wrote {args.magicmind_model}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
