"""`ssdconvert doctor` for ONNX Runtime: its execution providers (it needs no vendor tool)."""

from __future__ import annotations

from ssdconvert.doctor import Check


def checks() -> list[Check]:
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except Exception as exc:  # noqa: BLE001 - doctor never crashes
        return [Check("runtimes", "onnxruntime providers", "error", "", str(exc).splitlines()[0],
                      capability="run ONNX (onnxruntime)")]
    return [Check("runtimes", "onnxruntime providers", "ok", onnxruntime.__version__, ", ".join(providers),
                  capability="run ONNX (onnxruntime)")]
