"""The shared tool runner: locating, running without a shell, logging, timeouts, verdicts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from ssdconvert.backends.ascend import compile as atc
from ssdconvert.backends.compiling import ArtefactMissingError, check_artefacts
from ssdconvert.launcher import (
    ToolFailedError, ToolNotFoundError, ToolSpec, ToolTimeoutError, locate_tool, raise_failure, run_tool,
)


def test_locate_order_tool_then_path_then_vendor_env(tmp_path, launcher):
    write_launcher = launcher
    on_path = write_launcher(tmp_path / "onpath", "atc", "atc.py")
    toolkit = tmp_path / "toolkit"
    in_home = write_launcher(toolkit / "bin", "atc", "atc.py")
    explicit = write_launcher(tmp_path / "mine", "atc", "atc.py")
    env = {"PATH": str(on_path.parent), "ASCEND_TOOLKIT_HOME": str(toolkit)}

    assert locate_tool(atc.TOOL, str(explicit), env=env) == explicit.resolve()
    assert locate_tool(atc.TOOL, env=env) == on_path
    assert locate_tool(atc.TOOL, env={"PATH": "/nonexistent", "ASCEND_TOOLKIT_HOME": str(toolkit)}) == in_home
    # CANN layouts with the wrapper under compiler/bin and ASCEND_HOME_PATH (newer set_env.sh)
    newer = tmp_path / "cann"
    wrapped = write_launcher(newer / "compiler" / "bin", "atc", "atc.py")
    assert locate_tool(atc.TOOL, env={"PATH": "/nonexistent", "ASCEND_HOME_PATH": str(newer)}) == wrapped


def test_missing_tool_says_what_to_source():
    with pytest.raises(ToolNotFoundError) as err:
        locate_tool(atc.TOOL, env={"PATH": "/nonexistent"})
    message = str(err.value)
    assert "set_env.sh" in message and "ASCEND_TOOLKIT_HOME" in message and "--tool" in message
    assert "\n" not in message


def test_explicit_tool_that_does_not_exist(tmp_path):
    with pytest.raises(ToolNotFoundError, match="no such file"):
        locate_tool(atc.TOOL, str(tmp_path / "nope" / "atc"))
    with pytest.raises(ToolNotFoundError, match="not found on PATH"):
        locate_tool(atc.TOOL, "definitely-not-a-tool-xyz", env={"PATH": str(tmp_path)})


def test_argv_is_passed_verbatim_without_a_shell(tmp_path):
    tricky = ["image:-1,3,300,300;other:1", "$HOME", "a b", '"quoted"', "*"]
    outcome = run_tool([sys.executable, "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *tricky],
                       log_path=tmp_path / "t.log", timeout=30)
    import json

    assert outcome.returncode == 0
    assert json.loads(outcome.output.strip()) == tricky


def test_log_file_has_command_output_and_exit_code_and_progress_sees_it(tmp_path):
    seen: list[str] = []
    script = "import sys; print('hello'); sys.stdout.write('...'); sys.stdout.flush(); " \
             "print('oops', file=sys.stderr); sys.exit(3)"
    log = tmp_path / "deep" / "x.tool.log"
    outcome = run_tool([sys.executable, "-c", script], log_path=log, timeout=30, progress=seen.append)
    text = log.read_text()
    assert outcome.returncode == 3 and not outcome.timed_out
    assert text.startswith("# command: ") and "hello" in text and "oops" in text
    assert "# exit code: 3" in text and "# seconds: " in text
    assert "hello" in "".join(seen) and "oops" in "".join(seen)


def test_timeout_kills_the_whole_process_group(tmp_path):
    # The tool starts a grandchild (like atc -> atc.bin -> op compiler workers) and hangs.
    script = "sleep 120 & echo $!; wait"
    t0 = time.monotonic()
    outcome = run_tool(["sh", "-c", script], log_path=tmp_path / "h.log", timeout=1.0)
    assert outcome.timed_out and time.monotonic() - t0 < 15
    grandchild = int(outcome.output.split()[0])
    time.sleep(0.2)
    assert not _alive(grandchild)
    assert "timed out after 1 s" in (tmp_path / "h.log").read_text()
    with pytest.raises(ToolTimeoutError, match=r"within 1 s.*--timeout.*h\.log"):
        raise_failure("sh", outcome, tmp_path / "h.log", timeout=1.0)


def _alive(pid: int) -> bool:
    """True if pid runs (a zombie left for a non-reaping container init counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_crash_without_output_is_described(tmp_path):
    outcome = run_tool([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                       log_path=tmp_path / "c.log", timeout=30)
    with pytest.raises(ToolFailedError) as err:
        raise_failure("atc", outcome, tmp_path / "c.log")
    message = str(err.value)
    assert "SIGSEGV" in message and "printed nothing" in message and "c.log" in message


def test_unstartable_tool_is_a_clear_error(tmp_path):
    bad = tmp_path / "atc"
    bad.write_text("not a program")
    bad.chmod(0o755)
    with pytest.raises(ToolFailedError, match="cannot start"):
        run_tool([str(bad)], log_path=tmp_path / "b.log", timeout=10)


def test_artefact_checks_missing_empty_stale(tmp_path):
    outcome = run_tool([sys.executable, "-c", "pass"], log_path=tmp_path / "a.log", timeout=30)
    with pytest.raises(ArtefactMissingError, match="did not write"):
        check_artefacts("tool", [tmp_path / "none.om"], outcome, tmp_path / "a.log")
    empty = tmp_path / "empty.om"
    empty.touch()
    with pytest.raises(ArtefactMissingError, match="empty"):
        check_artefacts("tool", [empty], outcome, tmp_path / "a.log")
    stale = tmp_path / "stale.om"
    stale.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    with pytest.raises(ArtefactMissingError, match="left over from an earlier build"):
        check_artefacts("tool", [stale], outcome, tmp_path / "a.log")
    fresh = tmp_path / "fresh.om"
    fresh.write_bytes(b"x")
    assert check_artefacts("tool", [fresh], outcome, tmp_path / "a.log") == [fresh]


def test_python_script_tool_runs_under_python3(tmp_path):
    from ssdconvert.launcher import command_prefix

    script = tmp_path / "gen_model.py"
    script.write_text("print('hi')\n")
    script.chmod(0o644)
    prefix = command_prefix(script)
    assert Path(prefix[0]).name.startswith("python") and prefix[1] == str(script)
    spec = ToolSpec("x", ("x",))
    assert locate_tool(spec, str(script)) == script.resolve()


def test_a_silent_tool_gets_still_running_lines_and_the_timeout_still_kills(tmp_path):
    import sys

    from ssdconvert.launcher import run_tool

    said: list[str] = []
    script = "import sys, time; print('start', flush=True); time.sleep(30)"
    outcome = run_tool([sys.executable, "-c", script], log_path=tmp_path / "t.log", timeout=1.0,
                       progress=said.append, heartbeat=0.3)
    assert outcome.timed_out
    beats = [s for s in said if "still running" in s]
    assert 1 <= len(beats) <= 3 and "killed at 1 s (--timeout)" in beats[0]
    assert said[0].startswith("start")
    quiet = run_tool([sys.executable, "-c", "print('x')"], log_path=None, timeout=5, progress=said.append,
                     heartbeat=0.3)
    assert quiet.returncode == 0
