"""What this CPU can do for lower precisions: the /proc/cpuinfo flags that decide INT8 and BF16 speed.

    VNNI   avx512_vnni or avx_vnni: 8-bit dot products (vpdpbusd, unsigned x signed) in one
           instruction. Without it x86 INT8 kernels risk saturating 16-bit sums, which is why
           ONNX Runtime suggests reduce_range there (onnxruntime.quantization.quantize_static's
           docstring, 1.31, read in the installed package).
    BF16   avx512_bf16 or amx_bf16: OpenVINO's CPU plugin then *defaults* to bf16 inference, so
           FP32 figures must force INFERENCE_PRECISION_HINT=f32 (observed with openvino 2026.4).
    FP16   avx512_fp16 or amx_fp16: native FP16 arithmetic; without it OpenVINO's CPU plugin
           cannot compute in f16.

Linux only (other systems report no flags: every feature False, said as "unknown").

`SSDCONVERT_CPU_WITHOUT` (comma-separated: avx512, vnni, bf16, fp16) makes this probe, and the
OpenVINO capability probe that follows it (backends/openvino/device.py), report the CPU without
those features, so the branch of a CPU this machine is not (e.g. AVX2 only: `avx512,vnni,bf16,fp16`)
can be rehearsed and tested here; every decision taken from the probe follows it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from ssdconvert.errors import SsdConvertError

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FP16_FLAGS = ("avx512_fp16", "amx_fp16")
SHOWN = ("avx2", "avx512f", *VNNI_FLAGS, *BF16_FLAGS, *FP16_FLAGS)

SIMULATE_ENV = "SSDCONVERT_CPU_WITHOUT"
AVX2_ONLY = "avx512,vnni,bf16,fp16"  # the value that makes this CPU look like an AVX2-only one
# a feature left out -> the flags that go with it (AMX CPUs all have AVX-512)
MASKS = {"avx512": lambda f: f.startswith(("avx512", "amx")), "vnni": lambda f: f in VNNI_FLAGS,
         "bf16": lambda f: f in BF16_FLAGS, "fp16": lambda f: f in FP16_FLAGS}


@dataclass(frozen=True)
class CpuFeatures:
    model: str
    flags: frozenset[str]
    known: bool  # False when /proc/cpuinfo could not be read
    simulated_without: tuple[str, ...] = ()  # features SSDCONVERT_CPU_WITHOUT took away

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def vnni(self) -> bool:
        return any(f in self.flags for f in VNNI_FLAGS)

    @property
    def bf16(self) -> bool:
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def fp16(self) -> bool:
        return any(f in self.flags for f in FP16_FLAGS)

    def shown_flags(self) -> list[str]:
        """The flags that matter here, in a fixed order (for reports)."""
        return [f for f in SHOWN if f in self.flags]

    def describe(self) -> str:
        if not self.known:
            return f"{self.model}: CPU flags unknown (no /proc/cpuinfo)"
        yes_no = lambda b: "yes" if b else "no"  # noqa: E731
        simulated = (f"; simulated without {', '.join(self.simulated_without)} ({SIMULATE_ENV})"
                     if self.simulated_without else "")
        return (f"{self.model}: VNNI {yes_no(self.vnni)}, BF16 {yes_no(self.bf16)}, FP16 {yes_no(self.fp16)} "
                f"(flags: {' '.join(self.shown_flags()) or 'none of ' + ', '.join(SHOWN)}{simulated})")


def simulated_without() -> tuple[str, ...]:
    """The features SSDCONVERT_CPU_WITHOUT takes away (refused if it names one this probe does not know)."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in os.environ.get(SIMULATE_ENV, "").split(",") if n.strip()))
    unknown = [n for n in names if n not in MASKS]
    if unknown:
        raise SsdConvertError(f"{SIMULATE_ENV}={os.environ[SIMULATE_ENV]!r}: unknown feature {unknown[0]!r}; "
                              f"choose from {', '.join(MASKS)} (AVX2 only: {AVX2_ONLY})")
    return names


def cpu_features(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuFeatures:
    """Model name and flags of the first processor listed in `cpuinfo`, less what SSDCONVERT_CPU_WITHOUT takes away."""
    found, without = _read(str(cpuinfo)), simulated_without()
    if not without:
        return found
    flags = frozenset(f for f in found.flags if not any(MASKS[name](f) for name in without))
    return replace(found, flags=flags, simulated_without=without)


@lru_cache(maxsize=4)
def _read(cpuinfo: str) -> CpuFeatures:
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        import platform

        return CpuFeatures(platform.processor() or platform.machine(), frozenset(), known=False)
    model, flags = "unknown CPU", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return CpuFeatures(model, flags, known=True)
