"""Crash-safe file writing (a temporary sibling renamed into place), hashing and JSON reading."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ssdconvert.errors import SsdConvertError


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_writable_dir(path: str | Path) -> Path:
    """Create `path` (and parents) or fail with a clear message: the one check of every output folder."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SsdConvertError(f"cannot create directory {path}: {blocker} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SsdConvertError(f"cannot create directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise SsdConvertError(f"directory is not writable: {path}")
    return path


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    ensure_writable_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # e.g. /proc or /sys: the directory exists but takes no new files
        raise SsdConvertError(f"cannot write {target}: {exc.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        try:
            os.replace(tmp_path, target)
        except OSError as exc:
            raise SsdConvertError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def staging_dir(parent: Path, name: str) -> Path:
    """A fresh hidden folder `.<name>.*` in `parent` to build a folder in before renaming it into place, with the
    mode a plain mkdir gives (mkdtemp makes it 0700, which the renamed folder would keep)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    os.chmod(staging, 0o777 & ~_umask())
    return staging


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(target: str | Path, data: object) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return Path(target)


def read_json(path: str | Path, what: str, error: type[Exception] = SsdConvertError) -> object:
    """The JSON document at `path`; `error` names `what` it is when it cannot be read or parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise error(f"{what} {path} is not valid JSON: {exc}") from None
