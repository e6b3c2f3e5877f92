"""`ssdconvert run` loses nothing and says so: a changed output re-runs its stage, a second run in the
same work directory is refused with the holder's pid, and a failed backend fails the run (exit 1)
while the report still lists it with its reason.

The tests share one work directory and run in order (each starts from what the previous left).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli

COMMON = ["--images", "3", "--bs", "1", "--bench-duration", "0.1", "--workers", "1"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reliable")
    result = CliRunner().invoke(cli, ["run", "--backends", "onnxruntime", *COMMON, "--workdir", str(path)])
    assert result.exit_code == 0, result.output
    return path


def stages(workdir: Path) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads((workdir / "report.json").read_text())["stages"]}


def test_a_deleted_input_tensor_reruns_preprocess_and_everything_that_read_it(workdir):
    victim = sorted((workdir / "ssd_bin").glob("*.bin"))[0]
    content = victim.read_bytes()
    victim.unlink()
    result = CliRunner().invoke(cli, ["run", "--backends", "onnxruntime", *COMMON, "--workdir", str(workdir)])
    assert result.exit_code == 0, result.output
    ran = stages(workdir)
    assert not ran["preprocess"]["reused"] and victim.read_bytes() == content  # resumed: the one file rewritten
    assert ran["export"]["reused"] and ran["data"]["reused"]
    assert not ran["infer:onnxruntime"]["reused"] and not ran["eval:onnxruntime"]["reused"]
    assert "[preprocess] reused" not in result.output


def test_a_second_run_in_the_same_work_directory_is_refused(workdir):
    # a longer bench makes the first run re-run its bench stage and hold the lock for a few seconds
    args = ["run", "--backends", "onnxruntime", *COMMON, "--bench-duration", "4", "--workdir", str(workdir)]
    first = subprocess.Popen([sys.executable, "-m", "ssdconvert", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        lock = workdir / ".ssdconvert-run.lock"
        while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
            assert time.monotonic() < deadline and first.poll() is None, "the first run never took the lock"
            time.sleep(0.02)
        second = CliRunner().invoke(cli, args)
        assert first.poll() is None, "the first run ended too early for this test to mean anything"
    finally:
        out, err = first.communicate(timeout=300)
    assert second.exit_code == 1
    assert second.output.strip().splitlines()[-1] == (
        f"Error: another `ssdconvert run` (pid {first.pid}) is using {workdir}; wait for it or choose another "
        "--workdir")
    assert first.returncode == 0, err


def test_a_failed_backend_fails_the_run_and_stays_in_the_report(workdir, fake_vendor_env):
    env = {**fake_vendor_env, "FAKE_ATC_MODE": "fail:E10001"}
    result = CliRunner(env=env).invoke(cli, ["run", "--backends", "onnxruntime,ascend", *COMMON,
                                             "--workdir", str(workdir)])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: 1 backend(s) did not pass: ascend: compile:ascend: FAILED: ") and "E10001" in last
    report = json.loads((workdir / "report.json").read_text())
    rows = {r["backend"]: r for r in report["accuracy"]}
    assert rows["onnxruntime"]["gate"] == "ok"
    assert rows["ascend"]["gate"] == "FAILED" and rows["ascend"]["AP"] is None and "E10001" in rows["ascend"]["reason"]
    assert report["problems"] == [last[len("Error: 1 backend(s) did not pass: "):]]
    markdown = (workdir / "report.md").read_text()
    assert "| ascend | – | – | – | FAILED |" in markdown  # the reason is in the Stages table and under Result
    assert f"## Result: FAILED\n\n- {report['problems'][0]}" in markdown
