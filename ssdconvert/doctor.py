"""What this machine can do: vendor tools, their environments, runtimes and library versions.

Every probe is defensive: a broken install shows up as a row with status `error`, never as a
crash, so `ssdconvert doctor` always exits 0. Vendor tools are located, not run (their version
flags are not documented); only `ovc --version` (observed) is executed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ssdconvert.compilers.base import ToolNotFoundError, ToolSpec, locate_tool


@dataclass
class Check:
    group: str  # tools | environment | python | runtimes | platform
    name: str
    status: str  # found | missing | set | unset | ok | error
    version: str = ""
    detail: str = ""  # path, value, or what to do

    def as_dict(self) -> dict:
        return asdict(self)


ENV_VARS = (
    ("ASCEND_TOOLKIT_HOME", "CANN toolkit root (set by set_env.sh)"),
    ("ASCEND_HOME_PATH", "CANN root (newer set_env.sh)"),
    ("ASCEND_OPP_PATH", "CANN operator package"),
    ("ASCEND_GLOBAL_LOG_LEVEL", "0 debug .. 3 error (default) .. 4 null"),
    ("ASCEND_SLOG_PRINT_TO_STDOUT", "1 prints CANN logs to the screen"),
    ("NEUWARE_HOME", "Cambricon Neuware root, usually /usr/local/neuware"),
    ("MLU_VISIBLE_DEVICES", "MLU devices visible to MagicMind / torch_mlu"),
)
PACKAGES = ("torch", "onnx", "onnxruntime", "openvino", "onnxslim", "numpy")


def _tool_specs() -> list[tuple[ToolSpec, str]]:
    from ssdconvert.compilers import atc, magicmind, openvino

    mm_run = ToolSpec("mm_run", ("mm_run",), env_homes=("NEUWARE_HOME",),
                      install_hint="Install MagicMind (Neuware) and set NEUWARE_HOME.")
    npu_smi = ToolSpec("npu-smi", ("npu-smi",), install_hint="Install the Ascend NPU driver.")
    cnmon = ToolSpec("cnmon", ("cnmon",), env_homes=("NEUWARE_HOME",), install_hint="Install the Cambricon driver.")
    return [
        (atc.TOOL, "compile .om (ssdconvert atc)"),
        (magicmind.TOOL, "compile MagicMind models (ssdconvert cnnl)"),
        (openvino.TOOL, "compile OpenVINO IR (ssdconvert openvino)"),
        (mm_run, "benchmark MagicMind models"),
        (npu_smi, "Ascend device info (--soc name)"),
        (cnmon, "Cambricon device info"),
    ]


def _tool_checks() -> list[Check]:
    checks = []
    for spec, purpose in _tool_specs():
        name = spec.executables[0]
        try:
            path = locate_tool(spec)
        except ToolNotFoundError:
            hint = spec.install_hint or "not installed"
            checks.append(Check("tools", name, "missing", detail=f"{purpose}: {hint}"))
            continue
        except Exception as exc:  # noqa: BLE001 - doctor never crashes
            checks.append(Check("tools", name, "error", detail=str(exc)))
            continue
        version = ""
        if name == "ovc":
            from ssdconvert.compilers.openvino import ovc_version

            version = (ovc_version(path, timeout=60) or "?").split("-")[0]
        elif name == "atc":
            version = _cann_version(path)
        checks.append(Check("tools", name, "found", version, f"{path} ({purpose})"))
    checks.append(_ais_bench_check())
    return checks


def _cann_version(atc_path: Path) -> str:
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


def _ais_bench_check() -> Check:
    """The .om inference tool (`python3 -m ais_bench`, package ais_bench.infer) or `msit benchmark`."""
    try:
        spec = importlib.util.find_spec("ais_bench")
    except (ImportError, ValueError):
        spec = None
    msit = shutil.which("msit")
    if spec is None and msit is None:
        return Check("tools", "ais_bench", "missing",
                     detail="run .om models: build the aclruntime and ais_bench wheels from Ascend/tools "
                            "(ais-bench_workload/tool/ais_bench), or `msit install benchmark`")
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
                         "shares the name); install the .om inference tool")
        return Check("tools", "ais_bench", "found", version, f"{where} (python3 -m ais_bench)")
    return Check("tools", "ais_bench", "found", "", f"{msit} (msit benchmark)")


def _env_checks() -> list[Check]:
    return [Check("environment", var, "set" if os.environ.get(var) else "unset", "",
                  os.environ.get(var) or meaning) for var, meaning in ENV_VARS]


def _package_checks() -> list[Check]:
    checks = []
    for name in PACKAGES:
        try:
            checks.append(Check("python", name, "found", importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check("python", name, "missing"))
    return checks


def _runtime_checks() -> list[Check]:
    checks = []
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        checks.append(Check("runtimes", "onnxruntime providers", "ok", onnxruntime.__version__, ", ".join(providers)))
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("runtimes", "onnxruntime providers", "error", "", str(exc).splitlines()[0]))
    try:
        import openvino

        devices = openvino.Core().available_devices
        checks.append(Check("runtimes", "openvino devices", "ok", openvino.__version__.split("-")[0],
                            ", ".join(devices) or "none"))
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("runtimes", "openvino devices", "error", "", str(exc).splitlines()[0]))
    return checks


def _platform_checks() -> list[Check]:
    from ssdconvert import __version__

    os_arch = f"{platform.system().lower()}_{platform.machine()}"
    return [
        Check("platform", "ssdconvert", "ok", __version__, str(Path(__file__).resolve().parent)),
        Check("platform", "python", "ok", platform.python_version(), sys.executable),
        Check("platform", "os/arch", "ok", os_arch,
              f"ATC names OS-bound models <output>_{os_arch}.om when built here"),
    ]


def collect() -> list[Check]:
    checks: list[Check] = []
    for probe in (_tool_checks, _env_checks, _runtime_checks, _package_checks, _platform_checks):
        try:
            checks += probe()
        except Exception as exc:  # noqa: BLE001 - doctor always finishes
            checks.append(Check(probe.__name__.strip("_").replace("_checks", ""), "probe", "error", "", str(exc)))
    return checks


def capabilities(checks: list[Check]) -> dict[str, bool]:
    found = {c.name for c in checks if c.status in ("found", "ok")}
    ov_devices = next((c.detail for c in checks if c.name == "openvino devices" and c.status == "ok"), "")
    return {
        "compile .om (atc)": "atc" in found,
        "compile MagicMind model (mm_build)": "mm_build" in found,
        "compile OpenVINO IR (ovc)": "ovc" in found,
        "run .om (ais_bench)": "ais_bench" in found,
        "run MagicMind model (mm_run)": "mm_run" in found,
        "run ONNX (onnxruntime)": "onnxruntime providers" in found,
        "run OpenVINO IR": bool(ov_devices) and ov_devices != "none",
    }
