"""The cluster engine's own costs, measured on this machine, and a projection of a fleet sweep from them.

1. Per-cell scheduling overhead: N empty cells through ssdconvert.cluster.schedule.run_cells (the
   path every bench/infer cell takes: submit, wait, collect, journal callback), on CPU cells (a
   worker process reused between cells) and on NPU cells (a fresh worker per cell, max_calls=1, as
   device cells run), against bare Ray tasks submitted and gathered in one `ray.get` (baseline).
2. Object-store transfer of a bins folder (default 1 GB: 1000 SSD-ResNet34 inputs of 1,080,000 B):
   the driver packs shards of 64 MB (transport.pack, read from disk) and `ray.put`s them; a task
   pinned to another node fetches each (`ray.get`: object manager over loopback TCP, then its own
   shared-memory store) and unpacks it to files (transport.unpack) or only touches it (fetch
   only). At most two shards are in flight, so the per-node stores (capped at --store-mb) never
   hold the folder.
3. A projection, on paper, of a sweep of 4 families x 3 precisions x 7 batch sizes (84 cells) on
   4 hosts x 8 devices against one host: a cell costs an ATC build + load/warm-up + the timed
   duration (ASSUMED figures, printed with the result), the cells are list-scheduled longest first
   on the devices, and the cluster adds the measured per-cell overhead and the measured transfer
   of each model to each host.

The cluster is `ray.cluster_utils.Cluster` (a head for the driver and two worker nodes on this
machine, each with its own raylet and object store), started inside a private network namespace
(`unshare -n`, as root) so every socket stays on loopback: the script re-executes itself there.

    .venv/bin/python benchmarks/cluster_bench.py            # writes benchmarks/results/cluster.{json,md}
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ssdconvert.bench import machine_info  # noqa: E402
from ssdconvert.formatting import markdown_table  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
INPUT_BYTES = 1_080_000  # one SSD-ResNet34 input: float32 3x300x300
SHARD = 64 << 20

# The projection's assumptions (not measured here: no NPU on this machine). Per static .om, ATC time on the
# device host; the model sizes are the FP32 ONNX exports (ssd-resnet34's 80 MB is the README's IR size).
FAMILIES = {"ssd-resnet34": {"build_s": 120, "model_mb": 80}, "ssd-resnet50": {"build_s": 90, "model_mb": 60},
            "ssd-vgg16": {"build_s": 100, "model_mb": 105}, "faster-rcnn-r101-fpn": {"build_s": 360, "model_mb": 240}}
PRECISIONS = ("fp16", "fp32", "bf16")
BATCHES = (1, 2, 4, 8, 16, 32, 64)
LOAD_WARMUP_S = 5.0  # model load + warm-up per cell, assumed
DURATION_S = 10.0  # bench's default timed duration per cell


def in_namespace() -> None:
    """Re-run this script inside a private network namespace with only `lo`, unless already there."""
    if os.environ.get("SSDCONVERT_BENCH_NETNS") == "1":
        return
    if os.geteuid() != 0 or not shutil.which("unshare"):
        sys.exit("run as root (unshare -n): the benchmark keeps every Ray socket on loopback inside a namespace")
    env = {**os.environ, "SSDCONVERT_BENCH_NETNS": "1"}
    argv = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, *sys.argv]
    sys.exit(subprocess.run(argv, env=env).returncode)


def start(store_mb: int):
    import ray
    from ray.cluster_utils import Cluster

    store = store_mb << 20
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": store,
                                                            "include_dashboard": False})
    device_node = cluster.add_node(num_cpus=1, resources={"NPU": 2}, object_store_memory=store)
    other = cluster.add_node(num_cpus=1, object_store_memory=store)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster, device_node, other


def overhead(cells: int, device_cells: int) -> dict:
    import ray

    from ssdconvert import backends
    from ssdconvert.cluster import connected
    from ssdconvert.cluster.schedule import Cell, run_cells

    @ray.remote(num_cpus=1)
    def bare() -> None:
        return None

    ray.get([bare.remote() for _ in range(4)])  # warm workers
    out = {}
    started = time.perf_counter()
    ray.get([bare.remote() for _ in range(cells)])
    out["bare_ray_task_ms"] = (time.perf_counter() - started) * 1e3 / cells
    with connected("auto") as session:
        for name, backend, count in (("cpu_cell_ms", "onnxruntime", cells), ("npu_cell_ms", "ascend", device_cells)):
            todo = [Cell(f"{name}{i}", "empty", "noop", (), backends.get(backend)) for i in range(count)]
            started = time.perf_counter()
            run = run_cells(session, todo, lambda cell, result, place: None, progress=False)
            assert len(run.by_status("ok")) == count
            out[name] = (time.perf_counter() - started) * 1e3 / count
    out.update(cells=cells, device_cells=device_cells)
    return out


def make_folder(folder: Path, total: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    block = rng.standard_normal(INPUT_BYTES // 4).astype(np.float32).tobytes()
    files = []
    for i in range(total // INPUT_BYTES):
        path = folder / f"{i:012d}.bin"
        path.write_bytes(block)
        files.append(path)
    return files


def transfer(files: list[Path], node_id: str, repeats: int) -> dict:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from ssdconvert.cluster.transport import pack, unpack

    @ray.remote(num_cpus=0)
    def fetch(refs: list, write: bool) -> int:
        (packed,) = ray.get(refs)
        if not write:
            return int(packed.data[::4096].sum() >= 0) * packed.nbytes
        with tempfile.TemporaryDirectory() as work:
            unpack(packed, Path(work))
            os.sync()
        return packed.nbytes

    per = SHARD // INPUT_BYTES
    shards = [files[i:i + per] for i in range(0, len(files), per)]
    pinned = fetch.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
    out = {"bytes": sum(p.stat().st_size for p in files), "shards": len(shards), "repeats": repeats}
    for write in [True] + [False, True] * repeats:  # a warm-up pass, then the two modes alternately, best kept
        os.sync()
        put_s, flying, moved = 0.0, [], 0
        started = time.perf_counter()
        for shard in shards:
            t = time.perf_counter()
            ref = ray.put(pack([(p.name, p) for p in shard]))
            put_s += time.perf_counter() - t
            flying.append(pinned.remote([ref], write))
            del ref
            if len(flying) >= 2:
                moved += ray.get(flying.pop(0))
        moved += sum(ray.get(flying))
        wall = time.perf_counter() - started
        key = "to_files" if write else "fetch_only"
        if "warm_up_s" not in out:
            out["warm_up_s"] = wall
        elif key not in out or wall < out[key]["seconds"]:
            out[key] = {"seconds": wall, "MB_per_s": moved / wall / 1e6,
                        "driver_pack_put_MB_per_s": moved / put_s / 1e6}
    return out


def makespan(durations: list[float], devices: int) -> float:
    """Longest-processing-time-first list scheduling of the cells on `devices` identical devices."""
    heap = [0.0] * devices
    for d in sorted(durations, reverse=True):
        heapq.heappush(heap, heapq.heappop(heap) + d)
    return max(heap)


def projection(cell_ms: float, transfer_mb_s: float, hosts: int = 4, devices: int = 8) -> dict:
    cells = [(f, p, b, spec["build_s"] + LOAD_WARMUP_S + DURATION_S)
             for f, spec in FAMILIES.items() for p in PRECISIONS for b in BATCHES]
    times = [c[3] for c in cells]
    ship_s = hosts * sum(spec["model_mb"] for spec in FAMILIES.values()) / transfer_mb_s  # each model to each host
    overhead_s = len(cells) * cell_ms / 1e3  # submitted and collected by one driver, one after another
    one_device = sum(times)
    one_host = makespan(times, devices)
    fleet = makespan(times, hosts * devices) + ship_s + overhead_s
    return {"cells": len(cells), "cell_seconds": {f: s["build_s"] + LOAD_WARMUP_S + DURATION_S for f, s in
                                                    FAMILIES.items()},
            "assumptions": {"build_s": {f: s["build_s"] for f, s in FAMILIES.items()},
                            "model_mb": {f: s["model_mb"] for f, s in FAMILIES.items()},
                            "load_warmup_s": LOAD_WARMUP_S, "duration_s": DURATION_S},
            "one_host_one_device_s": one_device, "one_host_8_devices_s": one_host,
            "fleet_s": fleet, "fleet_shipping_s": ship_s, "fleet_scheduling_s": overhead_s,
            "speedup_vs_one_device": one_device / fleet, "speedup_vs_one_host": one_host / fleet}


def report(result: dict) -> str:
    o, t, p = result["overhead"], result["transfer"], result["projection"]
    gb = t["bytes"] / 1e9
    lines = ["# Cluster engine: overhead, transfer, projection", "",
             f"Machine: {result['machine']['cpu_model']}, {result['machine']['usable_cores']} cores, load "
             f"{', '.join(f'{x:.1f}' for x in result['machine']['load_average_at_start'])} at start; Ray "
             f"{result['ray']}; a 3-node `ray.cluster_utils.Cluster` on this machine in a private network namespace "
             f"(object store {result['store_mb']} MB per node).", "",
             "## Per-cell scheduling overhead (empty cells)", "",
             markdown_table(["path", "ms per cell"], [
                 (f"bare Ray tasks, one ray.get ({o['cells']})", f"{o['bare_ray_task_ms']:.2f}"),
                 (f"run_cells, CPU cells, reused worker ({o['cells']})", f"{o['cpu_cell_ms']:.2f}"),
                 (f"run_cells, NPU cells, fresh worker each ({o['device_cells']})", f"{o['npu_cell_ms']:.1f}")]), "",
             f"## Object-store transfer of a {gb:.2f} GB bins folder", "",
             f"{t['shards']} shards of <= 64 MB; driver: read files (in the page cache) + pack + ray.put; a task on "
             "another node: ray.get (loopback TCP between the object managers), then unpack to files (and sync) or "
             f"only touch the bytes; two shards in flight; best of {t['repeats']} passes per mode after a warm-up "
             f"pass ({t['warm_up_s']:.1f} s).", "",
             markdown_table(["what the node does", "seconds", "MB/s end to end", "driver pack+put MB/s"], [
                 (name, f"{t[key]['seconds']:.2f}", f"{t[key]['MB_per_s']:.0f}",
                  f"{t[key]['driver_pack_put_MB_per_s']:.0f}")
                 for name, key in (("fetch only", "fetch_only"), ("fetch + write files", "to_files"))]), "",
             "## Projection: 4 families x 3 precisions x 7 batch sizes on Ascend", "",
             "On paper. Per cell: ATC build + load/warm-up + 10 s timed (assumed: " +
             ", ".join(f"{f} {s} s" for f, s in p["cell_seconds"].items()) +
             "); cells list-scheduled longest first; the fleet adds the measured NPU-cell overhead for every cell, "
             f"one after another as if none overlapped ({p['fleet_scheduling_s']:.1f} s in all) and each model sent "
             f"to each host at the measured rate ({p['fleet_shipping_s']:.1f} s in all).", "",
             markdown_table(["setup", "devices", "hours", "vs fleet"], [
                 ("one host, `bench` one device at a time (today)", 1, f"{p['one_host_one_device_s'] / 3600:.2f}",
                  f"{p['speedup_vs_one_device']:.1f}x"),
                 ("one host, its 8 NPUs (`--cluster local`)", 8, f"{p['one_host_8_devices_s'] / 3600:.2f}",
                  f"{p['speedup_vs_one_host']:.1f}x"),
                 ("4 hosts x 8 NPUs (`--cluster auto`)", 32, f"{p['fleet_s'] / 3600:.2f}", "1.0x")]), "",
             "Caveats: 8 concurrent ATC builds share one host's CPU cores (builds are CPU-bound), so the 8-device "
             "figures are a lower bound on time; Faster R-CNN's long builds set the fleet's makespan (4 x 3 x 7 = 84 "
             "cells on 32 devices is under 3 waves).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=200, help="empty CPU cells (and bare tasks)")
    parser.add_argument("--device-cells", type=int, default=20, help="empty NPU cells (a fresh worker each)")
    parser.add_argument("--gb", type=float, default=1.0, help="size of the bins folder")
    parser.add_argument("--store-mb", type=int, default=200, help="object store per node")
    parser.add_argument("--repeat", type=int, default=3, help="transfer passes per mode (best kept)")
    args = parser.parse_args()
    in_namespace()
    import ray

    cluster, device_node, other = start(args.store_mb)
    try:
        result = {"machine": machine_info(), "ray": ray.__version__, "store_mb": args.store_mb}
        result["overhead"] = overhead(args.cells, args.device_cells)
        with tempfile.TemporaryDirectory(dir=ROOT / "build" if (ROOT / "build").is_dir() else None) as work:
            files = make_folder(Path(work) / "bins", int(args.gb * 1e9))
            result["transfer"] = transfer(files, other.node_id, args.repeat)
    finally:
        ray.shutdown()
        cluster.shutdown()
    result["projection"] = projection(result["overhead"]["npu_cell_ms"],
                                      result["transfer"]["to_files"]["MB_per_s"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(result, indent=1) + "\n")
    text = report(result)
    (RESULTS / "cluster.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
