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

from ais_bench.infer.interface import InferSession, generation, om_input_names


def log(level: str, message: str) -> None:
    print(f"[{level}] {message}", flush=True)


def str2bool(v: str) -> bool:
    if v.lower() in ("1", "true"):
        return True
    if v.lower() in ("0", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid bool {v}")


def natural_key(name: str):
    """utils.py natural_sort (both generations): digit runs as numbers, the rest lower-cased."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


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
    if generation() == "ait-6.0.RC3":  # sync-ait 0765eb473 (2023-07-25), first in tag AIT-6.0.RC3.001
        p.add_argument("--divide_input", type=str2bool, default=False,
                       help="Input datas need to be divided to match multi devices or not, --device should be list, "
                            "default False")
    return p.parse_args(argv)


def list_dir(folder: str) -> list[str]:
    """utils.py get_fileslist_from_dir: *.bin|*.BIN|*.npy|*.NPY only, sorted, then natural-sorted."""
    names = sorted(n for n in os.listdir(folder) if n.endswith((".bin", ".BIN", ".npy", ".NPY")))
    if not names:
        raise RuntimeError(f"{folder} of input args not find valid file,valid file format:[*.npy *.NPY *.bin *.BIN]")
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


def split_for_devices(files: list[str], jobs: int, version: str) -> list[list[str]]:
    """Contiguous blocks in device-list order: standalone (split_inputs_new) ceil(n/jobs) each, trailing devices
    may get none; ait (seg_input_data_for_multi_process) floor(n/jobs), the first n % jobs devices one more."""
    if version == "standalone":
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
    return len(om_input_names(args.model))


def output_prefix(args, device_dir: str | None) -> str | None:
    if not args.output:
        return None
    base = os.path.join(args.output, args.output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S"))
    return os.path.join(base, device_dir) if device_dir else base


def device_inputs(args, devices: list[int], version: str) -> list[list[list[str]] | None]:
    """What each device runs: the standalone tool and AIT 6.0.RC2 always split the inputs between the
    devices; from AIT 6.0.RC3 only with --divide_input, else every device runs every input."""
    if args.input is None:
        return [None] * len(devices)
    per_input = input_lists(args.input, n_inputs(args))
    if version == "ait-6.0.RC3" and not args.divide_input:
        return [per_input for _ in devices]
    splits: list[list[list[str]]] = [[] for _ in devices]
    for files in per_input:
        for k, part in enumerate(split_for_devices(files, len(devices), version)):
            splits[k].append(part)
    return splits


def multidevice_run(args, fail: str) -> int:
    """One 'process' per device (run in turn here): folders device<N>/ (standalone) or device<N>_<i>/ (ait)."""
    version = generation()
    devices = args.device
    log("INFO", f"multidevice:{devices} run begin")
    results = []
    for index, (device, inputs) in enumerate(zip(devices, device_inputs(args, devices, version))):
        device_dir = f"device{device}" if version == "standalone" else f"device{device}_{index}"
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


def open_session(args, device: int, fail: str) -> InferSession:
    """__main__.py set_session_options: --dymBatch sets the gear, else the static batch."""
    if fail == "device":
        log("ERROR", f"acl.rt.set_device failed ret=507033 device:{device}")
        raise RuntimeError(f"aclrtSetDevice failed. device:{device}")
    if fail == "load":
        log("ERROR", "aclmdlLoadFromFile failed ret=145000")
        raise RuntimeError("load model from file failed")
    session = InferSession(device, args.model)
    if args.dymBatch:
        session.set_dynamic_batchsize(args.dymBatch)
    else:
        session.set_staticbatch()
    if fail == "oom":
        log("ERROR", "aclrtMalloc failed, ret=207001: out of memory")
        raise RuntimeError("malloc device memory failed")
    return session


def batches(inputs: list[list[str]] | None, tensor_size: int) -> tuple[int, list]:
    """(files per inference, the chunks of each inference): io_oprations.py get_files_count_per_batch."""
    if inputs is None:
        return 1, [None]
    files = inputs[0]
    size0 = file_size(files[0])
    if tensor_size % size0:
        raise RuntimeError(f"arg0 tensorsize: {tensor_size} filesize: {size0} not match")
    per = tensor_size // size0
    runs = -(-len(files) // per)
    log("INFO", f"get filesperbatch files0 size:{size0} tensor0size:{tensor_size} filesperbatch:{per} runcount:{runs}")
    return per, [[group[i:i + per] for group in inputs] for i in range(0, len(files), per)]


def feed_for(chunk, tensors, per: int, pure_data_type: str) -> list[np.ndarray]:
    """Raw bytes per model input, realsize each: the files concatenated, the last batch padded with its first
    file; pure inference: zeros or random bytes."""
    if chunk is None:
        rng = np.random.default_rng(0)
        return [np.zeros(t.realsize, np.uint8) if pure_data_type == "zero" else
                rng.integers(0, 255, t.realsize, dtype=np.uint8) for t in tensors]
    feeds = []
    for group, tensor in zip(chunk, tensors):
        blobs = [read_file(f) for f in group]
        blobs += [blobs[0]] * (per - len(blobs))  # padding: copies of the chunk's first file
        raw = b"".join(blobs)
        if len(raw) != tensor.realsize:
            raise RuntimeError(f"ndata size:{len(raw)} not match {tensor.realsize}")
        feeds.append(np.frombuffer(raw, np.uint8))
    return feeds


def save_outputs(outputs, chunk, per: int, out_dir: str, index: int, args, filesinfo: dict) -> None:
    """io_oprations.py save_tensors_to_file: split along the batch axis, `<stem>_<i>.<fmt>` per real sample,
    filesinfo keyed by sample id (batch index x files per inference + position) with one file per input."""
    names = list(zip(*chunk)) if chunk is not None else [("pure_infer_data",)]
    for i, out in enumerate(outputs):
        if out.shape[args.output_batchsize_axis] % per:
            raise RuntimeError(f"save out files error array shape:{out.shape} filesinfo:{chunk}")
        parts = np.split(out, per, axis=args.output_batchsize_axis)
        for j, infiles in enumerate(names):
            stem = os.path.basename(infiles[0]).split(".")[0]
            target = os.path.join(out_dir, f"{stem}_{i}.{args.outfmt.lower()}")
            if args.outfmt == "NPY":
                np.save(target, parts[j])
            elif args.outfmt == "TXT":
                np.savetxt(target, parts[j].reshape(-1, parts[j].shape[-1]))
            else:
                parts[j].tofile(target)
            entry = filesinfo.setdefault(index * per + j, {"infiles": [], "outfiles": []})
            entry["infiles"] = entry["infiles"] or list(infiles)
            entry["outfiles"].append(target)


def run_device(args, device: int, inputs: list[list[str]] | None, out_dir: str | None, fail: str) -> float:
    session = open_session(args, device, fail)
    tensors = session.get_inputs()
    om_batch = args.dymBatch or tensors[0].shape[0]
    batchsize = args.batchsize or om_batch
    log("INFO", f"try get model batchsize:{om_batch}")
    per, chunks = batches(inputs, tensors[0].realsize)
    if out_dir is not None:
        os.makedirs(out_dir, mode=0o755, exist_ok=True)
        log("INFO", f"output path:{out_dir}")

    for _ in range(args.warmup_count):
        session.run(feed_for(chunks[0], tensors, per, args.pure_data_type), out_array=True)
    if args.warmup_count:
        log("INFO", f"warm up {args.warmup_count} done")
    session.reset()

    filesinfo: dict = {}
    for i, chunk in enumerate(chunks):
        feed = feed_for(chunk, tensors, per, args.pure_data_type)
        for _ in range(args.loop):
            outputs = session.run(feed, out_array=True)
        if out_dir is not None:
            save_outputs(outputs, chunk, per, out_dir, i, args, filesinfo)

    times = [t[1] - t[0] if isinstance(t, tuple) else t for t in session.exec_times]
    compute = stats(times, os.environ.get("FAKE_AIS_BENCH_OLD_KEYS") != "1")
    throughput = 1000 * batchsize / compute["mean"] if compute["mean"] else 0
    report(args, compute, len(times), batchsize, throughput)
    if out_dir is not None and fail != "nosummary":
        write_summary(out_dir, filesinfo, compute, times, throughput)
    return throughput


def report(args, compute: dict, runs: int, batchsize: int, throughput: float) -> None:
    h2d, d2h = stats([0.01] * runs, False), stats([0.02] * runs, False)
    log("INFO", "-----------------Performance Summary------------------")
    if args.display_all_summary:
        log("INFO", f"H2D_latency (ms): {fmt(h2d)}")
    log("INFO", f"NPU_compute_time (ms): {fmt(compute)}")
    if args.display_all_summary:
        log("INFO", f"D2H_latency (ms): {fmt(d2h)}")
    log("INFO", f"throughput 1000*batchsize.mean({float(batchsize)})/NPU_compute_time.mean({compute['mean']}): "
                f"{throughput}")
    log("INFO", "------------------------------------------------------")


def write_summary(out_dir: str, filesinfo: dict, compute: dict, times: list, throughput: float) -> None:
    runs = len(times)
    summary = {"filesinfo": filesinfo, "args": sys.argv, "NPU_compute_time": compute,
               "H2D_latency": stats([0.01] * runs, False), "D2H_latency": stats([0.02] * runs, False),
               "throughput": throughput, "npu_compute_time_list": times, "pid": os.getpid()}
    path = out_dir.rstrip("/") + "_summary.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(summary, f)
