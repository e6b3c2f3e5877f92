"""Runs the Ray tests (ray_cases.py) in a private network namespace, so every Ray socket stays on loopback.

Ray 2.60 listens on all interfaces (`*:port`) and starts its runtime-env agent on the machine's
external address even when told `_node_ip_address="127.0.0.1"`; inside a namespace that has only
`lo` every socket binds 127.0.0.1. `unshare -n` needs root (CI runs as root), `unshare -rn` needs
user namespaces; where neither works the tests are skipped with that reason. The inner pytest
shares one multi-node cluster across its tests (module fixture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("ray_cases.py")
ROOT = Path(__file__).resolve().parents[2]


def _namespace() -> list[str] | None:
    """The `unshare` prefix that makes a network namespace here (with `lo` brought up inside), or None."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        probe = subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


def test_ray_cases_in_a_private_network_namespace():
    prefix = _namespace()
    if prefix is None:
        pytest.skip("no private network namespace can be made here (`unshare -n` needs root, `unshare -rn` user "
                    "namespaces; `ip` from iproute2): the Ray tests run only where every socket stays on loopback")
    script = 'ip link set lo up && exec "$@"'
    argv = [*prefix, "sh", "-c", script, "sh", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-o", "addopts=--import-mode=importlib -ra", "-m", "not heavy", str(CASES)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
    print(tail)
    assert done.returncode == 0, tail
    assert " passed" in done.stdout and " skipped" not in done.stdout.splitlines()[-1], tail
