"""`source tests/fakes/env.sh` (docs/vendor-contracts.md: rehearse without hardware) makes every vendor backend runnable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sourcing_the_fakes_makes_ascend_and_magicmind_available(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    for var in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH", "NEUWARE_HOME", "PYTHONPATH"):
        env.pop(var, None)
    script = (f"source {ROOT / 'tests' / 'fakes' / 'env.sh'} >/dev/null && cd {tmp_path} && "
              "command -v atc mm_run && ssdconvert doctor --json")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [Path(p).name for p in lines[:2]] == ["atc", "mm_run"]
    doctor = json.loads("\n".join(lines[2:]))
    can = doctor["capabilities"]
    for what in ("compile .om (atc)", "run .om (ais_bench)", "compile MagicMind model",
                 "run MagicMind model (mm_run)", "run MagicMind model (runtime)"):
        assert can[what], (what, can)
