"""The --save_path directory: one run at a time, resume only with the same settings, manifest last.

While a run changes the directory there is no manifest.json, only a hidden marker holding the
run's settings; manifest.json is written when the run ends. So a manifest always describes a
finished run, and a re-run after a crash knows which settings the existing .bin files were made with.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from preprocess.errors import PreprocessError
from preprocess.lock import exclusive_lock
from preprocess.manifest import FILE_NAME as MANIFEST_NAME
from preprocess.manifest import Manifest, read_manifest, write_manifest

LOCK_NAME = ".preprocess.lock"
PARTIAL_NAME = ".preprocess.partial.json"


def prepare(directory: Path) -> None:
    """Create `directory` (and parents) or fail with a clear message."""
    if directory.exists() and not directory.is_dir():
        raise PreprocessError(f"--save_path {directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PreprocessError(f"cannot create --save_path {directory}: {exc.strerror or exc}") from None


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """One preprocess run per directory; the lock dies with the process that holds it (preprocess.lock)."""
    def refuse(holder: str) -> PreprocessError:
        return PreprocessError(f"another `ssdconvert preprocess` ({holder}) is writing to {directory}; "
                               "wait for it or choose another --save_path")

    with exclusive_lock(directory / LOCK_NAME, refuse):
        yield


def _plain(value: object) -> object:
    return json.loads(json.dumps(value))  # tuples -> lists, so settings compare like the json on disk


def _previous_settings(directory: Path) -> dict | None:
    marker = directory / PARTIAL_NAME
    if marker.exists():
        try:
            return json.loads(marker.read_text())
        except ValueError:
            return {}  # unreadable marker: unknown settings
    if (directory / MANIFEST_NAME).exists():
        try:
            manifest = read_manifest(directory)
        except PreprocessError as exc:
            raise PreprocessError(f"{exc}; pass --overwrite to rebuild {directory}") from None
        return settings_of(manifest)
    return None


def settings_of(manifest: Manifest) -> dict:
    """What existing .bin files depend on: the tensor format and transform, the side inputs written
    beside them, and the image directory."""
    settings = {"input": manifest.input.to_dict(), "data_root": manifest.data_root}
    if manifest.side_inputs:  # absent for single-input models, so their earlier runs stay resumable
        settings["side_inputs"] = [side.to_dict() for side in manifest.side_inputs]
    return _plain(settings)


def check_resumable(directory: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to mix new .bin files with ones made differently (unless --overwrite)."""
    if overwrite:
        return
    previous = _previous_settings(directory)
    if previous is None:
        if any(directory.glob("*.bin")):
            raise PreprocessError(f"{directory} already holds .bin files that no manifest.json describes; "
                                  "pass --overwrite to replace them or choose an empty --save_path")
        return
    if previous != settings:
        old_input, new_input = previous.get("input") or {}, settings["input"]
        changed = [f"{k} {old_input.get(k)!r} -> {v!r}" for k, v in new_input.items() if old_input.get(k) != v]
        if previous.get("data_root") != settings["data_root"]:
            changed.append(f"data_root {previous.get('data_root')!r} -> {settings['data_root']!r}")
        raise PreprocessError(f"{directory} holds .bin files made with other settings "
                              f"({'; '.join(changed) or 'unknown'}); pass --overwrite to rebuild it "
                              "or choose another --save_path")


def begin(directory: Path, settings: dict) -> None:
    """Record the run's settings, then withdraw the old manifest: the directory is now changing."""
    marker = directory / PARTIAL_NAME
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(settings, indent=1) + "\n")
    os.replace(tmp, marker)
    (directory / MANIFEST_NAME).unlink(missing_ok=True)


def finish(directory: Path, manifest: Manifest) -> Path:
    """Write manifest.json (atomically) and drop the in-progress marker."""
    path = write_manifest(directory, manifest)
    (directory / PARTIAL_NAME).unlink(missing_ok=True)
    return path


def previous_sizes(directory: Path) -> dict[str, tuple[int, int]]:
    """stem -> decoded (width, height) recorded by the manifest of an earlier finished run (if any)."""
    if not (directory / MANIFEST_NAME).exists():
        return {}
    try:
        manifest = read_manifest(directory)
    except PreprocessError:
        return {}
    return {r.stem: (r.decoded_width, r.decoded_height) for r in manifest.images
            if r.decoded_width and r.decoded_height}


def stray_bins(directory: Path, stems: set[str]) -> list[str]:
    """.bin files in `directory` that the manifest does not list (ais_bench would still read them)."""
    return sorted(p.name for p in directory.glob("*.bin") if p.name[:-4] not in stems)
