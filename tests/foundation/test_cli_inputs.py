"""What a new user typed that the CLI must answer with one `Error:` line (issue 24 §3): non-finite
numbers, unwritable output folders, a manifest given for a folder, a repeated --backend."""

from __future__ import annotations

import click
import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli


def _commands():
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def test_every_float_option_refuses_nan_and_inf():
    """One shared type for every float option of every command (the backends' own commands included)."""
    from ssdconvert.backends.commands import FiniteFloat

    floats = [(name, p) for name, command in _commands().items() for p in command.params
              if isinstance(p.type, (click.types.FloatParamType, click.FloatRange))]
    assert {f"{n} {p.opts[0]}" for n, p in floats} >= {"bench --duration", "run --bench-duration", "quantize --min-snr",
                                                        "compare --min-cosine", "atc --timeout", "export --atol"}
    for name, param in floats:
        assert isinstance(param.type, FiniteFloat), f"{name} {param.opts[0]}"
        for text in ("nan", "NaN", "inf", "-inf"):
            with pytest.raises(click.BadParameter, match="is not a finite number"):
                param.type.convert(text, param, None)
        assert param.type.convert("0.5" if param.opts[0] != "--timeout" else "5", param, None) > 0


@pytest.mark.parametrize("args", [["bench", "--model", "{model}", "--duration", "nan"],
                                  ["run", "--bench-duration", "nan", "--workdir", "{tmp}"],
                                  ["quantize", "{model}", "--calib", "{tmp}", "--min-snr", "nan"]])
def test_a_nan_duration_or_threshold_is_refused_before_anything_runs(args, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    result = CliRunner().invoke(cli, [a.format(model=model, tmp=tmp_path / "w") for a in args])
    assert result.exit_code == 2, result.output
    assert "'nan' is not a finite number" in result.output.strip().splitlines()[-1]
    assert not (tmp_path / "w").exists()


@pytest.fixture
def small_onnx(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["out"])], "small",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 8, 8])])
    path = tmp_path / "small.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


@pytest.mark.parametrize("command", [["quantize", "{onnx}", "--calib", "{tmp}", "--output", "{out}.onnx"],
                                     ["openvino", "--onnx", "{onnx}", "--output", "{out}"],
                                     ["atc", "--onnx", "{onnx}", "--soc", "Ascend310P3", "--bs", "1",
                                      "--output", "{out}"],
                                     ["cnnl", "--onnx", "{onnx}", "--bs", "1", "--output", "{out}"]],
                         ids=lambda c: c[0])
def test_an_output_folder_under_a_file_is_one_error_line(command, small_onnx, tmp_path, fake_vendor_env):
    """quantize (its staging folder), openvino, atc and cnnl (the tool's log) once raised tracebacks; every command
    now goes through the one check of output folders (issue 24 §3.5)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    args = [a.format(onnx=small_onnx, tmp=tmp_path, out=blocker / "sub" / "m") for a in command]
    result = CliRunner(env=fake_vendor_env).invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: cannot create directory {blocker / 'sub'}: {blocker} is a file, not a directory")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_output_folder_is_one_error_line(small_onnx, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = CliRunner().invoke(cli, ["openvino", "--onnx", str(small_onnx), "--output", str(locked / "m")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == f"Error: directory is not writable: {locked}"


@pytest.mark.parametrize("side, says", [
    ("m.pt", "m.pt: a PyTorch checkpoint is not a model compare runs; export it first"),
    ("openvino:small.onnx:int4", "openvino:small.onnx:int4: unknown precision 'int4'; choose from fp32, fp16, bf16, "
                                 "int8"),
    ("m.bin", "name its backend: <backend>:m.bin"),
])
def test_compare_says_what_is_wrong_with_a_side(side, says, small_onnx, monkeypatch):
    """compare has no --backend to suggest, and an unknown precision is not a missing file (issue 24 §3.9)."""
    monkeypatch.chdir(small_onnx.parent)
    (small_onnx.parent / "m.pt").write_bytes(b"")
    (small_onnx.parent / "m.bin").write_bytes(b"")
    result = CliRunner().invoke(cli, ["compare", "small.onnx", side, "--input", "bins"])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert says in last and "--backend" not in last and "does not exist" not in last


def test_infer_asks_for_the_folder_when_given_its_manifest(small_onnx, tmp_path):
    """`infer --input bins/manifest.json` once complained about byte counts (issue 24 §3.9)."""
    bins = tmp_path / "bins"
    bins.mkdir()
    (bins / "manifest.json").write_text("{}")
    result = CliRunner().invoke(cli, ["infer", "--model", str(small_onnx), "--input", str(bins / "manifest.json"),
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --input {bins / 'manifest.json'} is a JSON file, not input tensors: give the folder of .bin files it "
        f"describes ({bins})")


def test_doctor_shows_a_backend_named_twice_once():
    """`doctor --backend ascend --backend atc` printed every Ascend row and its summary twice (issue 24 §3.10)."""
    result = CliRunner().invoke(cli, ["doctor", "--backend", "onnxruntime", "--backend", "onnxruntime"])
    assert result.exit_code == 0
    assert result.output.count("onnxruntime providers") == 1 and result.output.count("this machine can") == 1


@pytest.mark.parametrize("backend, hint", [("openvino", None), ("onnxruntime", "another --ort-types")])
def test_a_failed_int8_gate_suggests_only_options_the_backend_has(backend, hint, tmp_path):
    """OpenVINO has no --ort-types: its failed gate no longer suggests it (issue 24 §3.9)."""
    from ssdconvert.agreement import AgreementReport, Thresholds, tensor_figures
    from ssdconvert.errors import SsdConvertError
    from ssdconvert.quantize import QuantizeResult

    ref = np.linspace(-1, 1, 50, dtype=np.float32)
    gate = AgreementReport("r", "c", 1, [tensor_figures("ploc", ref, -ref)], None, Thresholds())
    result = QuantizeResult(backend, tmp_path / "m.onnx", tmp_path / "q", [], {}, [], gate, tmp_path / "q.json", 1.0)
    with pytest.raises(SsdConvertError) as caught:
        result.check_passed()
    message = str(caught.value)
    assert "try more --calib-images" in message and "--exclude" in message
    assert ("--ort-types" in message) == (hint is not None)
