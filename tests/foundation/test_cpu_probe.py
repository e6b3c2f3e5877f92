"""The CPU probes that decide INT8 and BF16: /proc/cpuinfo flags, OpenVINO's capabilities, and the
SSDCONVERT_CPU_WITHOUT simulation that lets this machine take the branch of a CPU it is not."""

from __future__ import annotations

import pytest

from ssdconvert.cpu import CpuFeatures, cpu_features
from ssdconvert.errors import SsdConvertError

SAPPHIRE = ("model name\t: Example Xeon\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 "
            "amx_bf16 amx_int8 avx512_fp16 amx_fp16\n")


@pytest.fixture
def cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(SAPPHIRE)
    return path


def test_the_flags_decide_each_feature_and_the_simulation_takes_them_away(cpuinfo, monkeypatch):
    monkeypatch.delenv("SSDCONVERT_CPU_WITHOUT", raising=False)
    full = cpu_features(cpuinfo)
    assert (full.avx512, full.vnni, full.bf16, full.fp16) == (True, True, True, True)
    monkeypatch.setenv("SSDCONVERT_CPU_WITHOUT", "bf16")
    no_bf16 = cpu_features(cpuinfo)
    assert (no_bf16.vnni, no_bf16.bf16, no_bf16.fp16) == (True, False, True)
    assert "simulated without bf16 (SSDCONVERT_CPU_WITHOUT)" in no_bf16.describe()
    monkeypatch.setenv("SSDCONVERT_CPU_WITHOUT", "avx512,vnni,bf16,fp16")
    avx2 = cpu_features(cpuinfo)
    assert avx2.flags == {"fpu", "sse2", "avx2"} and not (avx2.avx512 or avx2.vnni or avx2.bf16 or avx2.fp16)
    monkeypatch.setenv("SSDCONVERT_CPU_WITHOUT", "bf16,sse9")
    with pytest.raises(SsdConvertError, match="unknown feature 'sse9'; choose from avx512, vnni, bf16, fp16"):
        cpu_features(cpuinfo)


def test_openvino_capabilities_follow_the_cpu_probe(cpu_kind):
    """OpenVINO lists BF16 exactly where the CPU has native bf16 (plugin.cpp); the simulation removes it from both."""
    from ssdconvert.backends.openvino.device import capabilities, refusal

    cpu, caps = cpu_features(), capabilities("CPU")
    assert ("BF16" in caps) == cpu.bf16
    assert "FP32" in caps and "INT8" in caps  # what every x86 CPU computes
    if cpu_kind == "avx2-only":
        assert not cpu.bf16 and not cpu.vnni and "BF16" not in caps and "FP16" not in caps
    assert (refusal("bf16") is None) == cpu.bf16
    assert refusal("fp32") is None and refusal("int8") is None
    if not cpu.bf16:
        assert refusal("bf16").startswith("OpenVINO's CPU cannot compute bf16 here: its OPTIMIZATION_CAPABILITIES (")
        assert "lack BF16 (a CPU needs avx512_bf16 or amx_bf16)" in refusal("bf16")


@pytest.mark.parametrize("flags, vnni", [("avx2 avx512f avx512_vnni", True), ("avx2", False)])
def test_ort_types_auto_follows_vnni(flags, vnni):
    """`--ort-types auto`: U8S8 on x86 either way, reduce_range (7-bit weights) only without VNNI."""
    import platform

    from ssdconvert.backends.onnxruntime.quantize import resolve_types

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the U8S8 / reduce_range choice is x86's; elsewhere auto is S8S8")
    cpu = CpuFeatures("test CPU", frozenset(flags.split()), known=True)
    types, reduce_range, why = resolve_types("auto", cpu)
    assert (types, reduce_range) == ("u8s8", not vnni)
    assert ("without VNNI" in why) == (not vnni)
    assert resolve_types("u8s8", cpu)[1] == (not vnni) and resolve_types("s8s8", cpu)[1] is False
