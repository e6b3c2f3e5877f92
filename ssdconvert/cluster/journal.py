"""Finished cells, kept on the driver as they arrive: a re-run of the same command skips them.

One JSON line per finished cell, `{"key": ..., "record": ...}`, appended and flushed the moment
the cell's result reaches the driver (a line cut short by a crash is ignored: that cell runs
again). The key covers everything that decides the cell's result, so a changed option or model
is a different cell. The journal is removed once a sweep has finished every cell.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cell_key(**fields: Any) -> str:
    """A stable key from the cell's deciding fields."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Journal:
    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, Any] = {}
        try:
            lines = path.read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                self.records[entry["key"]] = entry["record"]
            except (ValueError, KeyError, TypeError):
                continue

    def done(self, key: str) -> bool:
        return key in self.records

    def add(self, key: str, record: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"key": key, "record": record}, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records[key] = record

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
