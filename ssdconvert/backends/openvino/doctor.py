"""`ssdconvert doctor` for OpenVINO: the `ovc` converter and the runtime's devices."""

from __future__ import annotations

import importlib.util

from ssdconvert.doctor import Check, tool_check


def checks() -> list[Check]:
    from ssdconvert.backends.openvino.compile import TOOL, ovc_version

    rows = [tool_check(TOOL, "compile OpenVINO IR (ssdconvert openvino)", "compile OpenVINO IR (ovc)",
                       version=lambda path: (ovc_version(path, timeout=60) or "?").split("-")[0])]
    try:
        import openvino

        devices = openvino.Core().available_devices
        rows.append(Check("runtimes", "openvino devices", "ok" if devices else "missing",
                          openvino.__version__.split("-")[0], ", ".join(devices) or "none",
                          capability="run OpenVINO IR"))
    except Exception as exc:  # noqa: BLE001 - doctor never crashes
        rows.append(Check("runtimes", "openvino devices", "error", "", str(exc).splitlines()[0],
                          capability="run OpenVINO IR"))
    return rows


def missing() -> str | None:
    if importlib.util.find_spec("openvino") is None:
        return "the openvino package is not installed (pip install openvino)"
    return None
