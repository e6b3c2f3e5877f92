"""`ssdconvert doctor` for Ascend: ATC (and its CANN version), ais_bench, npu-smi, the CANN environment."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
from pathlib import Path

from ssdconvert.doctor import Check, env_checks, tool_check
from ssdconvert.launcher import ToolFailedError, ToolNotFoundError, ToolSpec, locate_tool, run_tool

ENV_VARS = (
    ("ASCEND_TOOLKIT_HOME", "CANN toolkit root (set by set_env.sh)"),
    ("ASCEND_HOME_PATH", "CANN root (newer set_env.sh)"),
    ("ASCEND_OPP_PATH", "CANN operator package"),
    ("ASCEND_GLOBAL_LOG_LEVEL", "0 debug .. 3 error (default) .. 4 null"),
    ("ASCEND_SLOG_PRINT_TO_STDOUT", "1 prints CANN logs to the screen"),
)
NPU_SMI = ToolSpec("npu-smi", ("npu-smi",), install_hint="Install the Ascend NPU driver.")


def checks() -> list[Check]:
    from ssdconvert.backends.ascend.compile import TOOL

    return [
        tool_check(TOOL, "compile .om (ssdconvert atc)", "compile .om (atc)", version=cann_version),
        ais_bench_check(),
        tool_check(NPU_SMI, "Ascend device info (--soc name)"),
        *env_checks(ENV_VARS),
    ]


def cann_version(atc_path: Path) -> str:
    """CANN version from a `version.info`/`version.cfg` above atc [unverified file layout]."""
    for parent in list(atc_path.resolve().parents)[:4]:
        for name in ("version.info", "version.cfg"):
            try:
                text = (parent / name).read_text(errors="replace")
            except OSError:
                continue
            m = re.search(r"(?im)^\s*version\s*=\s*(\S+)", text) or re.search(r"(\d+\.\d+\.\w+(?:\.\w+)?)", text)
            if m:
                return m.group(1)
    return "?"


def ais_bench_check() -> Check:
    """The .om inference tool (`python3 -m ais_bench`, package ais_bench.infer) or `msit benchmark`."""
    capability = "run .om (ais_bench)"
    try:
        spec = importlib.util.find_spec("ais_bench")
    except (ImportError, ValueError):
        spec = None
    msit = shutil.which("msit")
    if spec is None and msit is None:
        return Check("tools", "ais_bench", "missing",
                     detail="run .om models: build the aclruntime and ais_bench wheels from Ascend/tools "
                            "(ais-bench_workload/tool/ais_bench), or `msit install benchmark`", capability=capability)
    if spec is not None:
        locations = list(spec.submodule_search_locations or [])
        has_infer = any((Path(loc) / "infer").is_dir() for loc in locations)
        try:
            version = importlib.metadata.version("ais_bench")
        except importlib.metadata.PackageNotFoundError:
            version = "?"
        where = locations[0] if locations else str(spec.origin)
        if not has_infer:
            return Check("tools", "ais_bench", "error", version,
                         f"{where}: this ais_bench has no `infer` package (the LLM 'AISBench benchmark' "
                         "shares the name); install the .om inference tool", capability=capability)
        return Check("tools", "ais_bench", "found", version, f"{where} (python3 -m ais_bench)", capability)
    return Check("tools", "ais_bench", "found", "", f"{msit} (msit benchmark)", capability)


def missing(tool: str | None = None) -> str | None:
    """ATC must be found (--atc-tool, PATH, the CANN env) and some Python must run `-m ais_bench`."""
    from ssdconvert.backends.ascend.ais_bench import ais_bench_python
    from ssdconvert.backends.ascend.compile import TOOL

    try:
        locate_tool(TOOL, tool)
    except ToolNotFoundError as exc:
        return str(exc)
    try:
        probe = run_tool([ais_bench_python(), "-c", "import ais_bench.infer.interface"], log_path=None, timeout=60)
    except ToolFailedError as exc:
        return str(exc)
    if not probe.ok_exit:
        return "ATC found, but ais_bench (python3 -m ais_bench) is not importable to run the .om"
    return None
