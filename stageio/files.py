"""Crash-safe tensor files (preprocess's `<stem>.bin`, infer's `<stem>_<i>.bin`): write to a temporary
name, rename when complete, judge old files by size.

A temporary file is `.<stem>.bin.tmp-<pid>` in the same directory: hidden, not ending in `.bin`
(ais_bench only reads *.bin / *.npy), and renamed over the final name only once fully written.
So a `<stem>.bin` is either absent or complete; a crash leaves at most temporaries behind, which
the next run removes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

TEMP_MARK = ".bin.tmp-"


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}{TEMP_MARK}{os.getpid()}")


def write_atomic(path: Path, array: np.ndarray) -> None:
    """Write `array` raw, C-order, no header (ndarray.tofile format) to `path` atomically."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(memoryview(np.ascontiguousarray(array)).cast("B"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def is_complete(path: Path, nbytes: int) -> bool:
    """True if `path` exists with exactly `nbytes` bytes (our files are never partial; others may be)."""
    try:
        return path.stat().st_size == nbytes
    except FileNotFoundError:
        return False


def remove_temporaries(directory: Path) -> int:
    """Delete temporaries left by an interrupted run; return how many."""
    stale = list(directory.glob(f".*{TEMP_MARK}*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)
