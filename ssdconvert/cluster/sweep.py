"""`bench --cluster`: every (precision, batch size) of a sweep is one cell, run wherever its device is free.

The model (with its build record and companions) goes to the nodes by content (transport.py);
each cell builds what it times (cached per host and content hash), warms up and times as a local
sweep does, and comes back as a row with its host and device. Rows are journaled on the driver as
they arrive (`.<name>.cells.jsonl` in the output folder), so a re-run of the same command skips
finished cells; the journal goes once every cell has finished. A failed cell does not stop the
others (they run in parallel); the report marks it and the command exits 1, as a local sweep that
stopped early does.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ssdconvert.backends.base import Backend, BackendOptions
from ssdconvert.cluster import adapter
from ssdconvert.cluster.journal import Journal, cell_key
from ssdconvert.cluster.requests import BenchRequest
from ssdconvert.cluster.schedule import DEFAULT_ATTEMPTS, Cell, run_cells
from ssdconvert.cluster.session import current
from ssdconvert.cluster.transport import Bundle, digest_of, model_files, pack, relative_files


def ship(session, files: Sequence[Path], root: Path, primary: str) -> Bundle:
    """A bundle of `files` under `root`: read in place where every node sees `root`, else put in the object store."""
    pairs = relative_files(root, files)
    digest = digest_of(pairs)
    size = sum(p.stat().st_size for _, p in pairs)
    if session.shares(root):
        return Bundle(str(root.resolve()), primary, digest, size)
    return Bundle(str(root.resolve()), primary, digest, size, ref=session.put(pack(pairs)))


def ship_model(session, model: Path) -> Bundle:
    return ship(session, model_files(model), model.parent, model.name)


def ship_folder(session, folder: Path) -> Bundle:
    return ship(session, sorted(p for p in folder.rglob("*") if p.is_file()), folder, ".")


def bench_sweep(model: str | Path, *, backend: str | Backend = "auto",
                options: BackendOptions | Mapping[str, BackendOptions] | None = None, batch_sizes: Sequence[int],
                precisions: Sequence[str | None] = (None,), duration: float = 10.0, warmup: int = 1,
                device: str = "0", output_dir: str | Path = "build/bench", name: str | None = None,
                calib: str | Path | None = None, flops_per_image: float | None = None, feeds=None,
                progress: Callable[[str], None] | None = None, bar: bool | None = None,
                names: Sequence[str] | None = None, max_attempts: int = DEFAULT_ATTEMPTS) -> list:
    """Run the sweep's cells on the open cluster; returns one BenchReport per precision, written as a local
    sweep writes them (`names`: each precision's report stem; default `<model stem>_<backend>[_<precision>]`).
    `backend` and `options` as `run_bench` takes them: the configured backend goes to every cell."""
    session = current()
    model, output_dir = Path(model), Path(output_dir)
    batch_sizes = sorted(dict.fromkeys(int(b) for b in batch_sizes))
    target = adapter.check_bench(model, backend, options, batch_sizes, precisions, device)
    stem = name or f"{model.stem}_{target.name}"
    names = list(names or ([stem] if len(precisions) == 1 else [f"{stem}_{p}" for p in precisions]))
    say = progress or (lambda line: None)
    template = BenchRequest(ship_model(session, model), 0, max(batch_sizes), duration, warmup, device, None,
                            ship_folder(session, Path(calib)) if calib else None, feeds, flops_per_image)
    journal = Journal(output_dir / f".{stem}.cells.jsonl")
    keys = {(p, bs): _key(replace(template, batch=bs, precision=p), target) for p in precisions for bs in batch_sizes}
    cells = [Cell(key, f"{p or target.default_precision} bs {bs}", "bench", (replace(template, batch=bs, precision=p),),
                  target) for (p, bs), key in keys.items() if not journal.done(key)]
    if len(cells) < len(keys):
        say(f"resuming: {len(keys) - len(cells)} of {len(keys)} cells finished earlier ({journal.path})")

    def keep(cell: Cell, result: dict, placement: dict) -> None:
        journal.add(cell.key, {"status": "ok", "result": result, "placement": placement, "failures": cell.failures})
        say(f"{cell.label}: {_line(result['row'])} on {placement['host']} {adapter.device_label(placement)}")

    bar = sys.stderr.isatty() if bar is None else bar
    run = run_cells(session, cells, keep, max_attempts=max_attempts, progress=bar, desc="bench cells")
    unfinished = {o.cell.key: {"status": o.status, "reason": o.reason} for o in run.outcomes if o.status != "ok"}
    reports = []
    for precision, report_name in zip(precisions, names):
        records = {bs: journal.records.get(keys[(precision, bs)]) or unfinished.get(keys[(precision, bs)])
                   for bs in batch_sizes}
        report = adapter.bench_report(model, target, precision, batch_sizes, duration, warmup,
                                      {bs: r for bs, r in records.items() if r is not None}, flops_per_image)
        if run.interrupted:
            report.stopped_early, report.failure = True, "interrupted by the user"
        adapter.write_bench(report, output_dir, report_name)
        reports.append(report)
    if all(journal.done(k) for k in keys.values()):
        journal.remove()
    return reports  # after Ctrl-C: what finished, the rest skipped, stopped early (as a local sweep reports it)


def _key(request: BenchRequest, target: Backend) -> str:
    """What decides a cell's row: the model's content, the backend's options and every other setting but the
    feeds (they follow the model)."""
    return cell_key(kind="bench", model=request.bundle.digest, **adapter.options_key(target), batch=request.batch,
                    max_batch=request.max_batch, duration=request.duration, warmup=request.warmup,
                    device=request.device, precision=request.precision,
                    calib=request.calib.digest if request.calib else None)


def run_bench(model: str | Path, *, precision: str | None = None, name: str | None = None, **settings):
    """`ssdconvert.bench.run_bench` on the open cluster (one precision): the same report, cells spread out."""
    settings.pop("min_runs", None)
    settings.pop("plot", None)
    return bench_sweep(model, precisions=[precision], name=name, **settings)[0]


def _line(row: dict) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('error')}"
    return f"{row['throughput']:.2f} samples/s"
