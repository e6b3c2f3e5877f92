"""The fake `python -m ais_bench` command line (see ais_bench/__init__.py)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from ais_bench.infer.interface import InferSession


def log(level: str, message: str) -> None:
    print(f"[{level}] {message}", flush=True)


def str2bool(v: str) -> bool:
    if v.lower() in ("1", "true"):
        return True
    if v.lower() in ("0", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid bool {v}")


def natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def device_list(value: str):
    """`0` -> 0; `0,1,2` -> [0, 1, 2] (one process per device), each in 0..255 as the tool checks."""
    items = [int(v) for v in value.split(",")]
    for v in items:
        if not 0 <= v <= 255:
            raise argparse.ArgumentTypeError(f"device:{value} is invalid. valid value range is [0, 255]")
    return items if "," in value else items[0]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="ais_bench")
    p.add_argument("--model", "-m", required=True)
    p.add_argument("--input", "-i", default=None)
    p.add_argument("--output", "-o", default=None)
    p.add_argument("--output_dirname", default=None)
    p.add_argument("--outfmt", default="BIN", choices=["NPY", "BIN", "TXT"])
    p.add_argument("--loop", "-l", type=int, default=1)
    p.add_argument("--warmup_count", "--warmup-count", type=int, default=1)
    p.add_argument("--device", "-d", type=device_list, default=0)
    p.add_argument("--batchsize", type=int, default=None)
    p.add_argument("--dymBatch", type=int, default=0)
    p.add_argument("--display_all_summary", type=str2bool, default=False)
    p.add_argument("--pure_data_type", default="zero", choices=["zero", "random"])
    p.add_argument("--output_batchsize_axis", type=int, default=0)
    p.add_argument("--debug", type=str2bool, default=False)
    return p.parse_args(argv)


def list_dir(folder: str) -> list[str]:
    names = [n for n in os.listdir(folder) if n.endswith((".bin", ".BIN", ".npy", ".NPY"))]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def input_lists(text: str, n_inputs: int) -> list[list[str]]:
    """Files per model input: one folder per input, or files cut into n_inputs contiguous chunks."""
    items = [s for s in text.split(",") if s]
    if os.path.isfile(items[0]):
        per = -(-len(items) // n_inputs)
        return [items[k * per:(k + 1) * per] for k in range(n_inputs)]
    if len(items) != n_inputs:
        raise RuntimeError(f"Invalid args. args input dir num:{len(items)} not equal to model inputs num:{n_inputs}")
    return [list_dir(folder) for folder in items]


def file_size(path: str) -> int:
    return int(np.load(path).nbytes) if path.lower().endswith(".npy") else os.path.getsize(path)


def read_file(path: str) -> bytes:
    return np.load(path).tobytes() if path.lower().endswith(".npy") else Path(path).read_bytes()


def stats(values, mangle: bool) -> dict:
    a = np.asarray(values if values else [0.0], dtype=np.float64)
    key = "percentile(99%" + " " * 28 + ")" if mangle else "percentile(99%)"
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "median": float(np.median(a)),
            key: float(np.percentile(a, 99)), "count": len(values)}


def fmt(block: dict) -> str:
    p = next(v for k, v in block.items() if k.startswith("percentile("))
    return (f"min = {block['min']}, max = {block['max']}, mean = {block['mean']}, median = {block['median']}, "
            f"percentile(99%) = {p}")


def split_for_devices(files: list[str], jobs: int, layout: str) -> list[list[str]]:
    """Contiguous blocks in device-list order: old = ceil(n/jobs) each (trailing devices may get
    none); new = floor(n/jobs), the first n % jobs devices one more."""
    if layout == "old":
        per = -(-len(files) // jobs)
        return [files[k * per:(k + 1) * per] for k in range(jobs)]
    base, left = divmod(len(files), jobs)
    out, head = [], 0
    for k in range(jobs):
        size = base + (1 if k < left else 0)
        out.append(files[head:head + size])
        head += size
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    fail = os.environ.get("FAKE_AIS_BENCH_FAIL", "")
    if args.output_dirname and not args.output:
        raise RuntimeError("output_dirname is valid only when output is set")
    if not os.path.isfile(args.model):
        raise RuntimeError(f"model path:{args.model} not exist")
    if isinstance(args.device, list):
        sys.exit(multidevice_run(args, fail))
    run_device(args, args.device, None if args.input is None else input_lists(args.input, n_inputs(args)),
               output_prefix(args, None), fail)


def n_inputs(args) -> int:
    session = InferSession(0, args.model)
    count = len(session.get_inputs())
    session.free_resource()
    return count


def output_prefix(args, device_dir: str | None) -> str | None:
    if not args.output:
        return None
    base = os.path.join(args.output, args.output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S"))
    return os.path.join(base, device_dir) if device_dir else base


def multidevice_run(args, fail: str) -> int:
    """One 'process' per device (run in turn here), the inputs split in contiguous blocks."""
    layout = os.environ.get("FAKE_AIS_BENCH_LAYOUT", "new")
    devices = args.device
    log("INFO", f"multidevice:{devices} run begin")
    splits = None
    if args.input is not None:
        per_input = input_lists(args.input, n_inputs(args))
        splits = [[] for _ in devices]
        for files in per_input:
            for k, part in enumerate(split_for_devices(files, len(devices), layout)):
                splits[k].append(part)
    results = []
    for index, device in enumerate(devices):
        device_dir = f"device{device}" if layout == "old" else f"device{device}_{index}"
        inputs = None if splits is None else splits[index]
        if inputs is not None and not inputs[0]:
            log("ERROR", f"subprocess run failed error_callback:no input files for device {device}")
            continue
        if fail == "device" and index == len(devices) - 1:
            log("ERROR", f"subprocess run failed error_callback:aclrtSetDevice failed. device:{device}")
            continue
        throughput = run_device(args, device, inputs, output_prefix(args, device_dir), "")
        results.append((index, throughput))
    result = 0 if len(results) == len(devices) else 1
    log("INFO", f"multidevice run end qsize:{2 * len(results)} result:{result}")
    for index, throughput in results:
        print(f"i:{index} device_{devices[index]} throughput:{throughput} start_time:0 end_time:0", flush=True)
    log("INFO", f"summary throughput:{sum(t for _, t in results)}")
    return result


def run_device(args, device: int, inputs: list[list[str]] | None, out_dir: str | None, fail: str) -> float:
    if fail == "device":
        log("ERROR", f"acl.rt.set_device failed ret=507033 device:{device}")
        raise RuntimeError(f"aclrtSetDevice failed. device:{device}")
    if fail == "load":
        log("ERROR", "aclmdlLoadFromFile failed ret=145000")
        raise RuntimeError("load model from file failed")

    session = InferSession(device, args.model)
    tensors = session.get_inputs()
    om_batch = tensors[0].shape[0]
    if om_batch < 0:
        if not args.dymBatch:
            raise RuntimeError("dynamic batch om: pass --dymBatch")
        om_batch = args.dymBatch
    session.gear = om_batch if tensors[0].shape[0] < 0 else None
    sample_shapes = [list(t.shape[1:]) for t in tensors]
    types = [np.dtype(t.datatype.name) for t in tensors]  # the om's input element types
    tensor_sizes = [om_batch * int(np.prod(shape)) * kind.itemsize for shape, kind in zip(sample_shapes, types)]
    batchsize = args.batchsize or om_batch
    log("INFO", f"try get model batchsize:{om_batch}")

    if fail == "oom":
        log("ERROR", "aclrtMalloc failed, ret=207001: out of memory")
        raise RuntimeError("malloc device memory failed")

    if inputs is not None:
        files = inputs[0]
        size0 = file_size(files[0])
        if tensor_sizes[0] % size0:
            raise RuntimeError(f"arg0 tensorsize: {tensor_sizes[0]} filesize: {size0} not match")
        per = tensor_sizes[0] // size0
        runs = -(-len(files) // per)
        log("INFO", f"get filesperbatch files0 size:{size0} tensor0size:{tensor_sizes[0]} filesperbatch:{per} "
                    f"runcount:{runs}")
        chunks = [[group[i:i + per] for group in inputs] for i in range(0, len(files), per)]
    else:
        per, chunks = 1, [None]

    if out_dir is not None:
        os.makedirs(out_dir, mode=0o755, exist_ok=True)
        log("INFO", f"output path:{out_dir}")

    def feed_for(chunk):
        if chunk is None:
            feeds = []
            for size, shape, kind in zip(tensor_sizes, sample_shapes, types):
                data = np.zeros(size, np.uint8) if args.pure_data_type == "zero" else \
                    np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
                feeds.append(np.frombuffer(data.tobytes(), kind).reshape(om_batch, *shape))
            return feeds
        feeds = []
        for group, size, shape, kind in zip(chunk, tensor_sizes, sample_shapes, types):
            blobs = [read_file(f) for f in group]
            blobs += [blobs[0]] * (per - len(blobs))  # padding: copies of the chunk's first file
            raw = b"".join(blobs)
            if len(raw) != size:
                raise RuntimeError(f"ndata size:{len(raw)} not match {size}")
            feeds.append(np.frombuffer(raw, kind).reshape(om_batch, *shape))
        return feeds

    for _ in range(args.warmup_count):
        session.infer(feed_for(chunks[0]))
    if args.warmup_count:
        log("INFO", f"warm up {args.warmup_count} done")
    session.reset()

    filesinfo = {}
    for i, chunk in enumerate(chunks):
        feed = feed_for(chunk)
        for _ in range(args.loop):
            outputs = session.infer(feed)
        if out_dir is not None:
            names = chunk[0] if chunk is not None else ["pure_infer_data"]
            filesinfo[i] = {"infiles": list(chunk or []), "outfiles": save_outputs(args, outputs, names, per, out_dir,
                                                                                   chunk)}
    return summarise(args, session, batchsize, out_dir, filesinfo, fail)


def save_outputs(args, outputs, names, per: int, out_dir: str, chunk) -> list[str]:
    """Each output split along the batch axis into <stem>_<j>.<fmt> files, one per input file of the batch."""
    outfiles = []
    for j, out in enumerate(outputs):
        if out.shape[args.output_batchsize_axis] % per:
            raise RuntimeError(f"save out files error array shape:{out.shape} filesinfo:{chunk}")
        parts = np.split(out, per, axis=args.output_batchsize_axis)
        for k, name in enumerate(names):
            stem = os.path.basename(name).split(".")[0]
            target = os.path.join(out_dir, f"{stem}_{j}.{args.outfmt.lower()}")
            if args.outfmt == "NPY":
                np.save(target, parts[k])
            elif args.outfmt == "TXT":
                np.savetxt(target, parts[k].reshape(-1, parts[k].shape[-1]))
            else:
                parts[k].tofile(target)
            outfiles.append(target)
    return outfiles


def summarise(args, session, batchsize: int, out_dir: str | None, filesinfo: dict, fail: str) -> float:
    """The performance summary lines and `<out_dir>_summary.json`; returns the throughput."""
    times = list(session.exec_times)
    mangle = os.environ.get("FAKE_AIS_BENCH_OLD_KEYS") != "1"
    compute = stats(times, mangle)
    h2d = stats([0.01] * len(times), False)
    d2h = stats([0.02] * len(times), False)
    throughput = 1000 * batchsize / compute["mean"] if compute["mean"] else 0
    log("INFO", "-----------------Performance Summary------------------")
    if args.display_all_summary:
        log("INFO", f"H2D_latency (ms): {fmt(h2d)}")
    log("INFO", f"NPU_compute_time (ms): {fmt(compute)}")
    if args.display_all_summary:
        log("INFO", f"D2H_latency (ms): {fmt(d2h)}")
    log("INFO", f"throughput 1000*batchsize.mean({float(batchsize)})/NPU_compute_time.mean({compute['mean']}): {throughput}")
    log("INFO", "------------------------------------------------------")

    if out_dir is not None and fail != "nosummary":
        summary = {"filesinfo": filesinfo, "args": sys.argv, "NPU_compute_time": compute, "H2D_latency": h2d,
                   "D2H_latency": d2h, "throughput": throughput, "npu_compute_time_list": times, "pid": os.getpid()}
        path = out_dir.rstrip("/") + "_summary.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(summary, f)
    session.free_resource()
    return throughput
