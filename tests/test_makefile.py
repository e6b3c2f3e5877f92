"""The Makefile's venv bootstrap: PyTorch's CPU wheel index is opt-in through TORCH_INDEX."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def install_line(*assignments: str) -> str:
    """The pip line `make` would run to (re)build the venv, without running it."""
    out = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), ".venv/.installed-stamp", *assignments],
                         capture_output=True, text=True, check=True).stdout
    (line,) = [x for x in out.splitlines() if "pip install" in x and "-e " in x]
    return line


def test_torch_index_is_passed_to_pip_only_when_asked():
    assert "--extra-index-url" not in install_line()
    line = install_line(f"TORCH_INDEX={CPU_INDEX}")
    assert f"--extra-index-url {CPU_INDEX}" in line and "-c constraints.txt" in line


def demo_line(*assignments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "-C", str(ROOT), "demo", "STAMP=", *assignments], capture_output=True,
                          text=True)


def test_demo_runs_on_the_real_set_by_default_and_synthetic_on_request():
    import shlex

    (line,) = [x for x in demo_line().stdout.splitlines() if "ssdconvert run" in x]
    words = shlex.split(line)
    flags = dict(zip(words[2::2], words[3::2]))
    assert flags["--model"] == "ssd-mobilenet-v2-fpnlite" and flags["--precisions"] == "fp32,int8"
    for option in ("--annotation", "--image-dir", "--calib"):
        assert (ROOT / flags[option]).exists(), option
    label, _, release = flags["--release"].partition("=")
    assert label == "vendor-int8" and (ROOT / release).is_file()
    (synthetic,) = [x for x in demo_line("data=synthetic").stdout.splitlines() if "ssdconvert run" in x]
    assert "--annotation" not in synthetic and "--workdir build/demo-synthetic" in synthetic
    wrong = demo_line("data=imagenet")
    assert wrong.returncode != 0 and "choose real or synthetic" in wrong.stderr


def pytest_line(*assignments: str) -> str:
    """The pytest line `make test` would run, without running it."""
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "test", *assignments], capture_output=True, text=True,
                         check=True).stdout
    (line,) = [x for x in out.splitlines() if "-m pytest" in x]
    return line


def test_make_test_runs_two_workers_unless_told_to_run_serially():
    assert line_ends(pytest_line(), "-m pytest -q -n 2 --dist loadfile")
    assert line_ends(pytest_line("TEST_WORKERS=0"), "-m pytest -q")


def line_ends(line: str, tail: str) -> bool:
    return line.rstrip().endswith(tail)
