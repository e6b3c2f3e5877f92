"""`ssdconvert doctor`: one table, always exit 0, `--json` for machines."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli


@pytest.fixture(autouse=True)
def no_ais_bench_on_path(monkeypatch):
    """Hide any ais_bench (e.g. the fake package in tests/fakes) unless a test adds one."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "fakes" not in p])
    for name in [m for m in sys.modules if m == "ais_bench" or m.startswith("ais_bench.")]:
        monkeypatch.delitem(sys.modules, name)


def _checks(result) -> dict[str, dict]:
    data = json.loads(result.stdout)
    return {c["name"]: c for c in data["checks"]}, data["capabilities"]


def test_doctor_json_on_this_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no vendor tools anywhere; ovc still found beside python
    for var in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH", "NEUWARE_HOME", "SSDCONVERT_MAGICMIND_PYTHON"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    checks, caps = _checks(result)
    assert checks["atc"]["status"] == "missing" and "set_env.sh" in checks["atc"]["detail"]
    assert checks["magicmind build"]["status"] == "missing" and checks["mm_run"]["status"] == "missing"
    build = checks["magicmind build"]["detail"]  # what is looked for, and why no mm_build executable
    assert "cannot import Cambricon's magicmind wheel" in build and "No `mm_build` executable is looked for" in build
    assert "$NEUWARE_HOME/bin" in checks["mm_run"]["detail"]
    assert checks["magicmind runtime"]["status"] == "missing" and "magicmind.python.runtime" in \
        checks["magicmind runtime"]["detail"]
    assert checks["ais_bench"]["status"] == "missing"
    assert checks["ovc"]["status"] == "found" and checks["ovc"]["version"][:4].isdigit()
    assert "CPUExecutionProvider" in checks["onnxruntime providers"]["detail"]
    assert "CPU" in checks["openvino devices"]["detail"]
    assert checks["torch"]["status"] == "found" and checks["onnx"]["version"]
    assert checks["ASCEND_TOOLKIT_HOME"]["status"] == "unset"
    assert caps["compile OpenVINO IR (ovc)"] and not caps["compile .om (atc)"]


def test_doctor_finds_tools_and_env(fake_bin, launcher, monkeypatch, tmp_path):
    from ssdconvert.backends.magicmind.compile import BUILD_SCRIPT

    neuware = tmp_path / "neuware"
    launcher(neuware / "bin", "mm_run", "mm_run.py")
    monkeypatch.setenv("PATH", str(fake_bin))
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(tmp_path / "toolkit"))
    monkeypatch.setenv("NEUWARE_HOME", str(neuware))
    monkeypatch.setenv("PYTHONPATH", str(BUILD_SCRIPT.parents[3] / "tests" / "fakes"))  # the fake magicmind wheel
    monkeypatch.setenv("SSDCONVERT_MAGICMIND_PYTHON", sys.executable)
    checks, caps = _checks(CliRunner().invoke(cli, ["doctor", "--json"]))
    assert checks["atc"]["status"] == "found" and checks["atc"]["detail"].startswith(str(fake_bin / "atc"))
    assert checks["mm_run"]["status"] == "found" and checks["mm_run"]["detail"].startswith(str(neuware / "bin"))
    assert checks["magicmind build"]["status"] == "found"
    assert checks["magicmind build"]["detail"] == f"{BUILD_SCRIPT} under {sys.executable} (ssdconvert cnnl)"
    assert checks["ASCEND_TOOLKIT_HOME"] == {"group": "environment", "name": "ASCEND_TOOLKIT_HOME", "status": "set",
                                             "version": "", "detail": str(tmp_path / "toolkit")}
    assert caps["compile .om (atc)"] and caps["compile MagicMind model"]


def test_doctor_table_and_never_fails(monkeypatch):
    from ssdconvert.backends.openvino import doctor

    def broken():
        raise RuntimeError("openvino exploded")

    monkeypatch.setattr(doctor, "checks", broken)
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["group", "name", "status", "version", "path", "/", "details"]
    assert any("openvino exploded" in ln and "error" in ln for ln in lines)
    assert any(ln.startswith("this machine can:") for ln in lines)


def test_doctor_tells_the_om_inference_tool_from_its_namesake(tmp_path, monkeypatch):
    (tmp_path / "good" / "ais_bench" / "infer").mkdir(parents=True)
    (tmp_path / "good" / "ais_bench" / "__init__.py").write_text("")
    (tmp_path / "good" / "ais_bench" / "infer" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "good"))
    checks, caps = _checks(CliRunner().invoke(cli, ["doctor", "--json"]))
    assert checks["ais_bench"]["status"] == "found" and caps["run .om (ais_bench)"]

    (tmp_path / "llm" / "ais_bench" / "benchmark").mkdir(parents=True)
    (tmp_path / "llm" / "ais_bench" / "__init__.py").write_text("")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "llm")] + [p for p in sys.path if "good" not in p])
    checks, _ = _checks(CliRunner().invoke(cli, ["doctor", "--json"]))
    assert checks["ais_bench"]["status"] == "error" and "shares the name" in checks["ais_bench"]["detail"]


def test_doctor_probes_one_backend_and_takes_the_old_name_with_a_note(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(cli, ["doctor", "--json", "--backend", "atc"])
    assert result.exit_code == 0, result.output
    assert "'atc' is deprecated as a backend name; use 'ascend'" in result.stderr
    checks, caps = _checks(result)
    assert {"atc", "ais_bench", "npu-smi", "ASCEND_TOOLKIT_HOME"} <= set(checks)
    assert not {"ovc", "magicmind build", "torch"} & set(checks)  # other backends and the package rows are left out
    assert set(caps) == {"compile .om (atc)", "run .om (ais_bench)"}
    bad = CliRunner().invoke(cli, ["doctor", "--backend", "tensorrt"])
    assert bad.exit_code == 2 and "unknown backend 'tensorrt'" in bad.output
