"""The MagicMind adapter driven through the fake build tool (tests/fakes/mm_build.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli
from ssdconvert.backends.compiling import ArtefactMissingError, CompilerError
from ssdconvert.backends.magicmind import compile as magicmind
from ssdconvert.backends.magicmind.compile import FLAGS, build_magicmind
from ssdconvert.launcher import ToolFailedError, ToolTimeoutError

FAKE_MM = Path(__file__).resolve().parents[2] / "fakes" / "mm_build.py"


def test_static_build_command_and_exact_model_path(tiny_onnx, fake_on_path, argv_log, read_calls, tmp_path):
    out = tmp_path / "mm" / "ssd_model"
    result = build_magicmind(tiny_onnx, batch=16, output=out)
    assert result.artefacts == [out]  # written exactly at --magicmind_model, no extension
    assert out.read_bytes().startswith(b"FAKE-MAGICMIND")
    assert read_calls(argv_log) == [result.command[1:]]
    assert result.command[1:] == [
        "--onnx", str(tiny_onnx), "--precision", "force_float32", "--mlu_arch", "mtp_372",
        "--input_dims", "16", "3", "300", "300", "--batch_size", "16", "--dynamic_shape", "false",
        "--magicmind_model", str(out),
    ]
    assert result.log_path == tmp_path / "mm" / "ssd_model.magicmind.log"
    record = json.loads(result.sidecar.read_text())
    assert result.sidecar == tmp_path / "mm" / "ssd_model.json"
    assert record["command"] == result.command and record["precision"] == "force_float32"
    assert record["flag_table"] == {k: f.spelling for k, f in FLAGS.items()}


def test_every_flag_comes_from_the_one_table(tiny_onnx, monkeypatch):
    monkeypatch.setitem(FLAGS, "precision", magicmind.Flag("--precision_mode", "value", "test"))
    command = build_magicmind(tiny_onnx, batch=2, dry_run=True).command
    assert "--precision_mode" in command and "--precision" not in command
    spellings = {f.spelling for f in FLAGS.values()}
    assert {a for a in command if a.startswith("--")} <= spellings


def test_default_output_follows_the_repository_convention(tiny_onnx):
    assert build_magicmind(tiny_onnx, batch=4, precision="force_float16", dry_run=True).primary == \
        tiny_onnx.parent / "ssd_resnet34_model_force_float16_false_4"
    assert build_magicmind(tiny_onnx, batch=4, dynamic=True, dry_run=True).primary == \
        tiny_onnx.parent / "ssd_resnet34_model_force_float32_true"


def test_dynamic_shape_with_dim_range(tiny_onnx, fake_on_path, tmp_path):
    result = build_magicmind(tiny_onnx, batch=8, dynamic=True, output=tmp_path / "dyn")
    command = result.command
    i = command.index("--dim_range_min")
    assert command[i:i + 10] == ["--dim_range_min", "1", "3", "300", "300", "--dim_range_max", "8", "3", "300", "300"]
    assert command[command.index("--dynamic_shape") + 1] == "true"
    custom = build_magicmind(tiny_onnx, batch=1, dynamic=True, dim_range=((2, 3, 300, 300), (32, 3, 300, 300)),
                             dry_run=True)
    assert custom.info["dim_range"] == {"min": [2, 3, 300, 300], "max": [32, 3, 300, 300]}


@pytest.mark.parametrize("kwargs, match", [
    ({"precision": "fp32"}, "unknown --precision"),
    ({"precision": "qint8_mixed_float16"}, "calibration"),
    ({"mlu_arch": "mlu370"}, "mtp_372"),
    ({"dim_range": ((1, 3, 300, 300), (8, 3, 300, 300))}, "only with --dynamic"),
    ({"dynamic": True, "dim_range": ((8, 3, 300, 300), (1, 3, 300, 300))}, "must be >= 1 and <= max"),
    ({"dynamic": True, "dim_range": ((1, 3, 200, 200), (8, 3, 300, 300))}, "only the batch"),
])
def test_bad_options_fail_before_running(tiny_onnx, kwargs, match):
    with pytest.raises(CompilerError, match=match):
        build_magicmind(tiny_onnx, **{"dry_run": True, **kwargs})


def test_unknown_flag_is_rejected_by_the_tool_and_reported(tiny_onnx, fake_on_path, tmp_path):
    with pytest.raises(ToolFailedError) as err:
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "m", extra=["--fast_mode", "1"])
    message = str(err.value)
    assert err.value.returncode == 2 and "unrecognized arguments: --fast_mode 1" in message
    assert "correct FLAGS in ssdconvert/backends/magicmind/compile.py" in message and "m.magicmind.log" in message


def test_tool_failure_shows_its_error_line(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MM_MODE", "fail")
    with pytest.raises(ToolFailedError, match=r"exit code 1\): RuntimeError: \[MMERROR\] forced failure"):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "m")


def test_crash_timeout_and_missing_model(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MM_MODE", "crash")
    with pytest.raises(ToolFailedError, match="SIGSEGV.*printed nothing"):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "c")
    monkeypatch.setenv("FAKE_MM_MODE", "hang")
    with pytest.raises(ToolTimeoutError):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "h", timeout=1.5)
    monkeypatch.setenv("FAKE_MM_MODE", "no-artefact")
    with pytest.raises(ArtefactMissingError, match="did not write"):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "n")


def test_found_under_neuware_home(tiny_onnx, launcher, tmp_path, monkeypatch):
    launcher(tmp_path / "neuware" / "bin", "mm_build", "mm_build.py")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("NEUWARE_HOME", str(tmp_path / "neuware"))
    result = build_magicmind(tiny_onnx, batch=1, output=tmp_path / "n")
    assert result.command[0] == str(tmp_path / "neuware" / "bin" / "mm_build")


def test_tool_can_be_a_plain_python_build_script(tiny_onnx, tmp_path):
    script = tmp_path / "gen_model.py"  # not executable: run under python3, as users run gen_model.py
    script.write_text("import sys\nout = sys.argv[sys.argv.index('--magicmind_model') + 1]\n"
                      "open(out, 'wb').write(b'model')\nprint('done')\n")
    result = build_magicmind(tiny_onnx, batch=1, output=tmp_path / "g", tool=str(script))
    assert Path(result.command[0]).name.startswith("python") and result.command[1] == str(script.resolve())
    assert result.primary.read_bytes() == b"model"


def test_fake_is_strict_about_its_contract(tiny_onnx, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(FAKE_MM), *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "FAKE_MM_MODE": ""})

    out = str(tmp_path / "m")
    assert run("--onnx", str(tiny_onnx), "--magicmind_model", out, "--bogus").returncode == 2
    assert run("--onnx", str(tiny_onnx), "--precision", "fp32").returncode == 2
    assert run("--onnx", str(tiny_onnx), "--input_dims", "1", "3", "224", "224", "--dynamic_shape", "false",
               "--magicmind_model", out).returncode == 1
    assert "dim_range" in run("--onnx", str(tiny_onnx), "--input_dims", "1", "3", "300", "300",
                              "--magicmind_model", out).stderr  # dynamic_shape defaults to true
    ok = run("--onnx", str(tiny_onnx), "--input_dims", "4", "3", "300", "300", "--batch_size", "4",
             "--dynamic_shape", "false", "--magicmind_model", out)
    assert ok.returncode == 0 and Path(out).is_file()


def test_cli_cnnl_and_magicmind_alias(tiny_onnx, fake_on_path, tmp_path):
    runner = CliRunner()
    for name in ("cnnl", "magicmind"):
        result = runner.invoke(cli, [name, "--onnx", str(tiny_onnx), "--bs", "2", "-q",
                                     "--output", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert f"wrote {tmp_path / name}" in result.output and "force_float32, mtp_372, static batch 2" in result.output
    dry = runner.invoke(cli, ["cnnl", "--onnx", str(tiny_onnx), "--dynamic", "--dim-range", "1,3,300,300:16,3,300,300",
                              "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "--dim_range_max 16 3 300 300" in dry.stdout
    assert "Alias of `cnnl`" in runner.invoke(cli, ["magicmind", "--help"]).output
