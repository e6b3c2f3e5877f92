"""What every backend's compile step shares: its result record, errors, and artefact checks.

A compile adapter (backends/<name>/compile.py) builds an argv list from its own flag table, runs it
with the launcher, and then uses this module to check that the artefact exists, is non-empty and
was written by this run, to write the build record `<artefact>.json`, and to return a
CompileResult (artefacts, exact command, duration, log path).
"""

from __future__ import annotations

import datetime as _dt
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ssdconvert.errors import SsdConvertError
from ssdconvert.launcher import RunOutcome, ToolFailedError

# Slack for comparing artefact mtimes with the run's start time (coarse filesystem clocks).
MTIME_SLACK_S = 1.0


class CompilerError(SsdConvertError):
    """A device compilation cannot be set up (bad option, unusable ONNX)."""


class ArtefactMissingError(ToolFailedError):
    """The tool claimed success but the expected artefact is missing, empty or stale."""


@dataclass
class CompileResult:
    """What one compilation produced. `artefacts[0]` is the file a runner loads."""

    artefacts: list[Path]
    command: list[str]
    seconds: float
    log_path: Path
    tool: str = ""
    dry_run: bool = False
    sidecar: Path | None = None  # <primary>.json with the build record (not written on dry runs)
    info: dict = field(default_factory=dict)  # what was built: soc, precision, batch, input, ...

    @property
    def primary(self) -> Path:
        return self.artefacts[0]

    @property
    def command_line(self) -> str:
        """The command as a copy-pasteable shell line (for display only; we never run it so)."""
        return shlex.join(self.command)


def check_artefacts(tool: str, paths: Iterable[Path], outcome: RunOutcome, log_path: Path,
                    may_be_empty: Iterable[Path] = ()) -> list[Path]:
    """Each path must exist, be non-empty (unless listed in `may_be_empty`) and be written by this run."""
    checked = []
    may_be_empty = {Path(p) for p in may_be_empty}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ArtefactMissingError(
                f"{tool} exited with code 0 but did not write {path}. Full log: {log_path}",
                returncode=outcome.returncode, log_path=log_path)
        stat = path.stat()
        if stat.st_size == 0 and path not in may_be_empty:
            raise ArtefactMissingError(f"{tool} wrote an empty {path}. Full log: {log_path}",
                                       returncode=outcome.returncode, log_path=log_path)
        if stat.st_mtime < outcome.started - MTIME_SLACK_S:
            raise ArtefactMissingError(
                f"{tool} exited with code 0 but {path} is left over from an earlier build "
                f"(not rewritten by this run). Full log: {log_path}",
                returncode=outcome.returncode, log_path=log_path)
        checked.append(path)
    return checked


def fresh(path: Path, outcome: RunOutcome) -> bool:
    try:
        stat = path.stat()
    except OSError:
        return False
    return stat.st_size > 0 and stat.st_mtime >= outcome.started - MTIME_SLACK_S


def log_path_for(artefact_stem: Path, tool: str) -> Path:
    """`build/ssd_bs16` + atc -> `build/ssd_bs16.atc.log` (beside the artefact)."""
    return artefact_stem.with_name(f"{artefact_stem.name}.{tool}.log")


def write_sidecar(primary: Path, record: dict) -> Path:
    """`<primary>.json`: the build record (command line, source sha256, options, timing)."""
    from ssdconvert import __version__
    from ssdconvert.fileio import write_json

    record = {**record, "ssdconvert_version": __version__,
              "written": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    return write_json(primary.with_name(primary.name + ".json"), record)
