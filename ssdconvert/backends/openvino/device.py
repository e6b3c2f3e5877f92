"""What an OpenVINO device can compute, decided before anything is measured.

Read in the CPU plugin's source (openvinotoolkit/openvino, src/plugins/intel_cpu/src/plugin.cpp and
utils/precision_support.cpp, commit 85d4ddcb): the CPU lists `BF16` in OPTIMIZATION_CAPABILITIES
only with native bf16 (avx512_core_bf16 or avx2_vnni_2) and `FP16` only with avx512_core_fp16 or
avx2_vnni_2. Asked for bf16 (INFERENCE_PRECISION_HINT) without AVX-512 it silently computes f32,
and with AVX-512 but no native bf16 it emulates bf16 slowly; asked for f16 without native FP16 it
computes bf16 (observed with openvino 2026.4 on this AVX512-BF16 CPU). Either way the figure
would carry a precision it does not have, so a precision whose capability the device does not
list is refused here, and the runner checks the compiled model's own INFERENCE_PRECISION_HINT
against what it asked for (runner.py).

The CPU's capabilities follow ssdconvert.cpu's probe, so SSDCONVERT_CPU_WITHOUT=bf16 makes this
machine refuse bf16 exactly as a CPU without BF16 does (though OpenVINO would still compute it).
"""

from __future__ import annotations

from functools import lru_cache

# precision -> the capability the device must list to compute it natively
NEEDS = {"bf16": "BF16", "fp16": "FP16"}
# what ssdconvert.cpu's simulated absences take away from the CPU plugin's list (plugin.cpp: BF16 and FP16 need
# their native instructions, WINOGRAD avx512_core)
FLAGS = {"BF16": "avx512_bf16 or amx_bf16", "FP16": "avx512_fp16 or amx_fp16"}  # the native instructions
TAKEN = {"bf16": ("BF16",), "fp16": ("FP16",), "avx512": ("BF16", "FP16", "WINOGRAD")}


@lru_cache(maxsize=8)
def _reported(device: str) -> tuple[str, ...]:
    import openvino as ov

    try:
        return tuple(str(c) for c in ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # noqa: BLE001 - a device without the property lists nothing
        return ()


def capabilities(device: str = "CPU") -> tuple[str, ...]:
    """The device's OPTIMIZATION_CAPABILITIES (FP32, BF16, FP16, INT8, ...); the CPU's less what
    SSDCONVERT_CPU_WITHOUT takes away."""
    from ssdconvert.cpu import simulated_without

    device = device.upper()
    found = _reported(device)
    if not device.startswith("CPU"):
        return found
    gone = {cap for name in simulated_without() for cap in TAKEN.get(name, ())}
    return tuple(c for c in found if c not in gone)


def refusal(precision: str | None, device: str = "CPU") -> str | None:
    """Why `device` cannot compute `precision` (one line), or None if it can."""
    need = NEEDS.get(precision or "")
    if need is None:
        return None
    caps = capabilities(device)
    if need in caps:
        return None
    flags = f" (a CPU needs {FLAGS[need]})" if device.upper().startswith("CPU") else ""
    return (f"OpenVINO's {device.upper()} cannot compute {precision} here: its OPTIMIZATION_CAPABILITIES "
            f"({', '.join(caps) or 'none'}) lack {need}{flags}, so a {precision} request would be computed in "
            f"another precision and measured as {precision}")
