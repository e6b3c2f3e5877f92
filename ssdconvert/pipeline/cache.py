"""Stage results keyed by a fingerprint of their inputs, so a re-run reuses finished stages.

A stage is reused only if its inputs are unchanged and its outputs are still what it wrote: every
output file (and every file inside an output folder, hidden ones excepted) is fingerprinted by
name, size and modification time when the stage finishes, and checked again on lookup. A stage's
key covers its inputs and its outputs, so the stages that read them re-run when they change.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ssdconvert.fileio import write_json

STATE_FILE = "pipeline_state.json"


def file_fingerprint(path: str | Path) -> dict:
    """Cheap identity of a file: resolved path, size and modification time."""
    path = Path(path)
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def fingerprint(inputs: object) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def outputs_fingerprint(paths: list[str]) -> str | None:
    """Name, size and mtime of every output file (recursively inside folders); None if one is gone."""
    entries = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if not f.startswith("."):  # locks and in-progress markers change on every run
                        stat = os.stat(os.path.join(root, f))
                        entries.append((os.path.join(root, f), stat.st_size, stat.st_mtime_ns))
        elif path.is_file():
            stat = path.stat()
            entries.append((name, stat.st_size, stat.st_mtime_ns))
        else:
            return None
    return fingerprint(entries)


@dataclass
class StageResult:
    """What one stage did: its key figure in one line, details for the report, and its outputs."""

    name: str
    key: str  # fingerprint of the inputs and the outputs: what the stages that read the outputs depend on
    seconds: float
    figure: str
    data: dict = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    reused: bool = False
    skipped: bool = False  # did not run: its backend is unavailable, or it failed (see `failed`)
    failed: bool = False
    unsupported: bool = False  # skipped because the backend does not build that precision (never a failure)
    inputs_key: str = ""
    outputs_key: str | None = None


class StageCache:
    """Persists StageResults in <workdir>/pipeline_state.json."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / STATE_FILE
        try:
            self.records: dict[str, dict] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.records = {}

    def lookup(self, name: str, inputs: dict) -> StageResult | None:
        """The stored result of `name` if its inputs are unchanged and its outputs are as it left them."""
        record = self.records.get(name)
        if (record and record.get("inputs_key") == fingerprint(inputs)
                and outputs_fingerprint(record["outputs"]) == record.get("outputs_key")):
            return StageResult(**{**record, "reused": True})
        return None

    def recorded(self, name: str) -> bool:
        """True if `name` ran before (if lookup failed, with other inputs: its outputs are stale)."""
        return name in self.records

    def record(self, name: str, inputs: dict, fn: Callable[[], tuple[str, dict, list[Path]]]) -> StageResult:
        """Run `fn` and store its result under `name`, keyed by `inputs`.

        `fn` returns (one-line figure, report data, output paths).
        """
        inputs_key = fingerprint(inputs)
        started = time.perf_counter()
        figure, data, outputs = fn()
        paths = [str(p) for p in outputs]
        outputs_key = outputs_fingerprint(paths)
        result = StageResult(name, fingerprint([inputs_key, outputs_key]), time.perf_counter() - started, figure,
                             data, paths, inputs_key=inputs_key, outputs_key=outputs_key)
        self.records[name] = {k: v for k, v in asdict(result).items() if k not in ("reused", "skipped", "failed")}
        write_json(self.path, self.records)
        return result
