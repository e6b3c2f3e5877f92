"""An advisory lock that only this process holds.

POSIX record locks (`lockf`) belong to the process that took them: worker processes forked while
the lock is held do not inherit it, and the kernel releases it when the holder dies, however it
dies. (`flock` locks belong to the open file, which forked workers share: a killed parent's
workers would keep the lock for as long as they live.) The holder writes its pid into the file,
so whoever is refused is told which process to wait for.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


@contextmanager
def exclusive_lock(path: Path, refuse: Callable[[str], Exception]) -> Iterator[None]:
    """Hold the lock on `path` (created if needed) or raise refuse("pid N") naming the holder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    with open(path, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            handle.seek(0)
            holder = handle.read().strip()
            raise refuse(f"pid {holder}" if holder.isdigit() else "pid unknown") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
