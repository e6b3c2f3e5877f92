"""`infer --cluster`: the input folder in shards of whole batches over the cluster's devices.

The driver runs the local run's checks, then cuts the batches (ais_bench's batching: natural-sorted
files, the last batch padded) into shards of consecutive batches, a few per device so fast nodes
take more, and at most SHARD_BYTES of input each so the object store never holds the whole
folder. Each shard is a cell: its files travel by content (or are read where every node sees
them), the node runs `run_infer` on them and sends back the output files and each batch's
compute times. The driver writes each batch into infer's resumable work folder as it arrives and,
when all are in, infer's own code writes the summary and publishes the folder: the layout is the
one-host layout, byte for byte where the nodes compute alike. An interrupted or failed run keeps
its finished batches; the same command resumes.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from ssdconvert.backends.base import Backend, BackendOptions
from ssdconvert.cluster import adapter
from ssdconvert.cluster.requests import ShardRequest
from ssdconvert.cluster.resources import capacity, cpu_cores_per_cell
from ssdconvert.cluster.schedule import Cell, run_cells
from ssdconvert.cluster.session import current
from ssdconvert.cluster.sweep import ship_model
from ssdconvert.cluster.transport import pack
from ssdconvert.layout import InferError
from stageio.results import sample_stem

SHARD_BYTES = 64 << 20  # input bytes per shard at most (one batch more than that still makes a shard)
SHARDS_PER_DEVICE = 3


def plan(batches: Sequence[int], devices: int, batch_bytes: int) -> list[list[int]]:
    """Consecutive runs of the batch indices `batches`, about SHARDS_PER_DEVICE per device, each within
    SHARD_BYTES (a run never spans a gap, e.g. a batch an earlier invocation finished)."""
    if not batches:
        return []
    per = max(1, math.ceil(len(batches) / (SHARDS_PER_DEVICE * max(devices, 1))))
    per = max(1, min(per, SHARD_BYTES // max(batch_bytes, 1)))
    shards: list[list[int]] = []
    for k in batches:
        if shards and len(shards[-1]) < per and shards[-1][-1] == k - 1:
            shards[-1].append(k)
        else:
            shards.append([k])
    return shards


def _layout(groups: Sequence[Sequence[Path]], folders: Sequence[Path]) -> list[str]:
    """Each model input's folder inside a shard: `in0`, side inputs inside it where they were, else `in<g>`."""
    names = ["in0"]
    for g, folder in enumerate(folders[1:], start=1):
        try:
            names.append(f"in0/{folder.resolve().relative_to(folders[0].resolve()).as_posix()}")
        except ValueError:
            names.append(f"in{g}")
    return names


def run_infer(model: str | Path, input, output: str | Path, *, backend: str | Backend = "auto",
              options: BackendOptions | Mapping[str, BackendOptions] | None = None, batchsize: int | None = None,
              device: str | int = "0", warmup: int = 1, loop: int = 1, progress: bool = True,
              prog: str = "ssdconvert", echo=None):
    """`ssdconvert.infer.run_infer` on the open cluster: the same layout and summary, written here (the
    configured backend goes to every shard)."""
    session = current()
    if len(str(device).split(",")) > 1:
        raise InferError(f"--device {device} lists devices of this host; with --cluster the cluster's devices run "
                         "the shards: leave --device out")
    target, job = adapter.infer_job(model, input, output, backend=backend, options=options, batchsize=batchsize,
                                    device=str(device), warmup=warmup, loop=loop, progress=False, prog=prog)
    exact = bool(job.infos and getattr(job.infos[0], "dynamic", False))
    batch = adapter.model_batch(target, job.model, batchsize, exact)
    groups, files = job.inputs.groups, job.inputs.first
    count = math.ceil(len(files) / batch)
    argv = [prog, "infer", "--model", str(job.model.resolve()), "--input", job.inputs.argument(), "--output",
            str(job.output.resolve()), "--backend", target.name, "--batchsize", str(batch), "--device", str(device),
            "--warmup", str(warmup), "--loop", str(loop), "--cluster", session.address]
    runner = adapter.FinishedRunner(job.model, target.name, len(groups), batch)
    settings = adapter.work_settings(runner, argv, groups, batch)
    folders = list(job.inputs.folders) or [job.inputs.home]
    started = time.perf_counter()
    with adapter.open_work(job.output, settings) as work:
        resumed = len(work.done)
        todo = [k for k in range(count) if not work.finished(k)]
        placements = _run_shards(session, job, target, runner, work, todo, batch, folders, progress)
        ran = sum(len(files[k * batch:(k + 1) * batch]) for k in todo)
        missing = [k for k in range(count) if not work.finished(k)]
        if missing:
            raise InferError(f"{len(missing)} of {count} batches did not finish ({placements['failure']}); "
                             f"{count - len(missing)} are kept in {work.folder}: run the same command again to resume")

        if not runner.outputs:  # every batch was finished by an earlier invocation
            runner.set_outputs(adapter.first_output_count(work.folder, sample_stem(files[0])))
    seconds = time.perf_counter() - started
    result = adapter.publish(runner, groups, job.output, batch=batch, loop=loop, argv=argv)
    adapter.amend_summary(result, {"address": session.address, "shards": placements["shards"]}, resumed=resumed,
                          ran_files=ran, seconds=seconds)
    result.warnings = list(job.warnings) + placements["warnings"]
    return result


def _run_shards(session, job, target, runner, work, todo: list[int], batch: int, folders: list[Path],
                progress: bool) -> dict:
    """Run the shards of the batches in `todo`, writing each batch into `work` as its shard arrives."""
    nodes = session.nodes()
    devices = capacity(nodes, target.cluster_resource, cpu_cores_per_cell(nodes))
    files = job.inputs.first
    batch_bytes = sum(g[0].stat().st_size for g in job.inputs.groups) * batch
    bundle = ship_model(session, job.model)
    shared = all(session.shares(f) for f in folders)
    names = _layout(job.inputs.groups, folders)
    cells = []
    for shard in plan(todo, devices, batch_bytes):
        lo, hi = shard[0] * batch, min((shard[-1] + 1) * batch, len(files))
        entries = [(f"{name}/{path.name}", str(path.resolve())) for name, group in zip(names, job.inputs.groups)
                   for path in group[lo:hi]]
        entries += [(f"{name}/manifest.json", str((folder / "manifest.json").resolve()))
                    for name, folder in zip(names, folders) if (folder / "manifest.json").is_file()]
        ref = None if shared else session.put(pack([(rel, Path(src)) for rel, src in entries]))
        request = ShardRequest(bundle, batch, shard[0], tuple(names), tuple(entries),
                               tuple(sample_stem(f) for f in files[lo:hi]), job.warmup, job.loop, job.devices[0], ref)
        cells.append(Cell(f"batches {shard[0]}-{shard[-1]}", f"batches {shard[0]}-{shard[-1]}", "infer",
                          (request,), target))
    shards, warnings = [], []

    def keep(cell: Cell, result: dict, placement: dict) -> None:
        request: ShardRequest = cell.args[0]
        if result["batch"] != batch:
            raise InferError(f"the nodes ran batch {result['batch']}, not {batch}: pass --batchsize {result['batch']}")
        runner.set_outputs(result["outputs"])
        runner.found_versions = result["versions"]
        warnings.extend(w for w in result["warnings"] if w not in warnings)
        for j, ms in enumerate(result["compute_ms"]):
            adapter.write_batch(work, request.stems, result["outputs"], result["packed"], j * batch, batch, ms,
                                request.first_batch + j)
        shards.append({"batches": [request.first_batch, request.first_batch + len(result["compute_ms"]) - 1],
                       **placement})

    run = run_cells(session, cells, keep, progress=progress and sys.stderr.isatty(), desc="infer shards")
    failed = run.by_status("failed")
    failure = "interrupted" if run.interrupted else f"{failed[0].cell.label}: {failed[0].reason}" if failed else ""
    return {"shards": shards, "warnings": warnings, "failure": failure}
