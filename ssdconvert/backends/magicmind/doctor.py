"""`ssdconvert doctor` for MagicMind: the build (our script under the MagicMind Python), mm_run, cnmon, the
Python runtime, Neuware's environment.

What is looked for, and why:
  * build: no `mm_build` executable, since no public Cambricon source ships one (magicmind_cloud v1.7 builds with a
    gen_model.py per network; the release package's build samples, magicmind/python/samples/mm_build/ and the C++
    samples/mm_build, are not on PATH): ssdconvert's build_model.py, run by the Python that imports the magicmind
    wheel ($SSDCONVERT_MAGICMIND_PYTHON, else this one if it can, else python3); `cnnl --tool` takes another;
  * mm_run: on PATH, then $NEUWARE_HOME/bin, where magicmind_cloud v1.7's env.sh scripts point
    (MM_RUN_PATH=${NEUWARE_HOME}/bin) and its benchmark/perf.sh scripts run it.
"""

from __future__ import annotations

from ssdconvert.doctor import Check, env_checks, tool_check
from ssdconvert.launcher import ToolFailedError, ToolNotFoundError, ToolSpec, locate_tool, run_tool

ENV_VARS = (
    ("NEUWARE_HOME", "Cambricon Neuware root, usually /usr/local/neuware"),
    ("MLU_VISIBLE_DEVICES", "MLU devices visible to MagicMind / torch_mlu"),
    ("SSDCONVERT_MAGICMIND_PYTHON", "the Python with the magicmind wheel that runs ssdconvert's build script"),
)
CNMON = ToolSpec("cnmon", ("cnmon",), env_homes=("NEUWARE_HOME",), install_hint="Install the Cambricon driver.")
BUILD_CAPABILITY = "compile MagicMind model"
BUILD_MODULES = ("magicmind.python.runtime", "magicmind.python.runtime.parser")
MM_RUN_PURPOSE = ("benchmark MagicMind models (bench); looked for on PATH, then $NEUWARE_HOME/bin, where Cambricon's "
                  "magicmind_cloud scripts run it")


def checks() -> list[Check]:
    from ssdconvert.backends.magicmind.mm_run import TOOL as MM_RUN

    return [
        build_check(),
        tool_check(MM_RUN, MM_RUN_PURPOSE, "run MagicMind model (mm_run)"),
        runtime_check(),
        tool_check(CNMON, "Cambricon device info"),
        *env_checks(ENV_VARS),
    ]


def build_check() -> Check:
    """ssdconvert's build script can run: the MagicMind Python imports the runtime and its ONNX parser."""
    from ssdconvert.backends.magicmind.compile import BUILD_SCRIPT, magicmind_python

    python = magicmind_python()
    why = build_python_missing(python)
    if why:
        return Check("tools", "magicmind build", "missing", "",
                     f"{why}. No `mm_build` executable is looked for: Cambricon publishes none (the release package's "
                     "build samples are magicmind/python/samples/mm_build/); `ssdconvert cnnl --tool` takes a build "
                     "script such as magicmind_cloud's gen_model.py", capability=BUILD_CAPABILITY)
    return Check("tools", "magicmind build", "found", "", f"{BUILD_SCRIPT} under {python} (ssdconvert cnnl)",
                 BUILD_CAPABILITY)


def build_python_missing(python: str) -> str | None:
    """Why `python` cannot run the build script (it cannot import the MagicMind runtime and parser), or None."""
    try:
        outcome = run_tool([python, "-c", f"import {', '.join(BUILD_MODULES)}"], log_path=None, timeout=60)
    except ToolFailedError as exc:
        return str(exc)
    if not outcome.ok_exit:
        return (f"{python} cannot import Cambricon's magicmind wheel ({' and '.join(BUILD_MODULES)}): set "
                "SSDCONVERT_MAGICMIND_PYTHON to the Python that has it")
    return None


def runtime_check() -> Check:
    from ssdconvert.backends.magicmind.runner import runtime_missing, runtime_version

    why = runtime_missing()
    if why:
        return Check("runtimes", "magicmind runtime", "missing", "", why, capability="run MagicMind model (runtime)")
    return Check("runtimes", "magicmind runtime", "ok", runtime_version(), "magicmind.python.runtime (infer, bench)",
                 capability="run MagicMind model (runtime)")


def missing(tool: str | None = None) -> str | None:
    """The build must run (--tool found, or the MagicMind Python for our script) and this Python must import the
    MagicMind runtime."""
    from ssdconvert.backends.magicmind.compile import TOOL, magicmind_python
    from ssdconvert.backends.magicmind.runner import runtime_missing

    if tool is not None:
        try:
            locate_tool(TOOL, tool)
        except ToolNotFoundError as exc:
            return str(exc)
    else:
        why = build_python_missing(magicmind_python())
        if why:
            return f"MagicMind build: {why}"
    return runtime_missing()
