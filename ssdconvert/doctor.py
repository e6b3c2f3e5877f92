"""What this machine can do: vendor tools, their environments, runtimes and library versions.

Each backend probes itself (Backend.checks, in its folder's doctor.py); this module adds what is
common (Python packages, platform) and sums up the capabilities. Every probe is defensive: a
broken install shows up as a row with status `error`, never as a crash, so `ssdconvert doctor`
always exits 0. Vendor tools are located, not run (their version flags are not documented); only
`ovc --version` (observed) is executed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ssdconvert.launcher import ToolNotFoundError, ToolSpec, locate_tool


@dataclass
class Check:
    group: str  # tools | environment | python | runtimes | platform
    name: str
    status: str  # found | missing | set | unset | ok | error
    version: str = ""
    detail: str = ""  # path, value, or what to do
    capability: str = field(default="", repr=False)  # what the machine can do when this check passes

    @property
    def passed(self) -> bool:
        return self.status in ("found", "ok")

    def as_dict(self) -> dict:
        row = asdict(self)
        row.pop("capability")
        return row


PACKAGES = ("torch", "onnx", "onnxruntime", "openvino", "onnxslim", "numpy")


def tool_check(spec: ToolSpec, purpose: str, capability: str = "",
               version: Callable[[Path], str] | None = None) -> Check:
    """Found (with path and version) or missing (with what to install) for one vendor executable."""
    name = spec.executables[0]
    try:
        path = locate_tool(spec)
    except ToolNotFoundError:
        return Check("tools", name, "missing", detail=f"{purpose}: {spec.install_hint or 'not installed'}",
                     capability=capability)
    return Check("tools", name, "found", version(path) if version else "", f"{path} ({purpose})", capability)


def env_checks(variables: Sequence[tuple[str, str]]) -> list[Check]:
    """One row per environment variable: set (its value) or unset (what it means)."""
    return [Check("environment", var, "set" if os.environ.get(var) else "unset", "",
                  os.environ.get(var) or meaning) for var, meaning in variables]


def _package_checks() -> list[Check]:
    checks = []
    for name in PACKAGES:
        try:
            checks.append(Check("python", name, "found", importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check("python", name, "missing"))
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


def _probes(names: Sequence[str] | None) -> list[tuple[str, Callable[[], list[Check]]]]:
    from ssdconvert import backends

    chosen = [backends.get(n) for n in names] if names else list(backends.all_backends())
    probes = [(b.name, b.checks) for b in chosen]
    return probes + ([] if names else [("python", _package_checks), ("platform", _platform_checks)])


def collect(names: Sequence[str] | None = None) -> list[Check]:
    """Every backend's checks (or those of `names`), then packages and platform."""
    checks: list[Check] = []
    for group, probe in _probes(names):
        try:
            checks += probe()
        except Exception as exc:  # noqa: BLE001 - doctor always finishes
            checks.append(Check(group, "probe", "error", "", str(exc).splitlines()[0] if str(exc) else repr(exc)))
    return checks


def capabilities(checks: list[Check]) -> dict[str, bool]:
    caps: dict[str, bool] = {}
    for check in checks:
        if check.capability:
            caps[check.capability] = caps.get(check.capability, False) or check.passed
    return caps
