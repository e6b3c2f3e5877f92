"""The MagicMind adapter and ssdconvert's build script (build_model.py), run on the fake `magicmind` package
(tests/fakes/magicmind: the builder and runtime calls of Cambricon's magicmind_cloud v1.7 samples)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.backends.compiling import ArtefactMissingError, CompilerError
from ssdconvert.backends.magicmind import compile as magicmind
from ssdconvert.backends.magicmind.compile import BUILD_SCRIPT, FLAGS, build_magicmind
from ssdconvert.cli import cli
from ssdconvert.launcher import ToolFailedError, ToolNotFoundError, ToolTimeoutError

FAKES = Path(__file__).resolve().parents[2] / "fakes"


def built_record(model: Path) -> dict:
    """What the fake Builder serialised: the ONNX, each input's dims, dtype and range, the calibration."""
    head, line = model.read_bytes().split(b"\n", 2)[:2]
    assert head == b"FAKE-MAGICMIND"
    return json.loads(line)


def test_static_build_command_and_exact_model_path(tiny_onnx, fake_on_path, tmp_path):
    out = tmp_path / "mm" / "ssd_model"
    result = build_magicmind(tiny_onnx, batch=16, output=out)
    assert result.artefacts == [out]  # written exactly at --magicmind_model, no extension
    assert result.command == [sys.executable, str(BUILD_SCRIPT),
                              "--onnx", str(tiny_onnx), "--precision", "force_float32", "--mlu_arch", "mtp_372",
                              "--input_dims", "16", "3", "300", "300", "--batch_size", "16", "--dynamic_shape", "false",
                              "--magicmind_model", str(out)]
    model = built_record(out)
    assert model["inputs"] == [{"name": "image", "dims": [16, 3, 300, 300], "dtype": "FLOAT32", "range": None,
                                "bn": None}]
    assert model["precision"] == "force_float32" and model["mlu_archs"] == ["mtp_372"] and model["calibration"] is None
    assert result.log_path == tmp_path / "mm" / "ssd_model.magicmind.log"
    assert "wrote " in result.log_path.read_text()
    record = json.loads(result.sidecar.read_text())
    assert result.sidecar == tmp_path / "mm" / "ssd_model.json"
    assert record["command"] == result.command and record["precision"] == "force_float32"
    assert record["builder"] == "ssdconvert build_model.py"
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
    assert built_record(result.primary)["inputs"][0]["dims"] == [-1, 3, 300, 300]
    custom = build_magicmind(tiny_onnx, batch=1, dynamic=True, dim_ranges=[((2, 3, 300, 300), (32, 3, 300, 300))],
                             dry_run=True)
    assert custom.info["dim_ranges"] == [{"min": [2, 3, 300, 300], "max": [32, 3, 300, 300]}]


@pytest.mark.parametrize("kwargs, match", [
    ({"precision": "fp32"}, "unknown --precision"),
    ({"precision": "qint8_mixed_float16"}, "calibration"),
    ({"mlu_arch": "mlu370"}, "mtp_372"),
    ({"dim_ranges": [((1, 3, 300, 300), (8, 3, 300, 300))]}, "only with --dynamic"),
    ({"dynamic": True, "dim_ranges": [((8, 3, 300, 300), (1, 3, 300, 300))]}, "must be >= 1 and <= max"),
    ({"dynamic": True, "dim_ranges": [((1, 3, 200, 200), (8, 3, 300, 300))]}, "only the batch"),
    ({"dynamic": True, "dim_ranges": []}, "give one --dim-range per input"),
    ({"calib": Path("."), "precision": "qint8_mixed_float16", "tool": "gen_model.py"}, "calibrates by its own means"),
])
def test_bad_options_fail_before_running(tiny_onnx, kwargs, match):
    with pytest.raises(CompilerError, match=match):
        build_magicmind(tiny_onnx, **{"dry_run": True, **kwargs})


def test_unknown_flag_is_rejected_by_the_script_and_reported(tiny_onnx, fake_on_path, tmp_path):
    with pytest.raises(ToolFailedError) as err:
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "m", extra=["--fast_mode", "1"])
    message = str(err.value)
    assert err.value.returncode == 2 and "unrecognized arguments: --fast_mode 1" in message
    assert "correct FLAGS in ssdconvert/backends/magicmind/compile.py" in message and "m.magicmind.log" in message


def test_builder_failure_shows_its_error_line(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MM_MODE", "fail")
    with pytest.raises(ToolFailedError, match=r"exit code 1\): error: MagicMind could not build the model"):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "m")
    assert "[MMERROR] forced failure" in (tmp_path / "m.magicmind.log").read_text()


def test_crash_timeout_and_missing_model(tiny_onnx, fake_on_path, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_MM_MODE", "crash")
    with pytest.raises(ToolFailedError, match="SIGSEGV"):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "c")
    monkeypatch.setenv("FAKE_MM_MODE", "hang")
    with pytest.raises(ToolTimeoutError):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "h", timeout=3)
    monkeypatch.setenv("FAKE_MM_MODE", "no-artefact")
    with pytest.raises(ArtefactMissingError, match="did not write"):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "n")


def test_tool_can_be_a_plain_python_build_script(tiny_onnx, fake_on_path, tmp_path):
    script = tmp_path / "gen_model.py"  # not executable: run under the MagicMind Python, as users run gen_model.py
    script.write_text("import sys\nout = sys.argv[sys.argv.index('--magicmind_model') + 1]\n"
                      "open(out, 'wb').write(b'model')\nprint('done')\n")
    result = build_magicmind(tiny_onnx, batch=1, output=tmp_path / "g", tool=str(script))
    assert result.command[:2] == [sys.executable, str(script.resolve())]
    assert result.primary.read_bytes() == b"model" and result.info["builder"] == str(script)
    with pytest.raises(ToolNotFoundError, match="--tool no_such_build: not found on PATH"):
        build_magicmind(tiny_onnx, batch=1, output=tmp_path / "x", tool="no_such_build")


def test_the_script_says_what_it_needs(tiny_onnx, fake_on_path, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(BUILD_SCRIPT), "--onnx", str(tiny_onnx), *args],
                              capture_output=True, text=True, timeout=120)

    out = ["--magicmind_model", str(tmp_path / "m")]
    assert run(*out, "--bogus").returncode == 2
    qint = run(*out, "--precision", "qint8_mixed_float16", "--input_dims", "1", "3", "300", "300")
    assert qint.returncode == 1 and "error: --precision qint8_mixed_float16 calibrates" in qint.stderr
    static = run(*out, "--dynamic_shape", "false")  # the ONNX batch is symbolic: a static build needs --input_dims
    assert static.returncode == 1 and "a static build needs every dim" in static.stderr
    assert "the network has 1 input(s) but --input_dims gives 2" in run(
        *out, "--input_dims", "1", "3", "300", "300", "--input_dims", "1", "4").stderr
    bare = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--onnx", str(tiny_onnx)], capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert bare.returncode == 1 and "cannot import Cambricon's magicmind wheel" in bare.stderr


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
    help_text = " ".join(runner.invoke(cli, ["cnnl", "--help"]).output.split())
    assert "build_model.py under the MagicMind Python" in help_text


# ---------------------------------------------------------------------- INT8 calibration (item: our own script)


def write_bins(folder: Path, values: list[float], shape=(3, 300, 300)) -> list[Path]:
    """One float32 sample per value, every element that value (so the calibrated range is known exactly)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, value in enumerate(values):
        path = folder / f"{k:012d}.bin"
        np.full(shape, value, np.float32).tofile(path)
        paths.append(path)
    return paths


def calib_folder(tmp_path: Path, values: list[float]) -> Path:
    from preprocess.manifest import ImageRecord, InputInfo, Manifest, write_manifest
    from stageio.tensor import TensorSpec

    folder = tmp_path / "calib"
    paths = write_bins(folder, values)
    info = InputInfo(TensorSpec("image", (3, 300, 300), "float32"), layout="CHW", channel_order="RGB",
                     resize="bilinear", keep_aspect=False, scale=1 / 255, mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225), normalized=True)
    images = [ImageRecord(id=k, file_name=f"{p.stem}.jpg", stem=p.stem, width=640, height=480)
              for k, p in enumerate(paths, 1)]
    write_manifest(folder, Manifest(model="tiny", input=info, annotation_path="ann.json", annotation_sha256="0",
                                    data_root=".", images=images))
    return folder


def test_int8_calibrates_on_the_listed_bins(tiny_onnx, fake_on_path, tmp_path):
    folder = calib_folder(tmp_path, [-3.0, 0.5, 2.0, 7.25, 1.0])
    result = build_magicmind(tiny_onnx, batch=2, precision="qint8_mixed_float16", calib=folder, calib_images=5,
                             output=tmp_path / "q")
    command = result.command
    assert command[command.index("--calibration_data_path") + 1] == str(folder.resolve())
    listed = Path(command[command.index("--file_list") + 1])
    assert listed == tmp_path / "q.calib_list.txt" and len(listed.read_text().split()) == 5
    assert "--calibration" not in command  # build_param.py declares it; nothing needs it here
    # the builder saw every sample, read as float32 (3, 300, 300): the range is exactly the values written
    assert built_record(result.primary)["calibration"] == [{"min": -3.0, "max": 7.25, "samples": 6}]  # 3 batches of 2
    assert "calibrated on 5 sample(s) per input" in result.log_path.read_text()
    assert json.loads(result.sidecar.read_text())["calibration"]["images"] == 5


def test_int8_refuses_samples_of_the_wrong_size(tiny_onnx, fake_on_path, tmp_path):
    folder = calib_folder(tmp_path, [1.0, 2.0])
    np.zeros((3, 300, 300), np.float16).tofile(folder / "000000000001.bin")  # float16 bins in a float32 build
    with pytest.raises(ToolFailedError, match=r"000000000001.bin holds 540000 bytes; one sample of \[3, 300, 300\] "
                                              r"float32 is 1080000"):
        build_magicmind(tiny_onnx, batch=2, precision="qint8_mixed_float16", calib=folder, output=tmp_path / "q")


def test_the_fake_builder_refuses_what_the_samples_show_it_needs(tiny_onnx, fake_on_path, monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    import magicmind.python.runtime as mm
    from magicmind.python.runtime.parser import Parser

    network = mm.Network()
    assert Parser(mm.ModelKind.kOnnx).parse(network, str(tiny_onnx)).ok()
    image = network.get_input(0)
    assert image.get_dimension().GetDims() == [-1, 3, 300, 300]
    assert not image.set_dimension(mm.Dims([1, 3, 300])).ok() and not image.set_dimension(mm.Dims([1, 3, 9, 9])).ok()
    config = mm.BuilderConfig()
    assert not config.parse_from_string('{"precision_config": {"precision_mode": "int8"}}').ok()
    assert not config.parse_from_string('{"no_such_key": 1}').ok()
    assert mm.Builder().build_model("m", network, config) is None  # static, batch still -1
    assert config.parse_from_string('{"graph_shape_mutable": true, "dim_range": {"0": {"min": [1, 3, 300, 300], '
                                    '"max": [4, 3, 300, 300]}}}').ok()
    assert mm.Builder().build_model("m", network, config) is not None
    assert config.parse_from_string('{"precision_config": {"precision_mode": "qint8_mixed_float16"}}').ok()
    assert mm.Builder().build_model("m", network, config) is None  # qint, not calibrated
    for name in [m for m in sys.modules if m.split(".")[0] == "magicmind"]:
        del sys.modules[name]
