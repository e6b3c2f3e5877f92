"""The eval stage on every core: decode + NMS (and the array COCOeval's per-image matching) over
slices of the images, the COCOeval libraries over groups of categories, each in forked workers.

Every split is exact. Images are decoded and matched independently and their rows and matches are
joined in image order; COCOeval scores categories independently and their precision/recall arrays
are joined in category order (postprocess.evaluate). So any worker count gives the result of one
process, bit for bit. Workers are forked (they inherit the result index, the decoder and the ground
truth instead of receiving them pickled); where fork is unavailable, or with one worker, everything
runs here.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

IMAGES_PER_TASK = 96  # decode tasks: small enough to balance the workers and report progress


class Progress(Protocol):
    def update(self, n: int) -> None: ...


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


# What forked workers find here: set by the parent right before it starts them.
_JOB: dict[str, Any] = {}


def _decode_slice(start: int, stop: int) -> tuple[int, np.ndarray, Any]:
    files, decoder, inv_map, batch_size, then = shared_data("decode")
    rows = _rows(replace(files, present=files.present[start:stop]), decoder, inv_map, batch_size)
    return stop - start, rows, then(rows) if then is not None else None


def _rows(files, decoder, inv_map, batch_size: int, progress: Progress | None = None) -> np.ndarray:
    """Rows of files.present in order: a reader thread reads, checks and selects candidates while
    this thread decodes and runs NMS."""
    from stageio.reader import read_batches

    parts = []
    for batch, selected in read_batches(files, batch_size=batch_size, transform=decoder.select):
        parts.append(decoder.rows(selected, batch, inv_map))
        if progress is not None:
            progress.update(len(batch))
    return _concatenated(parts)


def _concatenated(rows: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(rows) if rows else np.zeros((0, 7))


def decode_rows(files, decoder, inv_map: np.ndarray, *, batch_size: int = 8, workers: int = 1,
                progress: Progress | None = None, images_per_task: int = IMAGES_PER_TASK) -> np.ndarray:
    """COCO rows (see postprocess.coco) of every image in `files.present`, in image order."""
    parts = decode_slices(files, decoder, inv_map, batch_size=batch_size, workers=workers, progress=progress,
                          images_per_task=images_per_task)
    return joined_rows(parts)


def decode_slices(files, decoder, inv_map: np.ndarray, *, batch_size: int = 8, workers: int = 1,
                  progress: Progress | None = None, images_per_task: int = IMAGES_PER_TASK,
                  then: Callable[[np.ndarray], Any] | None = None) -> list[tuple[np.ndarray, Any]]:
    """(rows, then(rows)) for consecutive slices of `files.present`, in image order: with several
    workers, slices of `images_per_task` images, each decoded and passed to `then` in a worker (so
    e.g. COCO matching runs beside decoding); with one, a single slice of every image."""
    count = len(files.present)
    workers = min(workers, -(-count // images_per_task))
    if workers <= 1 or not can_fork():
        rows = _rows(files, decoder, inv_map, batch_size, progress)
        return [(rows, then(rows) if then is not None else None)]
    bounds = [(s, min(s + images_per_task, count)) for s in range(0, count, images_per_task)]
    parts = _forked(workers, "decode", (files, decoder, inv_map, batch_size, then), _decode_slice, bounds,
                    lambda done: progress.update(done[0]) if progress is not None else None)
    return [(rows, result) for _, rows, result in parts]


def joined_rows(parts: Sequence[tuple[np.ndarray, Any]]) -> np.ndarray:
    """The rows of decode_slices' parts as one array."""
    return _concatenated([rows for rows, _ in parts])


def run_tasks(workers: int, key: str, shared: Any, task: Callable, args: Sequence[tuple]) -> list:
    """task(*a) for each a in `args`, in up to `workers` forked processes (here with one worker, one
    task, or no fork); in either, `shared_data(key)` returns `shared` (inherited, not pickled).
    Results in the order of `args`. `task` must be module-level."""
    workers = min(workers, len(args))
    if workers > 1 and can_fork():
        return _forked(workers, key, shared, task, args, None)
    _JOB[key] = shared
    try:
        return [task(*a) for a in args]
    finally:
        _JOB.pop(key, None)


def shared_data(key: str) -> Any:
    """In a task of run_tasks (or of the decode workers): what the caller passed as `shared`."""
    return _JOB[key]


def _forked(workers: int, key: str, shared: Any, task: Callable, args: Sequence[tuple],
            on_result: Callable[[Any], None] | None) -> list:
    _JOB[key] = shared
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {pool.submit(task, *a): k for k, a in enumerate(args)}
            results: list = [None] * len(args)
            pending: Iterable = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()
                    if on_result is not None:
                        on_result(results[futures[future]])
            return results
    finally:
        _JOB.pop(key, None)
