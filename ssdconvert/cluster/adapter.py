"""The one place the cluster engine calls into bench, infer and their internals.

Worker side, a cell runs exactly what a local run runs: `run_bench` for one batch size (after a
build cached per host and content hash), `run_infer` over a shard's files. Driver side, the
reports are the local ones: `BenchReport` + `write_reports`, and infer's resumable work folder
(`partial_output`) and summary (`_run_batches` over batches that are all finished). When bench or
infer change shape, this module is what follows them.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ssdconvert import backends
from ssdconvert.backends.base import Backend, BackendOptions, Runner, build_record
from ssdconvert.bench import BenchReport, machine_info, write_reports
from ssdconvert.cluster.requests import BenchRequest, ShardRequest
from ssdconvert.cluster.transport import Packed, cache_root, local_model, materialise, pack
from ssdconvert.timing import BenchContext, BenchRow
from stageio.tensor import TensorSpec

# ---------------------------------------------------------------------------------------------
# bench: one cell on a worker


def bench_cell(request: BenchRequest, target: Backend, logical_device: str | None) -> dict:
    """Time one batch size on `target` (configured) as `run_bench` does; returns the row and what the report
    needs from the host."""
    from ssdconvert.bench import run_bench

    device = logical_device if logical_device is not None else request.device
    model = local_model(request.bundle)
    calib = materialise(request.calib.digest, request.calib.ref) if request.calib and request.calib.ref else (
        Path(request.calib.root) if request.calib else None)
    model, build = _cached_build(target, model, request, calib, device)
    with tempfile.TemporaryDirectory(prefix="ssdconvert-cell-") as work:
        report = run_bench(model, backend=target, batch_sizes=[request.batch], duration=request.duration,
                           warmup=request.warmup, device=device, output_dir=work, name="cell",
                           precision=request.precision, calib=calib, flops_per_image=request.flops_per_image,
                           plot=False, feeds=request.feeds)
    row = report.rows[0]
    for key, value in build.items():
        setattr(row, key, value)
    return {"row": asdict(row), "runtime": report.runtime, "label": report.label, "machine": report.machine,
            "precision": report.precision}


def options_key(target: Backend) -> dict:
    """A backend's options as the fields of a cell's key (a changed option is a different cell)."""
    return {"backend": target.name, "options": asdict(target.options)}


def _cached_build(target: Backend, model: Path, request: BenchRequest, calib: Path | None,
                  device: str) -> tuple[Path, dict]:
    """What the cell times, built once per host and content hash: a per-batch build (ATC, MagicMind) or a
    precision build (as run_bench makes one from an .onnx); the model itself where nothing is built."""
    if model.suffix.lower() != ".onnx":
        return model, {}
    precision = request.precision
    per_batch = target.builds_per_batch
    if not per_batch and (precision in (None, "fp32") or build_record(model).get("precision") == precision):
        return model, {}
    from ssdconvert.cluster.journal import cell_key

    key = cell_key(model=request.bundle.digest, precision=precision, **options_key(target),
                   batch=request.batch if per_batch else request.max_batch,
                   calib=request.calib.digest if request.calib else None)
    folder = cache_root() / "builds" / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = folder / "built.json"
        if not marker.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            ctx = BenchContext(request.duration, request.warmup, folder, device=device, say=lambda line: None,
                               precision=precision, calib=calib)
            if per_batch:
                artefact, build = target.build_for_batch(model, request.batch, ctx)
            else:
                artefact, build = target.compile(model, folder, batch=request.max_batch, precision=precision,
                                                 calib=calib)[0], {}
            marker.write_text(json.dumps({"artefact": str(Path(artefact).resolve().relative_to(folder.resolve())),
                                          "build": build}))
        built = json.loads(marker.read_text())
    return folder / built["artefact"], built["build"]


# ---------------------------------------------------------------------------------------------
# bench: the driver's report


def check_bench(model: Path, backend: str | Backend, options: BackendOptions | Mapping[str, BackendOptions] | None,
                batch_sizes: Sequence[int], precisions: Sequence[str | None], device: str) -> Backend:
    """The refusals a local sweep makes before it starts that the driver can make alone; the configured backend."""
    from ssdconvert.bench import BenchError

    if not model.exists():
        raise BenchError(f"model not found: {model}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise BenchError("batch sizes must be positive integers")
    target = backends.for_model(model, backend).configured(options)
    target.check_model(model, onnx_ok=target.builds_per_batch)
    if target.has_dynamic_image_size(model) and sorted(set(batch_sizes)) != [1]:
        raise BenchError(f"{model.name} is in the exact mode (each image at its own height and width): it runs "
                         "batch 1 only")
    if len(target.devices(device)) > 1:
        raise BenchError(f"bench times one device per cell; --device {device} lists several")
    for precision in precisions:
        refusal = target.precision_refusal(precision)
        if refusal:
            raise BenchError(refusal)
    target.check_bench(model, BenchContext(1.0, 0, model.parent))  # e.g. Ascend's per-batch builds need --soc
    return target


def bench_report(model: Path, target: Backend, precision: str | None, batch_sizes: Sequence[int], duration: float,
                 warmup: int, cells: dict[int, dict], flops_per_image: float | None) -> BenchReport:
    """One precision's report from its cells: batch size -> the cell's record (row, placement, host facts)."""
    report = BenchReport(str(model.resolve()), target.name, target.name, sorted(batch_sizes), duration, warmup,
                         machine=machine_info(), flops_per_image=flops_per_image,
                         precision=precision or target.default_precision)
    hosts, where = {}, []
    for bs in report.batch_sizes:
        record = cells.get(bs)
        if record is None:
            report.rows.append(BenchRow(bs, status="skipped", error="not run (cancelled)"))
            continue
        if record.get("status") != "ok":  # cancelled by Ctrl-C: not run; failed: its reason
            status = "skipped" if record.get("status") == "cancelled" else "failed"
            report.rows.append(BenchRow(bs, status=status, error=record.get("reason", status)))
            continue
        row = BenchRow(**record["result"]["row"])
        place = record["placement"]
        row.host, row.device = place["host"], device_label(place)
        where.append({"batch_size": bs, **place, "lost_attempts": record.get("failures", [])})
        report.rows.append(row)
        report.runtime = record["result"]["runtime"] or report.runtime
        report.label = record["result"]["label"]
        hosts[place["node"]] = {"host": place["host"], "machine": record["result"]["machine"]}
    report.machine["cluster_nodes"] = hosts  # each host's own CPU, cores and runtime versions
    report.machine["cluster_cells"] = where  # which node and device (physical, and --device there) ran each row
    failed = [r for r in report.rows if r.status == "failed"] or [r for r in report.rows if r.status != "ok"]
    if failed:
        report.stopped_early, report.failure = True, f"batch size {failed[0].batch_size}: {failed[0].error}"
    if flops_per_image:
        for row in report.ok_rows:
            row.gflops_per_s = flops_per_image * row.throughput / 1e9
    return report


def device_label(place: dict) -> str:
    return place["resource"] if place.get("physical") is None else f"{place['resource']} {place['physical']}"


def write_bench(report: BenchReport, output_dir: Path, name: str) -> None:
    from datetime import datetime, timezone

    report.started = report.started or datetime.now(timezone.utc).isoformat(timespec="seconds")
    report.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_reports(report, output_dir, name)


# ---------------------------------------------------------------------------------------------
# infer: one shard on a worker


def infer_shard(request: ShardRequest, target: Backend, logical_device: str | None) -> dict:
    """Run `run_infer` on `target` (configured) over the shard's files; returns every output file's bytes and each
    batch's compute times."""
    from ssdconvert.infer import load_manifest_for, manifest_coverage, run_infer

    device = logical_device if logical_device is not None else request.device
    model = local_model(request.bundle)
    with tempfile.TemporaryDirectory(prefix="ssdconvert-shard-") as work:
        root = Path(work) / "in"
        _lay_out(request, root)
        folders = [root / f for f in request.folders]
        result = run_infer(model, folders, Path(work) / "out", backend=target, batchsize=request.batch,
                           device=device, warmup=request.warmup, loop=request.loop, progress=False)
        manifest = load_manifest_for(folders[0])
        expected = set(manifest_coverage(manifest, _files(folders[0])) if manifest is not None else [])
        out = Path(work) / "out"
        names = _output_names(out, request.stems)
        packed = pack([(name, out / name) for name in names])
        summary = json.loads(result.summary_path.read_text())
    times = [float(ms) for ms in summary.get("npu_compute_time_list", [])]
    per_batch = [times[i:i + request.loop] for i in range(0, len(times), request.loop)]
    return {"batch": result.batch, "outputs": len(names) // max(len(request.stems), 1), "packed": packed,
            "compute_ms": per_batch, "versions": result.versions, "backend": result.backend,
            "warnings": [w for w in result.warnings if w not in expected]}


def _lay_out(request: ShardRequest, root: Path) -> None:
    """The shard's input folders: unpacked from the object store, or links to the shared driver paths."""
    if request.ref is not None:
        import ray

        from ssdconvert.cluster.transport import unpack

        unpack(ray.get(request.ref), root)
        return
    for rel, source in request.entries:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)


def _files(folder: Path) -> list[Path]:
    from ssdconvert.layout import INPUT_SUFFIXES

    return [p for p in folder.iterdir() if p.suffix.lower() in INPUT_SUFFIXES]


def _output_names(out: Path, stems: Sequence[str]) -> list[str]:
    """`<stem>_<i>.bin` for every stem, in stem then output order."""
    from stageio.results import parse_result_name, result_name

    indices: dict[str, list[int]] = {}
    for p in out.iterdir():
        parsed = parse_result_name(p.name)
        if parsed is not None:
            indices.setdefault(parsed[0], []).append(parsed[1])
    return [result_name(stem, i) for stem in stems for i in sorted(indices.get(stem, []))]


# ---------------------------------------------------------------------------------------------
# infer: the driver's layout


def infer_job(model, input, output, **options):
    """The local run's checks and job description (ssdconvert.infer.infer_job)."""
    from ssdconvert.infer import infer_job as job_of

    return job_of(model, input, output, **options)


def model_batch(target: Backend, model: Path, batchsize: int | None, exact: bool) -> int:
    """The batch a run of `model` uses, from its file: 1 in the exact mode, its static batch, else `batchsize`."""
    if exact or target.has_dynamic_image_size(model):
        return 1
    static = None
    if model.suffix.lower() == ".onnx":
        from ssdconvert.backends.onnxinfo import read_onnx

        static = read_onnx(model).inputs[0].dims[0]
    else:
        inputs = build_record(model).get("inputs") or []
        shape = inputs[0].get("shape") if inputs and isinstance(inputs[0], dict) else None
        static = shape[0] if shape else None
    return int(static) if isinstance(static, int) and static > 0 else (batchsize or 1)


class FinishedRunner(Runner):
    """Stands in for the runner when every batch is already in the work folder: it describes the run
    (backend, model, outputs, versions) so infer's own code writes the summary; it never runs."""

    def __init__(self, model: Path, backend: str, groups: int, batch: int):
        super().__init__(model)
        self.name = backend
        self.inputs = [TensorSpec(f"input{g}", (1,), "uint8", batch=batch) for g in range(groups)]
        self.found_versions: dict[str, str] = {}

    def set_outputs(self, count: int) -> None:
        self.outputs = [TensorSpec(f"output{i}", (), "uint8") for i in range(count)]

    def versions(self) -> dict[str, str]:
        return self.found_versions

    def _activate(self) -> None:
        raise RuntimeError("FinishedRunner does not run models")

    def _infer(self, feeds):
        raise RuntimeError("FinishedRunner does not run models")


def work_settings(runner: FinishedRunner, argv: list[str], groups, batch: int) -> dict:
    from ssdconvert.infer import _settings

    return _settings(runner, argv, groups, batch)


def open_work(output: Path, settings: dict):
    """infer's resumable work folder for `output` (partial.py)."""
    from ssdconvert.partial import partial_output

    return partial_output(output, settings)


def write_batch(work, stems: Sequence[str], outputs: int, packed: Packed, start: int, batch: int,
                compute_ms: list[float], index: int) -> None:
    """Write one batch's files (shard-relative sample `start`) into the work folder, then mark it finished."""
    from stageio.files import write_atomic
    from stageio.results import result_name

    offsets = {name: (offset, size) for name, offset, size in packed.index}
    for stem in stems[start:start + batch]:
        for i in range(outputs):
            name = result_name(stem, i)
            offset, size = offsets[name]
            write_atomic(work.folder / name, packed.data[offset:offset + size])
    work.finish_batch(index, compute_ms)


def publish(runner: FinishedRunner, groups, output: Path, *, batch: int, loop: int, argv: list[str]):
    """Every batch is in the work folder: infer's own code writes the summary and moves the folder into place."""
    from ssdconvert.infer import _run_batches

    return _run_batches(runner, groups, output, batch=batch, warmup=0, loop=loop, progress=False, argv=argv)


def amend_summary(result, extra: dict, *, resumed: int, ran_files: int, seconds: float) -> None:
    """What `publish` cannot know: what this invocation ran, how long it took, and where."""
    from ssdconvert.fileio import write_json

    result.resumed_batches, result.ran_files, result.end_to_end_seconds = resumed, ran_files, seconds
    summary = json.loads(result.summary_path.read_text())
    block = summary["ssdconvert"]
    block.update(resumed_batches=resumed, end_to_end_seconds=seconds,
                 end_to_end_throughput=result.end_to_end_throughput, cluster=extra)
    block["end_to_end_definition"] = ("real images / wall time of the cluster run (shipping inputs, inference on "
                                      "the nodes, writing outputs here; only the batches run by this invocation)")
    write_json(result.summary_path, summary)


def first_output_count(folder: Path, stem: str) -> int:
    """How many outputs a sample has, from the files an earlier invocation wrote."""
    return len(_output_names(folder, [stem]))


def empty_packed() -> Packed:
    return Packed((), np.empty(0, dtype=np.uint8))
