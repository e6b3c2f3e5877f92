"""Crash-safe, resumable infer output: finished batches survive any error and a re-run skips them.

While `infer` runs, outputs go to a hidden sibling of the output folder, `.<name>.partial/`:

    .<name>.partial/<stem>_<i>.bin   each written to a temporary name and renamed when complete
    .<name>.partial/.infer.json      the settings the files were made with (model, backend, batch, inputs)
    .<name>.partial/.timings.jsonl   one line per finished batch: its index and compute times

A batch counts as finished once its timing line is written, which happens after all its files are
renamed into place. A re-run with the same settings keeps those batches (same batch boundaries, so
the result is byte-identical) and runs the rest; other settings start afresh. When every batch is
done the folder replaces `<name>/` in one rename. A lock file `.<name>.lock` keeps two runs apart
(removed after a successful run).
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from preprocess.lock import exclusive_lock
from ssdconvert.errors import SsdConvertError
from stageio.files import remove_temporaries
from stageio.results import write_results

SETTINGS = ".infer.json"
TIMINGS = ".timings.jsonl"


@dataclass
class PartialOutput:
    """The hidden work folder of one infer output and what an earlier, interrupted run finished in it."""

    output: Path
    folder: Path
    done: dict[int, list[float]] = field(default_factory=dict)  # batch index -> compute ms of its calls
    discarded: int = 0  # files of an earlier run with other settings, removed

    def finished(self, batch: int) -> bool:
        return batch in self.done

    def write(self, stems: Sequence[str], outputs: Sequence[np.ndarray]) -> list[str]:
        """`<stem>_<i>.bin` for every real sample (padding slots write nothing); final paths for the summary."""
        return [str(self.output / name) for name in write_results(self.folder, stems, outputs)]

    def finish_batch(self, batch: int, compute_ms: list[float]) -> None:
        """Record `batch` as done (after its files are in place)."""
        with open(self.folder / TIMINGS, "a") as fh:
            fh.write(json.dumps({"batch": batch, "ms": compute_ms}) + "\n")
        self.done[batch] = compute_ms

    def publish(self) -> None:
        """Every batch is done: drop the bookkeeping and move the folder onto `output`."""
        for name in (SETTINGS, TIMINGS):
            (self.folder / name).unlink(missing_ok=True)
        if self.output.exists():
            old = self.output.with_name(f".{self.output.name}.old-{os.getpid()}")
            os.replace(self.output, old)
            os.replace(self.folder, self.output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.folder, self.output)


@contextmanager
def partial_output(output: Path, settings: dict) -> Iterator[PartialOutput]:
    """The work folder for `output`, resumed if an interrupted run left one with the same `settings`."""
    output.parent.mkdir(parents=True, exist_ok=True)

    def refuse(holder: str) -> SsdConvertError:
        return SsdConvertError(f"another `ssdconvert infer` ({holder}) is writing {output}; wait for it or choose "
                               "another --output")

    lock = output.with_name(f".{output.name}.lock")
    with exclusive_lock(lock, refuse):
        folder = output.with_name(f".{output.name}.partial")
        state = PartialOutput(output, folder)
        if _settings_of(folder) == settings:
            remove_temporaries(folder)
            state.done = _timings_of(folder)
        else:
            if folder.exists():
                state.discarded = sum(1 for p in folder.iterdir() if not p.name.startswith("."))
                shutil.rmtree(folder)
            folder.mkdir()
            (folder / SETTINGS).write_text(json.dumps(settings, indent=1) + "\n")
        yield state
        lock.unlink(missing_ok=True)  # done: leave no clutter beside the output (a failed run keeps it)


def _settings_of(folder: Path) -> dict | None:
    try:
        return json.loads((folder / SETTINGS).read_text())
    except (OSError, ValueError):
        return None


def _timings_of(folder: Path) -> dict[int, list[float]]:
    done = {}
    try:
        lines = (folder / TIMINGS).read_text().splitlines()
    except OSError:
        return done
    for line in lines:
        try:
            record = json.loads(line)
            done[int(record["batch"])] = [float(ms) for ms in record["ms"]]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash: that batch runs again
    return done
