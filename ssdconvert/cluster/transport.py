"""Artefacts travel by content: a model (with the files it reads beside it) or a slice of the input bins.

The driver packs the files into one byte array and puts it in Ray's object store; a task unpacks
it into a per-host cache keyed by the content hash (`$SSDCONVERT_CLUSTER_CACHE`, default
`~/.cache/ssdconvert/cluster`), so the next task on that host finds it there. Where every live node
sees the driver's path (a shared file system), nothing is copied: the driver writes a probe file
with a random token beside the files and a task on each node reads it back; only if every node
reads the token is the path used as it is. `SSDCONVERT_CLUSTER_TRANSPORT=object-store` (or
`shared`) overrides the detection.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError

TRANSPORTS = ("auto", "shared", "object-store")
PROBE_PREFIX = ".ssdconvert-probe-"


@dataclass(frozen=True)
class Packed:
    """Files as one byte array: (relative path, offset, size) per file."""

    index: tuple[tuple[str, int, int], ...]
    data: np.ndarray  # uint8

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


def pack(files: Sequence[tuple[str, Path]]) -> Packed:
    """Read (relative path, file) pairs into one array."""
    sizes = [path.stat().st_size for _, path in files]
    data = np.empty(sum(sizes), dtype=np.uint8)
    index, offset = [], 0
    view = memoryview(data)
    for (rel, path), size in zip(files, sizes):
        with open(path, "rb") as fh:
            if fh.readinto(view[offset:offset + size]) != size:
                raise SsdConvertError(f"{path} changed size while it was being read")
        index.append((rel, offset, size))
        offset += size
    return Packed(tuple(index), data)


def unpack(packed: Packed, folder: Path) -> None:
    """Write every file of `packed` under `folder` (relative paths kept; none may leave it)."""
    root = folder.resolve()
    for rel, offset, size in packed.index:
        target = folder / rel
        if not target.resolve().is_relative_to(root):
            raise SsdConvertError(f"packed file {rel!r} would be written outside {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(packed.data[offset:offset + size].tobytes())


def model_files(model: Path) -> list[Path]:
    """The model and what its runtime reads beside it: its build record `<model>.json`, an OpenVINO
    IR's `.bin`, a composite's parts (each with theirs). To move into the backend plugins."""
    from ssdconvert.backends import composite

    files = [model]
    if composite.is_composite(model):
        for part in composite.read(model).parts:
            files += model_files(part.path)
    for companion in (Path(f"{model}.json"), model.with_suffix(".bin") if model.suffix == ".xml" else None):
        if companion is not None and companion.is_file():
            files.append(companion)
    return list(dict.fromkeys(files))


def relative_files(root: Path, files: Sequence[Path]) -> list[tuple[str, Path]]:
    out = []
    for path in files:
        try:
            rel = path.resolve().relative_to(root.resolve())
        except ValueError:
            raise SsdConvertError(f"{path} is outside {root}: keep a model's files in its folder") from None
        out.append((rel.as_posix(), path))
    return out


def digest_of(files: Sequence[tuple[str, Path]]) -> str:
    """sha256 over relative names and contents."""
    h = hashlib.sha256()
    for rel, path in files:
        h.update(rel.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A model on its way to a task: its driver path, and its packed bytes unless every node sees that path."""

    root: str  # the folder on the driver
    primary: str  # the model file, relative to root
    digest: str
    nbytes: int
    ref: Any = field(default=None, compare=False)  # ObjectRef of a Packed, or None: read `root` directly

    @property
    def shared(self) -> bool:
        return self.ref is None


def cache_root() -> Path:
    return Path(os.environ.get("SSDCONVERT_CLUSTER_CACHE") or Path.home() / ".cache" / "ssdconvert" / "cluster")


def local_model(bundle: Bundle) -> Path:
    """Inside a task: the model file on this host (the shared path, or the cached unpacked copy)."""
    if bundle.shared:
        return Path(bundle.root) / bundle.primary
    return materialise(bundle.digest, bundle.ref) / bundle.primary


def materialise(digest: str, ref: Any) -> Path:
    """The unpacked copy of object `ref` in this host's cache, fetched once per content hash."""
    import ray

    folder = cache_root() / digest
    done = folder / ".complete"
    if done.is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two tasks on one host fetch it once
        if not done.is_file():
            work = folder.parent / f".{digest}.partial"
            shutil.rmtree(work, ignore_errors=True)
            unpack(ray.get(ref), work)
            (work / ".complete").write_text(json.dumps({"digest": digest}))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(work, folder)
    return folder


def write_probe(folder: Path) -> tuple[Path, str] | None:
    """A probe file with a random token in `folder` (None where the driver cannot write there)."""
    token = secrets.token_hex(16)
    probe = folder / f"{PROBE_PREFIX}{token}"
    try:
        probe.write_text(token)
    except OSError:
        return None
    return probe, token


def reads_probe(path: str, token: str) -> bool:
    """Inside a task: does this node see the driver's probe file?"""
    try:
        return Path(path).read_text() == token
    except OSError:
        return False
