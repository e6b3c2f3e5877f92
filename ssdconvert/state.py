"""Remembers the last artefacts written in a project directory (./.ssdconvert/state.json).

Lets `ssdconvert atc --soc Ascend310P3` find the ONNX that `make onnx` just exported.
"""

from __future__ import annotations

import json
from pathlib import Path

from ssdconvert.fileio import write_json

STATE_FILE = Path(".ssdconvert") / "state.json"


def _read(root: Path) -> dict:
    try:
        return json.loads((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def remember(kind: str, path: str | Path, root: str | Path = ".") -> None:
    root = Path(root)
    state = _read(root)
    state[kind] = str(Path(path).resolve())
    write_json(root / STATE_FILE, state)


def recall(kind: str, root: str | Path = ".") -> Path | None:
    value = _read(Path(root)).get(kind)
    return Path(value) if value else None
