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


def test_ctrl_c_in_the_bench_stage_stops_the_run_and_is_not_cached(workdir, monkeypatch):
    """Ctrl-C during a sweep stops the whole run (exit 130, the stage named), is never recorded as a finished
    stage, and the next run benches again and writes its report (issue 24 §3.1)."""
    import ssdconvert.bench as bench

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    args = ["run", "--backends", "onnxruntime", *COMMON, "--bench-duration", "0.2", "--workdir", str(workdir)]
    before = json.loads((workdir / "pipeline_state.json").read_text())["bench:onnxruntime"]
    with monkeypatch.context() as patch:
        patch.setattr(bench, "timed_loop", interrupted)
        stopped = CliRunner().invoke(cli, args)
    assert stopped.exit_code == 130, stopped.output
    assert stopped.output.strip().splitlines()[-1] == (
        f"Error: interrupted by the user during [bench:onnxruntime]; the 7 finished stage(s) are kept in {workdir}: "
        "run the same command again to resume from there")
    assert json.loads((workdir / "pipeline_state.json").read_text())["bench:onnxruntime"] == before  # nothing cached
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "[bench:onnxruntime] running ..." in again.output and "reused" not in again.output.split("[bench")[1]
    assert stages(workdir)["bench:onnxruntime"]["figure"].startswith("best ")


def test_an_empty_sweep_fails_its_stage_and_the_report_still_draws(tmp_path):
    """A sweep where no batch size ran is a failed stage, never a finished one; the report's plot skips it."""
    from ssdconvert.pipeline.report import plot_throughput

    assert plot_throughput({"onnxruntime": {}}, tmp_path / "t.png") is None
    assert plot_throughput({"onnxruntime": {}, "openvino": {1: 2.0}}, tmp_path / "t.png") == tmp_path / "t.png"


def test_a_requested_precision_no_backend_can_build_fails_the_run(workdir, fake_vendor_env):
    """`--precisions int8 --backends ascend`: the one cell asked for cannot run (Ascend INT8 is AMCT's job), so the
    run fails saying why instead of exiting 0 with nothing measured (issue 24 §3.10)."""
    result = CliRunner(env=fake_vendor_env).invoke(cli, ["run", "--backends", "ascend", "--precisions", "int8",
                                                         *COMMON, "--workdir", str(workdir)])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: int8 was measured on no backend: ascend@int8 skipped: ") and "AMCT" in last
    assert json.loads((workdir / "report.json").read_text())["problems"] == [last[len("Error: "):]]
