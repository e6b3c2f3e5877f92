"""The ATC adapter driven through the contract-faithful fake `atc` (tests/fakes/atc.py)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssdconvert.backends.ascend.compile import aipp_config_text, aipp_values, build_om
from ssdconvert.backends.compiling import ArtefactMissingError, CompilerError
from ssdconvert.cli import cli
from ssdconvert.fileio import sha256_of
from ssdconvert.launcher import ToolFailedError, ToolNotFoundError, ToolTimeoutError

FAKE_ATC = Path(__file__).resolve().parents[2] / "fakes" / "atc.py"
SOC = "Ascend310P3"


def run_fake(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(FAKE_ATC), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


# ----------------------------------------------------------------------------- successful builds


def test_static_build_command_artefact_and_record(tiny_onnx, fake_on_path, argv_log, read_calls, tmp_path):
    out = tmp_path / "om" / "ssd_bs16"
    result = build_om(tiny_onnx, SOC, batch=16, output=out)

    assert result.artefacts == [tmp_path / "om" / "ssd_bs16.om"]
    assert result.primary.read_bytes().startswith(b"FAKE-OM")
    assert read_calls(argv_log) == [result.command[1:]]  # exactly what we ran, no shell in between
    assert result.command[0] == str(fake_on_path / "atc")
    assert result.command[1:] == [
        "--framework=5", f"--model={tiny_onnx}", f"--output={out}", "--input_format=NCHW",
        "--input_shape=image:16,3,300,300", f"--soc_version={SOC}", "--log=error",
    ]
    assert result.log_path == tmp_path / "om" / "ssd_bs16.atc.log"
    log = result.log_path.read_text()
    assert "ATC start working now" in log and "ATC run success" in log and "# exit code: 0" in log

    record = json.loads(result.sidecar.read_text())
    assert result.sidecar == tmp_path / "om" / "ssd_bs16.om.json"
    assert record["command"] == result.command
    assert record["soc"] == SOC and record["batch"] == 16 and record["dynamic_batches"] is None
    assert record["precision"] == "force_fp16" and record["precision_source"] == "ATC default"
    assert record["source_onnx"]["sha256"] == sha256_of(tiny_onnx)
    assert record["input"] == {"name": "image", "shape": [16, 3, 300, 300], "dtype": "float32", "layout": "NCHW"}
    assert record["warnings"] and record["warnings"][0].startswith("W11001")


def test_input_name_comes_from_the_onnx(onnx_factory, fake_on_path, tmp_path):
    model = onnx_factory("other.onnx", name="input.1")
    result = build_om(model, SOC, batch=2, output=tmp_path / "o")
    assert "--input_shape=input.1:2,3,300,300" in result.command


def test_output_om_suffix_is_stripped(tiny_onnx, fake_on_path, tmp_path):
    result = build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "x" / "model.om")
    assert f"--output={tmp_path / 'x' / 'model'}" in result.command
    assert result.primary == tmp_path / "x" / "model.om"


def test_gears_use_minus_one_and_dynamic_batch_size(tiny_onnx, fake_on_path, tmp_path):
    result = build_om(tiny_onnx, SOC, dynamic_batches=[16, 1, 8, 4], precision="force_fp32", output=tmp_path / "dyn")
    assert "--input_shape=image:-1,3,300,300" in result.command
    assert "--dynamic_batch_size=1,4,8,16" in result.command
    assert "--precision_mode=force_fp32" in result.command
    assert result.primary == tmp_path / "dyn.om"  # a gear model is static: plain name
    record = json.loads(result.sidecar.read_text())
    assert record["dynamic_batches"] == [1, 4, 8, 16] and record["batch"] is None
    assert record["precision"] == "force_fp32" and record["os_arch_suffix"] is False


def test_dynamic_shape_build_resolves_os_arch_name(onnx_factory, fake_on_path, tmp_path):
    model = onnx_factory("nz.onnx", nonzero=True)  # data-dependent shapes -> dynamic-shape graph
    result = build_om(model, SOC, batch=4, output=tmp_path / "nz")
    expected = tmp_path / f"nz_linux_{platform.machine()}.om"
    assert result.primary == expected and expected.is_file()
    assert not (tmp_path / "nz.om").exists()
    assert json.loads(result.sidecar.read_text())["os_arch_suffix"] is True


def test_stale_plain_om_does_not_hide_the_fresh_suffixed_one(onnx_factory, fake_on_path, tmp_path):
    stale = tmp_path / "nz.om"
    stale.write_bytes(b"old build")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    result = build_om(onnx_factory("nz.onnx", nonzero=True), SOC, batch=1, output=tmp_path / "nz")
    assert result.primary.name == f"nz_linux_{platform.machine()}.om"


def test_default_batch_and_output_follow_the_export(onnx_factory, fake_on_path):
    model = onnx_factory("ssd_resnet34_bs8.onnx")
    model.with_name(model.name + ".json").write_text(json.dumps({"onnx": {"traced_batch": 8}}))
    result = build_om(model, SOC)
    assert "--input_shape=image:8,3,300,300" in result.command
    assert result.primary == model.parent / "ssd_resnet34_bs8.om"
    assert "exported and validated at" in result.info["batch_source"]


def test_fixed_batch_onnx(onnx_factory, fake_on_path, tmp_path):
    model = onnx_factory("static.onnx", batch=4)
    assert "--input_shape=image:4,3,300,300" in build_om(model, SOC, output=tmp_path / "s").command
    with pytest.raises(CompilerError, match="fixed batch of 4"):
        build_om(model, SOC, batch=8, dry_run=True)
    with pytest.raises(CompilerError, match="gears need a dynamic-batch export"):
        build_om(model, SOC, dynamic_batches=[1, 4], dry_run=True)


def test_progress_receives_the_tool_output(tiny_onnx, fake_on_path, tmp_path):
    seen: list[str] = []
    build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "p", progress=seen.append)
    text = "".join(seen)
    assert text.startswith("ATC start working now") and "..." in text and "ATC run success" in text


def test_extra_flags_are_appended_verbatim(tiny_onnx, fake_on_path, tmp_path):
    result = build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "e",
                      extra=["--op_select_implmode=high_precision", "--output_type", "FP16"])
    assert result.command[-3:] == ["--op_select_implmode=high_precision", "--output_type", "FP16"]
    assert result.info["output_type"] == "FP16"


# ------------------------------------------------------------------------------------- failures


def test_e16005_several_opset_imports(onnx_factory, fake_on_path, tmp_path):
    model = onnx_factory("domains.onnx", extra_domain=True)
    with pytest.raises(ToolFailedError) as err:
        build_om(model, SOC, batch=1, output=tmp_path / "d")
    message = str(err.value)
    assert err.value.codes == ["E16005"] and err.value.returncode != 0
    assert message.startswith("atc failed (exit code 1): E16005: The model has [2] [--domain_version] fields")
    assert "--opset 11" in message and str(tmp_path / "d.atc.log") in message and "\n" not in message
    assert "ATC run failed" in (tmp_path / "d.atc.log").read_text()
    assert not (tmp_path / "d.om").exists() and not (tmp_path / "d.om.json").exists()


def test_e10001_bad_parameter_value(tiny_onnx, fake_on_path, tmp_path):
    with pytest.raises(ToolFailedError) as err:
        build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "h", extra=["--host_env_os=android"])
    assert err.value.codes == ["E10001"] and err.value.returncode == 255
    assert "Value [android] for parameter [--host_env_os] is invalid" in str(err.value)
    assert "check --bs / --dynamic-bs / --extra" in str(err.value)


def test_e10016_input_name_not_in_model_via_adapter(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ATC_MODE", "fail:E10016")
    with pytest.raises(ToolFailedError) as err:
        build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "n")
    assert err.value.codes == ["E10016"] and "does not match the ONNX graph input" in str(err.value)


def test_e19999_internal_error(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ATC_MODE", "fail:E19999")
    with pytest.raises(ToolFailedError, match=r"E19999: Internal Error! An unknown error occurred\. Please check the log\. Internal ATC error.*plog"):
        build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "i")


def test_opset_too_new_no_parser(onnx_factory, fake_on_path, tmp_path):
    model = onnx_factory("new.onnx", opset=19)
    with pytest.raises(ToolFailedError, match=r"No parser is registered for Op \[ai\.onnx::19::Relu\].*--opset 11"):
        build_om(model, SOC, batch=1, output=tmp_path / "new")


def test_crash_without_output(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ATC_MODE", "crash")
    with pytest.raises(ToolFailedError, match=r"killed by SIGSEGV.*printed nothing.*c\.atc\.log"):
        build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "c")


def test_timeout(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ATC_MODE", "hang")
    t0 = time.monotonic()
    with pytest.raises(ToolTimeoutError, match=r"within 1.5 s and was killed"):
        build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "t", timeout=1.5)
    assert time.monotonic() - t0 < 15
    assert "ATC start working now" in (tmp_path / "t.atc.log").read_text()


def test_exit_zero_without_artefact(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ATC_MODE", "no-artefact")
    with pytest.raises(ArtefactMissingError, match=r"exited with code 0 but did not write .*a\.om"):
        build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "a")


def test_exit_zero_with_only_a_stale_artefact(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    stale = tmp_path / "a.om"
    stale.write_bytes(b"from yesterday")
    old = time.time() - 86400
    os.utime(stale, (old, old))
    monkeypatch.setenv("FAKE_ATC_MODE", "no-artefact")
    with pytest.raises(ArtefactMissingError, match="left over from an earlier build"):
        build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "a")


def test_exit_zero_without_success_line(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ATC_MODE", "no-verdict")
    with pytest.raises(ToolFailedError, match="never printed 'ATC run success'"):
        build_om(tiny_onnx, SOC, batch=1, output=tmp_path / "v")


# ------------------------------------------------------------------ validation before running


@pytest.mark.parametrize("soc, hint", [("ascend310p3", "Did you mean Ascend310P3"), ("310P3", "Did you mean Ascend310P3"),
                                        ("Ascend999", "npu-smi info"), ("", "npu-smi info"),
                                        ("Ascend310P9", "unknown --soc 'Ascend310P9'"),
                                        ("Ascend910C", "unknown --soc"), ("Ascend950", "unknown --soc")])
def test_soc_is_validated_with_a_hint(tiny_onnx, soc, hint):
    with pytest.raises(CompilerError, match=hint):
        build_om(tiny_onnx, soc, dry_run=True)


@pytest.mark.parametrize("soc", ["Ascend310", "Ascend310P1", "Ascend310P3", "Ascend310P7", "Ascend310P3vir04",
                                 "Ascend310B4", "Ascend910", "Ascend910B", "Ascend910B3", "Ascend910B4-1",
                                 "Ascend910_9391", "Ascend950PR_9599"])
def test_known_socs_pass(tiny_onnx, soc):
    assert f"--soc_version={soc}" in build_om(tiny_onnx, soc, batch=1, dry_run=True).command


@pytest.mark.parametrize("kwargs, match", [
    ({"batch": 4, "dynamic_batches": [1, 4]}, "either --bs"),
    ({"dynamic_batches": [8]}, "2 to 100 distinct"),
    ({"dynamic_batches": [0, 4]}, "1..2048"),
    ({"precision": "fp32"}, "unknown --precision 'fp32'"),
    ({"log_level": "verbose"}, "unknown --log"),
    ({"extra": ["--soc_version=Ascend910"]}, "sets --soc_version itself; use --soc"),
    ({"extra": ["--input_shape=image:1,3,300,300"]}, "use --bs/--dynamic-bs"),
    ({"extra": ["op_select_implmode=high_precision"]}, "must be ATC flags"),
    ({"output": Path("my model")}, "only letters, digits"),
])
def test_bad_options_fail_before_running(tiny_onnx, kwargs, match):
    with pytest.raises(CompilerError, match=match):
        build_om(tiny_onnx, SOC, **{"dry_run": True, **kwargs})


def test_missing_onnx(tmp_path):
    with pytest.raises(CompilerError, match="ONNX file not found"):
        build_om(tmp_path / "nope.onnx", SOC, dry_run=True)


def test_dry_run_runs_nothing_even_without_atc(tiny_onnx, tmp_path, monkeypatch, argv_log, read_calls):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    result = build_om(tiny_onnx, SOC, batch=16, output=tmp_path / "d", dry_run=True)
    assert result.dry_run and result.command[0] == "atc"
    assert not result.log_path.exists() and not (tmp_path / "d.om").exists() and read_calls(argv_log) == []
    with pytest.raises(ToolNotFoundError, match="set_env.sh"):
        build_om(tiny_onnx, SOC, batch=16, output=tmp_path / "d")


# ------------------------------------------------------------------------------------ the fake


def test_fake_rejects_unknown_and_malformed_flags(tiny_onnx, tmp_path):
    base = ["--framework=5", f"--model={tiny_onnx}", f"--output={tmp_path / 'f'}", f"--soc_version={SOC}",
            "--input_shape=image:1,3,300,300"]
    for bad in (["--bogus=1"], ["-x"], ["--log"], ['--input_format="NCHW"'], ["--framework=5"]):
        done = run_fake(*base, *bad)
        assert done.returncode == 255, (bad, done.stdout)
        lines = done.stdout.splitlines()
        assert lines[0] == "ATC start working now, please wait for a moment."
        assert any(ln.startswith("ATC run failed") for ln in lines)
        assert any(ln.startswith("E10001:") for ln in lines)


def test_fake_requires_framework_5(tiny_onnx, tmp_path):
    common = [f"--model={tiny_onnx}", f"--output={tmp_path / 'f'}", f"--soc_version={SOC}",
              "--input_shape=image:1,3,300,300"]
    assert run_fake(*common).returncode == 255
    assert "parameter [--framework]" in run_fake("--framework=3", *common).stdout
    ok = run_fake("--framework", "5", *common)  # `--name value` form is accepted too
    assert ok.returncode == 0 and ok.stdout.splitlines()[-2] == "ATC run success, welcome to the next use."


def test_fake_checks_input_shape_against_the_onnx(tiny_onnx, tmp_path):
    common = ["--framework=5", f"--model={tiny_onnx}", f"--output={tmp_path / 'f'}", f"--soc_version={SOC}"]
    wrong_name = run_fake(*common, "--input_shape=img:1,3,300,300")
    assert wrong_name.returncode != 0 and "E10016: Opname [img] specified in [--input_shape]" in wrong_name.stdout
    missing = run_fake(*common)
    assert "E10001: Value [-1] for parameter [image] is invalid. Reason: maybe you should set input_shape" \
        in missing.stdout
    wrong_dims = run_fake(*common, "--input_shape=image:1,3,224,224")
    assert "E10001" in wrong_dims.stdout
    one_gear = run_fake(*common, "--input_shape=image:-1,3,300,300", "--dynamic_batch_size=8")
    assert "E10001" in one_gear.stdout and "dynamic_batch_size" in one_gear.stdout
    bare = run_fake(*common, "--input_shape=image:-1,3,300,300")  # no gears: dynamic shape
    assert bare.returncode == 0 and (tmp_path / f"f_linux_{platform.machine()}.om").is_file()


# ----------------------------------------------------------------------------------------- AIPP


def _parse_aipp(text: str) -> dict:
    fields = {}
    for line in text.splitlines():
        line = line.strip()
        if ":" in line and not line.startswith("#"):
            key, value = (s.strip() for s in line.split(":", 1))
            fields[key] = value
    return fields


def test_aipp_config_matches_the_formula_for_ssd_resnet34(spec):
    fields = _parse_aipp(aipp_config_text(spec.transform, "ssd-resnet34"))
    t = spec.transform
    assert fields["aipp_mode"] == "static" and fields["input_format"] == "RGB888_U8"
    assert fields["csc_switch"] == "false" and fields["rbuv_swap_switch"] == "false"
    assert fields["src_image_size_w"] == "300" and fields["src_image_size_h"] == "300"
    for c, (mean, std) in enumerate(zip(t.mean, t.std)):
        mean_chn, min_chn, var_reci = (int(fields[f"mean_chn_{c}"]), float(fields[f"min_chn_{c}"]),
                                       float(fields[f"var_reci_chn_{c}"]))
        assert 0 <= mean_chn <= 255 and 0 <= min_chn < 1
        assert mean_chn + min_chn == pytest.approx(255 * mean, abs=1e-6)  # mean_chn + min_chn = 255 m
        assert var_reci == pytest.approx(1 / (255 * std), rel=1e-7)  # var_reci = 1 / (255 s)
    # the constants worked out from the AIPP normalisation formula (CANN AIPP docs, normalization_config.md)
    table = [(123, 0.675, 0.0171248), (116, 0.28, 0.0175070), (103, 0.53, 0.0174292)]
    for c, (m, n, v) in enumerate(table):
        assert int(fields[f"mean_chn_{c}"]) == m
        assert float(fields[f"min_chn_{c}"]) == pytest.approx(n, abs=1e-9)
        assert float(fields[f"var_reci_chn_{c}"]) == pytest.approx(v, abs=5e-8)


def test_aipp_arithmetic_reproduces_host_normalisation(spec):
    import numpy as np

    t = spec.transform
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(300, 300, 3), dtype=np.uint8)  # HWC uint8, as AIPP receives it
    host = (pixels.astype(np.float64) * t.scale - np.array(t.mean)) / np.array(t.std)
    ch = aipp_values(spec.transform, "ssd-resnet34")
    mean_chn = np.array([c["mean_chn"] for c in ch], dtype=np.float64)
    min_chn = np.array([c["min_chn"] for c in ch])
    var_reci = np.array([c["var_reci_chn"] for c in ch])
    exact = (pixels - mean_chn - min_chn) * var_reci
    assert np.abs(exact - host).max() < 1e-9
    # with fp16 constants (how AIPP stores them) the deviation stays at fp16 resolution
    fp16 = (pixels - mean_chn - min_chn.astype(np.float16).astype(np.float64)) * var_reci.astype(np.float16)
    assert np.abs(fp16 - host).max() < 2e-3


def test_aipp_build_passes_the_config_and_records_uint8_nhwc(tiny_onnx, fake_on_path, tmp_path):
    with pytest.raises(CompilerError, match="--aipp folds the model's normalisation into the .om: pass --model"):
        build_om(tiny_onnx, SOC, batch=16, output=tmp_path / "ai", aipp=True)  # no record names the model
    tiny_onnx.with_name(f"{tiny_onnx.name}.json").write_text(json.dumps({"model": "ssd-resnet34"}))
    result = build_om(tiny_onnx, SOC, batch=16, output=tmp_path / "ai", aipp=True)
    cfg = tmp_path / "ai.aipp.cfg"
    assert f"--insert_op_conf={cfg}" in result.command and cfg.is_file()
    built = json.loads(result.primary.read_bytes().split(b"\n", 1)[1])
    assert built["aipp"][0]["mean_chn_0"] == 123  # the fake parsed and range-checked the file
    assert built["inputs"]["image"]["shape"] == [16, 300, 300, 3] and built["inputs"]["image"]["dtype"] == "uint8"
    record = json.loads(result.sidecar.read_text())
    assert record["input"]["dtype"] == "uint8" and record["input"]["layout"] == "NHWC"
    assert record["aipp_config"] == str(cfg)


# ------------------------------------------------------------------------------------------ CLI


def test_cli_defaults_to_the_last_exported_onnx(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    from ssdconvert.state import remember

    monkeypatch.chdir(tmp_path)
    remember("onnx", tiny_onnx)
    result = CliRunner().invoke(cli, ["atc", "--soc", SOC, "--bs", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert f"using {tiny_onnx} (the ONNX the last `ssdconvert export` wrote)" in result.output
    om = tiny_onnx.parent / "ssd_resnet34_bs4.om"
    assert f"wrote {om}" in result.output and om.is_file()
    assert "soc Ascend310P3, precision force_fp16 (ATC default), batch 4 (--bs)" in result.output
    assert "command: " in result.output and "record:  " in result.output


def test_cli_without_onnx_or_state_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["atc", "--soc", SOC])
    assert result.exit_code == 1 and "make onnx" in result.output and "Traceback" not in result.output


def test_cli_dry_run_prints_the_command(tiny_onnx, tmp_path):
    result = CliRunner().invoke(cli, ["atc", "--onnx", str(tiny_onnx), "--soc", SOC, "--dynamic-bs", "1,4,8,16",
                                      "--extra", "--op_select_implmode=high_precision", "--dry-run"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[0]
    assert "--input_shape=image:-1,3,300,300 " in line and "--dynamic_batch_size=1,4,8,16" in line
    assert line.endswith("--op_select_implmode=high_precision")


def test_cli_missing_atc_is_one_line(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    result = CliRunner().invoke(cli, ["atc", "--onnx", str(tiny_onnx), "--soc", SOC])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "atc not found" in result.output and "set_env.sh" in result.output


def test_cli_failure_is_one_line_with_the_log(onnx_factory, fake_on_path, tmp_path):
    model = onnx_factory("domains.onnx", extra_domain=True)
    result = CliRunner().invoke(cli, ["atc", "--onnx", str(model), "--soc", SOC, "--bs", "1", "-q",
                                      "--output", str(tmp_path / "bad")])
    assert result.exit_code == 1
    error = [ln for ln in result.output.splitlines() if ln.startswith("Error: ")]
    assert len(error) == 1 and "E16005" in error[0] and "bad.atc.log" in error[0]


def test_make_om_builds_from_the_exported_onnx():
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(["make", "-n", "--no-print-directory", "om", "bs=16", "soc=Ascend310P3"], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ("ssdconvert atc --model ssd-resnet34 --onnx build/ssd_resnet34_bs16.onnx --soc Ascend310P3 "
            "--bs 16 --output build/ssd_resnet34_bs16") in done.stdout


def test_record_takes_dtypes_from_the_onnx(tmp_path):
    """An FP16 ONNX (export --half) gives an FP16 .om input and output; the record must say so."""
    import onnx
    from onnx import TensorProto, helper

    from ssdconvert.backends.ascend.compile import build_om

    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT16, [1, 3, 300, 300])
    out = helper.make_tensor_value_info("ploc", TensorProto.FLOAT16, None)
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["ploc"])], "half", [inp], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "half.onnx"))
    result = build_om(tmp_path / "half.onnx", "Ascend310P3", batch=1, output=tmp_path / "half", dry_run=True)
    record = result.info
    assert record["input"]["dtype"] == "float16"
    assert record["output_type"].startswith("float16")


# ------------------------------------------------------------------------------------- bfloat16


BF16 = "allow_mix_precision_bf16"


@pytest.mark.parametrize("soc", ["Ascend310P3", "Ascend310", "Ascend910", "Ascend910B"])
def test_bf16_is_refused_for_chips_without_bfloat16(tiny_onnx, soc):
    """CANN ATC --precision_mode: bfloat16 only on Atlas A2/A3, Atlas 200I/500 A2 and Ascend 950 (not 310P)."""
    from ssdconvert.backends import get

    for precision in (BF16, "allow_fp32_to_bf16"):
        with pytest.raises(CompilerError, match=rf"{precision} needs bfloat16, which {soc} does not have: ATC builds "
                                                r"bfloat16 only for Atlas A2 \(Ascend910B1-B4\), Atlas A3"):
            build_om(tiny_onnx, soc, batch=1, precision=precision, dry_run=True)
    with pytest.raises(CompilerError, match=f"needs bfloat16, which {soc}"):
        build_om(tiny_onnx, soc, batch=1, extra=["--precision_mode_v2=mixed_bfloat16"], dry_run=True)
    refusal = get("ascend").configured(soc=soc).precision_refusal("bf16")
    assert refusal and refusal.startswith(f"Ascend (ATC + ais_bench) cannot build bf16 for {soc}: ")


@pytest.mark.parametrize("soc", ["Ascend910B3", "Ascend910_9392", "Ascend310B4", "Ascend950PR_9599"])
def test_bf16_builds_for_chips_with_bfloat16(tiny_onnx, fake_on_path, tmp_path, soc):
    from ssdconvert.backends import get

    result = build_om(tiny_onnx, soc, batch=1, precision=BF16, output=tmp_path / "b")
    assert f"--precision_mode={BF16}" in result.command and result.primary.is_file()
    assert get("ascend").configured(soc=soc).precision_refusal("bf16") is None


def test_fake_atc_refuses_bf16_per_chip(tiny_onnx, tmp_path):
    common = ["--framework=5", f"--model={tiny_onnx}", f"--output={tmp_path / 'f'}", "--input_shape=image:1,3,300,300"]
    refused = run_fake(*common, "--soc_version=Ascend310P3", f"--precision_mode={BF16}")
    assert refused.returncode == 255 and f"E10001: Value [{BF16}] for parameter [--precision_mode]" in refused.stdout
    assert "bfloat16 is not supported on Ascend310P3" in refused.stdout
    assert run_fake(*common, "--soc_version=Ascend910B2", f"--precision_mode={BF16}").returncode == 0


# ------------------------------------------------------- options users pass through (--extra)


def test_fake_atc_takes_the_documented_pass_through_options(tiny_onnx, fake_on_path, tmp_path):
    ini = tmp_path / "op_precision.ini"
    ini.write_text("[ByOpType]\nConv2D=high_precision\n")
    result = build_om(tiny_onnx, SOC, batch=2, output=tmp_path / "e",
                      extra=["--enable_small_channel=1", "--input_fp16_nodes=image", f"--op_precision_mode={ini}",
                             "--op_debug_level=0"])
    built = json.loads(result.primary.read_bytes().split(b"\n", 1)[1])
    assert built["inputs"]["image"] == {"shape": [2, 3, 300, 300], "dtype": "float16", "layout": "NCHW"}
    with pytest.raises(ToolFailedError, match=r"--op_precision_mode\] is invalid. Reason: the .ini file"):
        build_om(tiny_onnx, SOC, batch=2, output=tmp_path / "m", extra=[f"--op_precision_mode={tmp_path / 'no.ini'}"])
    # --dynamic_dims is a real option; ATC refuses it here for its documented reasons, not as unknown
    with pytest.raises(ToolFailedError, match=r"--dynamic_dims\] is invalid. Reason: needs --input_format=ND"):
        build_om(tiny_onnx, SOC, batch=2, output=tmp_path / "d", extra=["--dynamic_dims=1;2"])
    common = ["--framework=5", f"--model={tiny_onnx}", f"--output={tmp_path / 'dims'}", f"--soc_version={SOC}"]
    dims = run_fake(*common, "--input_format=ND", "--input_shape=image:-1,3,300,300", "--dynamic_dims=1;4;8")
    assert dims.returncode == 0 and (tmp_path / "dims.om").is_file()
    wrong = run_fake(*common, "--input_format=ND", "--input_shape=image:-1,3,-1,300", "--dynamic_dims=1;4")
    assert "one per -1 in --input_shape" in wrong.stdout


def test_fake_atc_takes_every_aipp_template_field(tiny_onnx, fake_on_path, tmp_path):
    cfg = tmp_path / "full.cfg"
    cfg.write_text('aipp_op {\n aipp_mode: static\n related_input_rank: 0\n related_input_name: ""\n'
                   " input_format: RGB888_U8\n src_image_size_w: 0\n src_image_size_h: 0\n cpadding_value: 0.0\n"
                   " crop: false\n resize: false\n resize_output_w: 0\n resize_output_h: 0\n padding: false\n"
                   " padding_value: 0\n rotation_angle: 0\n csc_switch: false\n single_line_mode: false\n"
                   " rbuv_swap_switch: true\n mean_chn_0: 10\n min_chn_0: 0.5\n var_reci_chn_0: 0.01\n}\n")
    common = ["--framework=5", f"--model={tiny_onnx}", f"--output={tmp_path / 'a'}", f"--soc_version={SOC}",
              "--input_shape=image:2,3,300,300"]
    done = run_fake(*common, f"--insert_op_conf={cfg}")
    assert done.returncode == 0, done.stdout
    built = json.loads((tmp_path / "a.om").read_bytes().split(b"\n", 1)[1])
    assert built["inputs"]["image"]["shape"] == [2, 300, 300, 3] and built["inputs"]["image"]["dtype"] == "uint8"
    cfg.write_text("aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n rotation_angle: 5\n}\n")
    out_of_range = run_fake(*common, f"--insert_op_conf={cfg}").stdout
    assert "rotation_angle] is invalid. Reason: out of range [0, 3]" in out_of_range
    cfg.write_text("aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n related_input_rank: 1\n}\n")
    assert "the model has 1 input(s)" in run_fake(*common, f"--insert_op_conf={cfg}").stdout
