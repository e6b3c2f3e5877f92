"""A backend is its folder plus one registry entry: the toy backend in tests/backends/plugins/toy, with its own
target option (--toy-arch) and its own INT8, driven through its compile command, infer, bench, quantize, run and
doctor by the real CLI, while nothing under ssdconvert/ names it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert import backends
from ssdconvert.cli import cli

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
W = np.linspace(-0.9, 1.3, 4 * 3, dtype=np.float32).reshape(4, 3) ** 3  # weights off any int8 grid


@pytest.fixture(scope="module")
def toy():
    """The toy registered for this module: one entry in REGISTERED (a full module path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(HERE))
        patch.setattr(backends, "REGISTERED", (*backends.REGISTERED, "plugins.toy"))  # the one registry line
        backends.all_backends.cache_clear()
        try:
            yield backends.get("toy")
        finally:
            backends.all_backends.cache_clear()
            _forget_namespaces_under(HERE)


def _forget_namespaces_under(folder: Path) -> None:
    """With tests/backends on sys.path, `import magicmind` (a probe for the vendor runtime) finds the test folder
    tests/backends/magicmind as a namespace package; forget such leftovers so later tests import the real thing."""
    for name, module in sorted(sys.modules.items(), key=lambda item: -item[0].count(".")):  # children first:
        # a namespace package recomputes its __path__ from its parent's
        if getattr(module, "__file__", None) is None and any(
                Path(p).is_relative_to(folder) for p in getattr(module, "__path__", None) or ()):
            del sys.modules[name]


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def ok(*args: str):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result


def tiny_conv(path: Path) -> Path:
    """image [N, 3, 300, 300] -> ploc [N, 4, 300, 300]: one 1x1 convolution with the weights W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["ploc"])], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 300, 300])],
        [helper.make_tensor_value_info("ploc", TensorProto.FLOAT, ["N", 4, 300, 300])],
        initializer=[numpy_helper.from_array(W.reshape(4, 3, 1, 1), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def arch_of(model: Path) -> str:
    import onnx

    return {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}["toy_arch"]


def on_int8_grid(model: Path, name: str) -> bool:
    """Every value of the weight `name` is k * max|w| / 127 for an integer k (the literal rule)."""
    import onnx
    from onnx import numpy_helper

    w = next(numpy_helper.to_array(t) for t in onnx.load(str(model)).graph.initializer if t.name == name)
    steps = w / (np.abs(w).max() / 127)
    return bool(np.allclose(steps, np.round(steps), atol=1e-3))


@pytest.fixture(scope="module")
def run_dir(toy, tmp_path_factory):
    """`ssdconvert run` with the toy alone, at its own architecture, in INT8 (its FP32 path is the tiny model's)."""
    workdir = tmp_path_factory.mktemp("toyrun")
    ok("run", "--images", "2", "--backends", "toy", "--toy-arch", "toy-b", "--precisions", "int8", "--bs", "1",
       "--bench-duration", "0.1", "--workers", "1", "--workdir", str(workdir))
    return workdir


def test_run_compiles_infers_evaluates_and_benches_through_the_toy(run_dir):
    import onnx

    report = json.loads((run_dir / "report.json").read_text())
    assert report["config"]["options"]["toy"] == {"tool": None, "arch": "toy-b"}
    stages = {s["name"]: s for s in report["stages"]}
    for step in ("compile", "infer", "eval", "bench"):
        assert not stages[f"{step}:toy@int8"]["skipped"], stages[f"{step}:toy@int8"]
    fp32, int8 = run_dir / "ssd_resnet34.onnx", Path(stages["compile:toy@int8"]["outputs"][0])
    assert int8 == run_dir / "toy" / "ssd_resnet34_toy-b_int8.toy" and arch_of(int8) == "toy-b"
    first_conv = next(t.name for t in onnx.load(str(fp32)).graph.initializer if len(t.dims) == 4)
    assert on_int8_grid(int8, first_conv) and not on_int8_grid(fp32, first_conv)
    settings = json.loads(Path(f"{int8}.json").read_text())["settings"]
    assert settings["calibration_images"] == 2 and settings["input_absmax"] > 0  # the run's bins reached it
    bench = json.loads((run_dir / "bench" / "toy_int8.json").read_text())
    assert bench["label"] == "Toy toy-b" and bench["precision"] == "int8"
    assert bench["rows"][0]["build_command"] == ["toy-build", "--arch=toy-b", "--bs=1"]


def test_compile_command_infer_and_quantize_take_the_toy_and_its_option(toy, run_dir, tmp_path):
    onnx, bins = tiny_conv(tmp_path / "tiny.onnx"), run_dir / "ssd_bin"
    built = ok("toy", "--onnx", str(onnx), "--toy-arch", "toy-b", "--output", str(tmp_path / "m"))
    model = Path(re.search(r"wrote (\S+) for toy-b", built.output).group(1))
    assert model == tmp_path / "m" / "tiny_toy-b.toy" and arch_of(model) == "toy-b"
    ok("infer", "--model", str(model), "--input", str(bins), "--output", str(tmp_path / "res"), "--toy-arch", "toy-b")
    for image in sorted(bins.glob("*.bin")):
        x = np.fromfile(image, dtype=np.float32).reshape(3, -1)
        got = np.fromfile(tmp_path / "res" / f"{image.stem}_0.bin", dtype=np.float32).reshape(4, -1)
        np.testing.assert_allclose(got, W @ x, rtol=1e-4, atol=1e-4)
    wrong = invoke("infer", "--model", str(model), "--input", str(bins), "--output", str(tmp_path / "res2"))
    assert wrong.exit_code == 1 and "Error: tiny_toy-b.toy was built for toy-b, not --toy-arch toy-a" in wrong.output
    int8 = ok("toy", "--onnx", str(onnx), "--precision", "int8", "--calib", str(bins), "--output", str(tmp_path / "q"))
    assert "tiny_toy-a_int8.toy for toy-a" in int8.output and on_int8_grid(tmp_path / "q" / "tiny_toy-a_int8.toy", "w")
    assert not on_int8_grid(onnx, "w")
    ok("quantize", str(onnx), "--calib", str(bins), "--backend", "toy", "--no-gate", "--output", str(tmp_path / "t.toy"))
    assert on_int8_grid(tmp_path / "t.toy", "w")
    assert json.loads((tmp_path / "t.toy.json").read_text())["backend"] == "toy"


def test_bench_builds_per_batch_for_the_toy_arch_and_precision(toy, run_dir, tmp_path):
    onnx = tiny_conv(tmp_path / "tiny.onnx")
    result = ok("bench", "--model", str(onnx), "--backend", "toy", "--toy-arch", "toy-b", "--bs", "1,2", "--duration",
                "0.01", "--precision", "fp32,int8", "--calib", str(run_dir / "ssd_bin"),
                "--output", str(tmp_path / "b"))
    assert "CPU: " not in result.output  # a device backend: this CPU's VNNI or BF16 decide none of its figures
    for precision in ("fp32", "int8"):
        rows = json.loads((tmp_path / "b" / f"tiny_toy_{precision}.json").read_text())["rows"]
        assert [r["batch_size"] for r in rows if r["status"] == "ok"] == [1, 2]
        assert [r["build_command"][1] for r in rows] == ["--arch=toy-b"] * 2
        assert all(Path(r["artefact"]).name == f"tiny_toy-b{'_int8' if precision == 'int8' else ''}.toy" for r in rows)


def test_doctor_help_and_choices_come_from_the_registry(toy):
    doctor = json.loads(ok("doctor", "--json", "--backend", "toy").stdout)
    assert doctor["capabilities"] == {"run .toy": True}
    assert "toy runtime" in ok("doctor").output
    assert "toy" in cli.list_commands(None) and "--toy-arch" in ok("run", "--help").output
    assert "--toy-arch" in ok("bench", "--help").output and "--toy-arch" in ok("infer", "--help").output
    assert "toy" in backends.quantizers()


def test_nothing_in_ssdconvert_names_the_toy(toy):
    named = [str(p.relative_to(ROOT)) for p in (ROOT / "ssdconvert").rglob("*.py")
             if re.search(r"\btoy\b", p.read_text(), re.I)]
    assert named == []


def test_without_its_registry_entry_the_toy_is_gone(toy):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backends, "REGISTERED", tuple(e for e in backends.REGISTERED if e != "plugins.toy"))
        backends.all_backends.cache_clear()
        try:
            assert "toy" not in cli.list_commands(None) and "--toy-arch" not in ok("run", "--help").output
            refused = invoke("bench", "--model", __file__, "--backend", "toy")
            assert refused.exit_code == 2 and "unknown backend 'toy'" in refused.output
        finally:
            backends.all_backends.cache_clear()
