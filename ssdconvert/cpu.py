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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FP16_FLAGS = ("avx512_fp16", "amx_fp16")
SHOWN = ("avx2", "avx512f", *VNNI_FLAGS, *BF16_FLAGS, *FP16_FLAGS)


@dataclass(frozen=True)
class CpuFeatures:
    model: str
    flags: frozenset[str]
    known: bool  # False when /proc/cpuinfo could not be read

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
        return (f"{self.model}: VNNI {yes_no(self.vnni)}, BF16 {yes_no(self.bf16)}, FP16 {yes_no(self.fp16)} "
                f"(flags: {' '.join(self.shown_flags()) or 'none of ' + ', '.join(SHOWN)})")


@lru_cache(maxsize=1)
def cpu_features(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuFeatures:
    """Model name and flags of the first processor listed in `cpuinfo`."""
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
