"""The one launcher for every external tool (ATC, ovc, the MagicMind build script, mm_run, `python3 -m ais_bench`).

An adapter knows only its own flags and output. This module does the rest, the same way for all:

1. find the executable: `--tool PATH`, then PATH, then the vendor's install env
   (ASCEND_TOOLKIT_HOME / ASCEND_HOME_PATH / NEUWARE_HOME), else say what to install or source;
2. run an argv list (never a shell string) in its own process group, with a timeout that kills
   the whole group (the tool's grandchildren too);
3. stream the tool's full output (stdout + stderr, as the tool interleaves them) into a log file
   while passing it on to a progress callback;
4. turn a failure into one clear line (the tool's own error line + a hint + the log path).
"""

from __future__ import annotations

import codecs
import datetime as _dt
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ssdconvert.errors import SsdConvertError

Progress = Callable[[str], None]
HEARTBEAT_S = 30.0  # a tool silent this long gets a "still running" line on the progress callback


# --------------------------------------------------------------------------------------- errors


class ToolError(SsdConvertError):
    """An external tool could not be found, started, or did not do its job."""


class ToolNotFoundError(ToolError):
    """The vendor tool is not installed, not on PATH, or its environment is not sourced."""


class ToolFailedError(ToolError):
    """The tool ran and reported failure (non-zero exit, no success line, or no output files)."""

    def __init__(self, message: str, *, returncode: int | None = None, codes: Sequence[str] = (),
                 log_path: Path | None = None):
        super().__init__(message)
        self.returncode = returncode
        self.codes = list(codes)
        self.log_path = log_path


class ToolTimeoutError(ToolFailedError):
    """The tool ran longer than the timeout and was killed with its process group."""


# --------------------------------------------------------------------------------- locating tools


@dataclass(frozen=True)
class ToolSpec:
    """How to find one vendor executable and what to tell the user when it is missing."""

    name: str  # display name, e.g. "atc"
    executables: tuple[str, ...]  # names searched on PATH and under the env homes
    env_homes: tuple[str, ...] = ()  # env vars naming an install root, e.g. ASCEND_TOOLKIT_HOME
    home_subdirs: tuple[str, ...] = ("bin",)
    install_hint: str = ""
    # Directories searched before PATH (e.g. the running interpreter's bin for pip-installed ovc).
    prefer_dirs: tuple[str, ...] = ()


def _is_executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate_tool(spec: ToolSpec, tool: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None) -> Path:
    """Find the executable for `spec`; raise ToolNotFoundError with an install hint otherwise."""
    env = os.environ if env is None else env
    if tool is not None:
        return _explicit_tool(spec, str(tool), env)
    for directory in spec.prefer_dirs:
        for exe in spec.executables:
            candidate = Path(directory) / exe
            if _is_executable_file(candidate):
                return candidate
    for exe in spec.executables:
        found = shutil.which(exe, path=env.get("PATH", os.defpath))
        if found:
            return Path(found)
    for var in spec.env_homes:
        root = env.get(var)
        if not root:
            continue
        for sub in spec.home_subdirs:
            for exe in spec.executables:
                candidate = Path(root) / sub / exe
                if _is_executable_file(candidate):
                    return candidate
    looked = ["PATH"] + [f"${v}/{{{','.join(spec.home_subdirs)}}}" for v in spec.env_homes]
    unset = [v for v in spec.env_homes if not env.get(v)]
    where = ", ".join(looked)
    if unset:
        where += f" ({', '.join(unset)} not set)"
    raise ToolNotFoundError(
        f"{spec.name} not found (looked in {where}). {spec.install_hint} "
        f"Or point --tool at the executable."
    )


def _explicit_tool(spec: ToolSpec, tool: str, env: Mapping[str, str]) -> Path:
    path = Path(tool).expanduser()
    if os.sep in tool or path.exists():
        if not path.is_file():
            raise ToolNotFoundError(f"--tool {tool}: no such file")
        if not os.access(path, os.X_OK) and path.suffix != ".py":
            raise ToolNotFoundError(f"--tool {tool}: not executable (chmod +x it, or pass a .py script)")
        return path.resolve()
    found = shutil.which(tool, path=env.get("PATH", os.defpath))
    if not found:
        raise ToolNotFoundError(f"--tool {tool}: not found on PATH. {spec.install_hint}")
    return Path(found)


def command_prefix(executable: Path) -> list[str]:
    """argv prefix that runs `executable`: a non-executable .py script runs under python3."""
    if executable.suffix == ".py" and not os.access(executable, os.X_OK):
        # The vendor's Python (where MagicMind etc. is importable), not necessarily ours.
        return [shutil.which("python3") or sys.executable, str(executable)]
    return [str(executable)]


def resolve_command(spec: ToolSpec, tool: str | os.PathLike | None, *, dry_run: bool) -> list[str]:
    """argv prefix for the tool. A dry run on a machine without the tool uses its bare name."""
    try:
        return command_prefix(locate_tool(spec, tool))
    except ToolNotFoundError:
        if dry_run and tool is None:
            return [spec.executables[0]]
        if dry_run and tool is not None:
            return command_prefix(Path(str(tool)))
        raise


# ------------------------------------------------------------------------------------- running


@dataclass
class RunOutcome:
    returncode: int | None  # negative: killed by that signal (subprocess convention)
    output: str  # stdout and stderr as the tool interleaved them
    seconds: float
    timed_out: bool
    started: float  # time.time() at start, for artefact freshness checks

    @property
    def ok_exit(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def lines(self) -> list[str]:
        # ATC prints progress dots without newlines; a carriage return is also a line break here.
        return [ln.strip() for ln in self.output.replace("\r", "\n").splitlines() if ln.strip()]


def run_tool(argv: Sequence[str], *, log_path: Path | None, timeout: float | None,
             progress: Progress | None = None, cwd: str | os.PathLike | None = None,
             env: Mapping[str, str] | None = None, heartbeat: float = HEARTBEAT_S) -> RunOutcome:
    """Run argv (no shell) in its own process group; tee its output into `log_path` and `progress`.

    `timeout` None waits for ever; `log_path` None keeps no log file (quick probes); `env`
    replaces the environment when given. While the tool is silent for `heartbeat` seconds (ATC
    compiles for minutes without a word), `progress` gets a line with the time elapsed and the
    time left before the timeout.
    """
    argv = [str(a) for a in argv]
    started = time.time()
    t0 = time.perf_counter()
    with (_open_log(Path(log_path)) if log_path is not None else _NullLog()) as log:
        log.write(_log_header(argv, cwd).encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd, env=None if env is None else dict(env), start_new_session=True,
            )
        except OSError as exc:
            log.write(f"# could not start: {exc}\n".encode())
            where = f"; log: {log_path}" if log_path is not None else ""
            raise ToolFailedError(f"cannot start {argv[0]}: {exc.strerror or exc}{where}",
                                  log_path=log_path) from None
        chunks: list[bytes] = []
        lock = threading.Lock()
        closed = threading.Event()  # set once the log is finalised; the pump must stop writing
        pump = threading.Thread(target=_pump, args=(proc, log, chunks, lock, closed, progress), daemon=True)
        pump.start()
        timed_out = False
        try:
            returncode = _wait(proc, t0, timeout, progress, heartbeat, chunks, Path(argv[0]).name)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            returncode = proc.wait()
        except BaseException:  # Ctrl-C: do not leave a compiler running in the background
            _kill_group(proc)
            proc.wait()
            raise
        pump.join(timeout=5.0)  # a grandchild outside the group could hold the pipe open
        seconds = time.perf_counter() - t0
        with lock:
            output = b"".join(chunks).decode("utf-8", errors="replace")
            tail = "" if output.endswith("\n") or not output else "\n"
            if timed_out:
                tail += f"# timed out after {timeout:g} s; killed the process group\n"
            tail += f"# exit code: {returncode}{_signal_note(returncode)}\n# seconds: {seconds:.2f}\n"
            log.write(tail.encode())
            closed.set()
    return RunOutcome(returncode, output, seconds, timed_out, started)


def _open_log(path: Path):
    """The tool's log, opened for writing; an output folder that cannot be written is one clear error."""
    from ssdconvert.fileio import ensure_writable_dir

    ensure_writable_dir(path.parent)
    try:
        return open(path, "wb")
    except OSError as exc:
        raise SsdConvertError(f"cannot write the log {path}: {exc.strerror}") from None


def _wait(proc: subprocess.Popen, t0: float, timeout: float | None, progress: Progress | None, heartbeat: float,
          chunks: list[bytes], name: str) -> int:
    """proc.wait(timeout), saying "still running" on `progress` whenever the tool was silent for `heartbeat` s."""
    deadline = None if timeout is None else t0 + timeout
    heard, silent_since = 0, time.perf_counter()
    while True:
        remaining = None if deadline is None else deadline - time.perf_counter()
        if remaining is not None and remaining <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        step = remaining if progress is None else (heartbeat if remaining is None else min(heartbeat, remaining))
        try:
            return proc.wait(timeout=step)
        except subprocess.TimeoutExpired:
            if progress is None:
                continue
            if len(chunks) != heard:  # it spoke since the last check
                heard, silent_since = len(chunks), time.perf_counter()
            elif time.perf_counter() - silent_since >= heartbeat:
                left = f"; killed at {_duration(timeout)} (--timeout)" if timeout is not None else ""
                progress(f"\n[{name}: still running, {_duration(time.perf_counter() - t0)} so far{left}]\n")
                silent_since = time.perf_counter()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _pump(proc: subprocess.Popen, log, chunks: list[bytes], lock: threading.Lock, closed: threading.Event,
          progress: Progress | None) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stream = proc.stdout
    try:
        while True:
            data = stream.read1(65536)
            if not data:
                break
            with lock:
                if closed.is_set():
                    break
                chunks.append(data)
                log.write(data)
                log.flush()
            if progress is not None:
                text = decoder.decode(data)
                if text:
                    progress(text)
    except (OSError, ValueError):  # pipe or log closed under us after a kill
        pass
    finally:
        try:
            stream.close()
        except OSError:
            pass


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the tool's process group (it is its own session), then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _signal_note(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f" (killed by {signal.Signals(-returncode).name})"
        except ValueError:
            return f" (killed by signal {-returncode})"
    return ""


def _log_header(argv: Sequence[str], cwd) -> str:
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return (f"# command: {shlex.join(argv)}\n# cwd: {Path(cwd or os.getcwd()).resolve()}\n"
            f"# started: {now}\n")


class _NullLog:
    """Stands in for the log file when the caller keeps none."""

    def __enter__(self) -> "_NullLog":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass


# ------------------------------------------------------------------------------ verdict helpers


def describe_exit(outcome: RunOutcome) -> str:
    if outcome.timed_out:
        return "timed out"
    return f"exit code {outcome.returncode}{_signal_note(outcome.returncode)}"


def raise_failure(tool: str, outcome: RunOutcome, log_path: Path, *, error_lines: Sequence[str] = (),
                  codes: Sequence[str] = (), hint: str = "", timeout: float | None = None,
                  error: type[ToolFailedError] = ToolFailedError) -> None:
    """Raise the one-line error for a failed run (timeout, crash, or the tool's own error lines)."""
    if outcome.timed_out:
        raise ToolTimeoutError(
            f"{tool} did not finish within {timeout:g} s and was killed with its process group; raise "
            f"--timeout if it is just slow. Full log: {log_path}", returncode=outcome.returncode, log_path=log_path)
    status = describe_exit(outcome)
    if error_lines:
        detail = error_lines[0]
        if len(error_lines) > 1:
            detail += f" (+{len(error_lines) - 1} more error line(s) in the log)"
    elif not outcome.output.strip():
        detail = "it printed nothing (crashed before writing any output?)"
    else:
        last = outcome.lines()[-1] if outcome.lines() else ""
        detail = f"no known error line; last output: {last[:200]!r}"
    message = f"{tool} failed ({status}): {detail}" + ("" if detail[-1:] in ".!?" else ".")
    if hint:
        message += f" {hint}"
    message += f" Full log: {log_path}"
    raise error(message, returncode=outcome.returncode, codes=codes, log_path=log_path)
