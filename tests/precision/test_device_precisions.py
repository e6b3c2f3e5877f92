"""Precision flags of the device compilers, checked against the contract-faithful fakes (tests/fakes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert import backends
from ssdconvert.backends.compiling import CompilerError
from ssdconvert.cli import cli
from ssdconvert.errors import SsdConvertError


@pytest.fixture
def on_path(fake_vendor_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", fake_vendor_env["PATH"])
    for var in ("FAKE_ATC_MODE", "FAKE_MM_MODE", "NEUWARE_HOME", "ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONPATH", fake_vendor_env["PYTHONPATH"])  # the fake magicmind for the build script
    monkeypatch.setenv("SSDCONVERT_MAGICMIND_PYTHON", fake_vendor_env["SSDCONVERT_MAGICMIND_PYTHON"])
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_ATC_ARGV_LOG", str(log))
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_magicmind_int8_calibrates_on_the_bins_through_a_file_list(exported_onnx, r34_bins, on_path, tmp_path):
    built = backends.get("magicmind").compile(exported_onnx, tmp_path, batch=2, precision="int8", calib=r34_bins)
    record = json.loads(Path(f"{built[0]}.json").read_text())
    argv = record["command"]  # ssdconvert's build script, which reads the calibration flags
    assert argv[argv.index("--precision") + 1] == "qint8_mixed_float16"
    assert argv[argv.index("--calibration_data_path") + 1] == str(r34_bins.resolve())
    listed = Path(argv[argv.index("--file_list") + 1])
    names = listed.read_text().split()
    manifest = json.loads((r34_bins / "manifest.json").read_text())
    assert len(names) == len(manifest["images"]) and all((r34_bins / n).is_file() for n in names)
    assert built[0].name == "ssd_resnet34_model_qint8_mixed_float16_false_2"
    assert record["calibration"]["images"] == len(names)
    pixels = np.stack([np.fromfile(r34_bins / n, np.float32) for n in names])
    calibration = json.loads(built[0].read_bytes().split(b"\n")[1])["calibration"]  # what the fake builder saw
    assert calibration == [{"min": float(pixels.min()), "max": float(pixels.max()),
                            "samples": -(-len(names) // 2) * 2}]  # batches of 2, the last padded


def test_magicmind_cli_refuses_qint_without_calibration_and_the_script_an_unpaired_list(exported_onnx, r34_bins,
                                                                                      on_path, tmp_path):
    no_calib = CliRunner().invoke(cli, ["cnnl", "--onnx", str(exported_onnx), "--precision", "qint8_mixed_float16",
                                        "--bs", "2", "--output", str(tmp_path / "m")])
    assert no_calib.exit_code == 1 and "needs calibration data: pass --calib" in no_calib.output
    ok = CliRunner().invoke(cli, ["cnnl", "--onnx", str(exported_onnx), "--precision", "qint8_mixed_float16", "--bs",
                                  "2", "--calib", str(r34_bins), "--calib-images", "3", "--output", str(tmp_path / "m")])
    assert ok.exit_code == 0, ok.output
    assert "calibrated on 3 images" in ok.output
    # the build script holds build_param.py's pairing: --file_list without --calibration_data_path is refused
    unpaired = CliRunner().invoke(cli, ["cnnl", "--onnx", str(exported_onnx), "--bs", "2", "--output",
                                        str(tmp_path / "n"), "--extra", f"--file_list {tmp_path / 'm.calib_list.txt'}"])
    assert unpaired.exit_code == 1 and "--calibration_data_path and --file_list go together" in unpaired.output


@pytest.mark.parametrize("precision, mode, suffix, soc", [("fp16", None, "", "Ascend310P3"),
                                                          ("fp32", "force_fp32", "_fp32", "Ascend310P3"),
                                                          ("bf16", "allow_mix_precision_bf16", "_bf16", "Ascend910B3")])
def test_ascend_precisions_map_to_atc_precision_mode(exported_onnx, on_path, tmp_path, precision, mode, suffix, soc):
    built = backends.get("ascend").configured(soc=soc).compile(exported_onnx, tmp_path, batch=2, precision=precision)
    argv = calls(on_path)[-1]
    given = [a for a in argv if a.startswith("--precision_mode")]
    assert given == ([f"--precision_mode={mode}"] if mode else [])  # fp16: ATC's own default, no flag
    assert built[0].name == f"ssd_resnet34_bs2{suffix}.om"
    record = json.loads(Path(f"{built[0]}.json").read_text())
    assert record["precision"] == (mode or "force_fp16")


def test_ascend_int8_is_refused_with_the_amct_flow_named(exported_onnx, tmp_path):
    with pytest.raises(SsdConvertError, match="amct_onnx calibration"):
        backends.get("ascend").configured(soc="Ascend310P3").compile(exported_onnx, tmp_path, batch=2, precision="int8")
    with pytest.raises(CompilerError, match="not 'int4'"):
        from ssdconvert.backends.ascend.compile import precision_mode

        precision_mode("int4")
