"""Stage results keyed by a fingerprint of their inputs, so a re-run reuses finished stages."""

from __future__ import annotations

import hashlib
import json
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


def fingerprint(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageResult:
    """What one stage did: its key figure in one line, details for the report, and its outputs."""

    name: str
    key: str
    seconds: float
    figure: str
    data: dict = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    reused: bool = False
    skipped: bool = False


class StageCache:
    """Persists StageResults in <workdir>/pipeline_state.json."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / STATE_FILE
        try:
            self.records: dict[str, dict] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.records = {}

    def lookup(self, name: str, inputs: dict) -> StageResult | None:
        """The stored result of `name` if its inputs are unchanged and its outputs still exist."""
        record = self.records.get(name)
        if record and record["key"] == fingerprint(inputs) and all(Path(p).exists() for p in record["outputs"]):
            return StageResult(**{**record, "reused": True})
        return None

    def recorded(self, name: str) -> bool:
        """True if `name` ran before (if lookup failed, with other inputs: its outputs are stale)."""
        return name in self.records

    def record(self, name: str, inputs: dict, fn: Callable[[], tuple[str, dict, list[Path]]]) -> StageResult:
        """Run `fn` and store its result under `name`, keyed by `inputs`.

        `fn` returns (one-line figure, report data, output paths).
        """
        key = fingerprint(inputs)
        started = time.perf_counter()
        figure, data, outputs = fn()
        result = StageResult(name, key, time.perf_counter() - started, figure, data, [str(p) for p in outputs])
        self.records[name] = {k: v for k, v in asdict(result).items() if k not in ("reused", "skipped")}
        write_json(self.path, self.records)
        return result
