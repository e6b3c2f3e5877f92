"""`ssdconvert doctor` for MagicMind: the build tool, mm_run, cnmon, the Python runtime, Neuware's environment."""

from __future__ import annotations

from ssdconvert.doctor import Check, env_checks, tool_check
from ssdconvert.launcher import ToolNotFoundError, ToolSpec, locate_tool

ENV_VARS = (
    ("NEUWARE_HOME", "Cambricon Neuware root, usually /usr/local/neuware"),
    ("MLU_VISIBLE_DEVICES", "MLU devices visible to MagicMind / torch_mlu"),
)
CNMON = ToolSpec("cnmon", ("cnmon",), env_homes=("NEUWARE_HOME",), install_hint="Install the Cambricon driver.")


def checks() -> list[Check]:
    from ssdconvert.backends.magicmind.compile import TOOL
    from ssdconvert.backends.magicmind.mm_run import TOOL as MM_RUN

    return [
        tool_check(TOOL, "compile MagicMind models (ssdconvert cnnl)", "compile MagicMind model (mm_build)"),
        tool_check(MM_RUN, "benchmark MagicMind models (bench)", "run MagicMind model (mm_run)"),
        runtime_check(),
        tool_check(CNMON, "Cambricon device info"),
        *env_checks(ENV_VARS),
    ]


def runtime_check() -> Check:
    from ssdconvert.backends.magicmind.runner import runtime_missing, runtime_version

    why = runtime_missing()
    if why:
        return Check("runtimes", "magicmind runtime", "missing", "", why, capability="run MagicMind model (runtime)")
    return Check("runtimes", "magicmind runtime", "ok", runtime_version(), "magicmind.python.runtime (infer, bench)",
                 capability="run MagicMind model (runtime)")


def missing(tool: str | None = None) -> str | None:
    """The build tool must be found (or given) and this Python must import the MagicMind runtime."""
    from ssdconvert.backends.magicmind.compile import TOOL
    from ssdconvert.backends.magicmind.runner import runtime_missing

    try:
        locate_tool(TOOL, tool)
    except ToolNotFoundError as exc:
        return str(exc)
    return runtime_missing()
