"""The backend registry: one name each, deprecated aliases, model recognition, and the seam a new backend plugs into."""

from __future__ import annotations

import ast
import json
import shutil
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from ssdconvert import backends
from ssdconvert.cli import cli
from ssdconvert.errors import SsdConvertError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ssdconvert" / "backends"
NAMES = {"onnxruntime", "openvino", "ascend", "magicmind", "atc", "ais_bench"}


def test_every_backend_is_one_folder_with_the_same_files():
    assert backends.names() == ["onnxruntime", "openvino", "ascend", "magicmind"]
    for backend in backends.all_backends():
        folder = PACKAGE / backend.name
        assert backend.package == f"ssdconvert.backends.{backend.name}"
        present = {p.name for p in folder.glob("*.py")}
        assert {"__init__.py", "runner.py", "doctor.py"} <= present, backend.name
        assert "compile.py" in present, backend.name  # onnxruntime's only makes its INT8 copy
        assert ("quantize.py" in present) == (backend.name in ("onnxruntime", "openvino")), backend.name
        assert backend.default_precision in backend.precisions, backend.name


def test_old_names_resolve_to_ascend_with_one_note():
    assert backends.resolve("ascend") == (backends.get("ascend"), None)
    for old in ("atc", "ais_bench"):
        backend, note = backends.resolve(old)
        assert backend.name == "ascend" and note == f"'{old}' is deprecated as a backend name; use 'ascend'"
        with pytest.warns(FutureWarning, match=f"'{old}' is deprecated as a backend name; use 'ascend'"):
            assert backends.get(old).name == "ascend"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.get("ascend").name == "ascend"  # the one name: no warning
    with pytest.raises(SsdConvertError, match="unknown backend 'tensorrt'; choose one of onnxruntime, openvino, "
                                              "ascend, magicmind"):
        backends.get("tensorrt")


def test_auto_picks_the_backend_by_file_type_or_build_record(tmp_path):
    assert backends.for_model("m.om").name == "ascend"
    assert backends.for_model("m.ONNX").name == "onnxruntime"
    assert backends.for_model("m.xml").name == "openvino"
    assert backends.for_model("m.onnx", "openvino").name == "openvino"
    mm_model = tmp_path / "ssd_model_force_float32_false_2"  # MagicMind models have no extension
    mm_model.write_bytes(b"model")
    with pytest.raises(SsdConvertError, match=r"cannot choose a backend for 'ssd_model_force_float32_false_2': "
                                              r"expected \.onnx \(onnxruntime\), \.xml \(openvino\), \.om \(ascend\), "
                                              r"or a model with its build record <model>\.json \(magicmind\)"):
        backends.for_model(mm_model)
    Path(f"{mm_model}.json").write_text(json.dumps({"tool": "magicmind"}))
    assert backends.for_model(mm_model).name == "magicmind"
    with pytest.raises(SsdConvertError, match=r"ONNX Runtime runs \.onnx, not 'm\.om'"):
        backends.get("onnxruntime").check_model("m.om")


def test_cpu_runners_refuse_a_device_list_and_ascend_takes_one():
    with pytest.raises(SsdConvertError, match=r"ONNX Runtime runs one device per run: --device takes one value, not "
                                              r"the list '0,1'\. It runs on this machine's CPU\."):
        backends.get("onnxruntime").devices("0,1")
    with pytest.raises(SsdConvertError, match="OpenVINO runs one device per run"):
        backends.get("openvino").devices("CPU,GPU")
    with pytest.raises(SsdConvertError, match="MagicMind .* runs one device per run"):
        backends.get("magicmind").devices("0,1")
    assert backends.get("ascend").devices("0,1,2,3") == ["0", "1", "2", "3"]
    with pytest.raises(SsdConvertError, match="lists device 1 twice"):
        backends.get("ascend").devices("0,1,1")


LIBRARY = ["infer.py", "bench.py", "doctor.py", "evaluation.py", "pipeline/__init__.py", "pipeline/report.py",
           "cli/infer.py", "cli/bench.py", "cli/run.py", "cli/doctor.py"]


@pytest.mark.parametrize("module", LIBRARY)
def test_no_backend_name_dispatch_outside_the_backend_folders(module):
    """infer, bench, run, doctor and their CLI read the registry: no `== "ascend"` or `{"atc": ...}` chains."""
    tree = ast.parse((ROOT / "ssdconvert" / module).read_text())
    named = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            named += [p.value for p in parts if isinstance(p, ast.Constant) and p.value in NAMES]
            named += [e.value for p in parts if isinstance(p, (ast.Tuple, ast.List, ast.Set)) for e in p.elts
                      if isinstance(e, ast.Constant) and e.value in NAMES]
        if isinstance(node, ast.Dict):  # a table keyed by several backends is a dispatch too
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in NAMES]
            named += keys if len(keys) > 1 else []
    assert named == [], f"{module} dispatches on backend names {named}"


TOY = '''
from ssdconvert.backends.base import Backend

BACKEND = Backend(name="toy", label="Toy", package=__name__, suffixes=(".toy",))
'''
TOY_RUNNER = '''
from ssdconvert.backends.onnxruntime.runner import OnnxRuntimeRunner


class ToyRunner(OnnxRuntimeRunner):
    name = "toy"


def make_runner(model, options):
    return ToyRunner(model)
'''
TOY_DOCTOR = '''
from ssdconvert.doctor import Check


def checks():
    return [Check("runtimes", "toy runtime", "ok", "1.0", "always here", capability="run .toy")]
'''


def test_a_new_backend_is_its_folder_plus_one_registry_line(tmp_path, monkeypatch, tiny_onnx):
    """Add a backend without touching infer, bench, doctor or the CLI: a folder and a registry entry."""
    folder = tmp_path / "plugins" / "toy"
    folder.mkdir(parents=True)
    (folder.parent / "__init__.py").write_text("")
    for name, text in {"__init__.py": TOY, "runner.py": TOY_RUNNER, "doctor.py": TOY_DOCTOR}.items():
        (folder / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(backends, "REGISTERED", (*backends.REGISTERED, "plugins.toy"))  # the one registry line
    backends.all_backends.cache_clear()
    try:
        model = tmp_path / "m.toy"
        shutil.copy(tiny_onnx, model)
        inputs = tmp_path / "in"
        inputs.mkdir()
        for k in range(3):
            (inputs / f"{k:012d}.bin").write_bytes(bytes(3 * 300 * 300 * 4))
        runner = CliRunner()
        infer = runner.invoke(cli, ["infer", "--model", str(model), "--input", str(inputs), "--output",
                                    str(tmp_path / "out")])
        assert infer.exit_code == 0, infer.output
        assert "backend toy" in infer.output and len(list((tmp_path / "out").glob("*_0.bin"))) == 3
        bench = runner.invoke(cli, ["bench", "--model", str(model), "--backend", "toy", "--bs", "1,2", "--duration",
                                    "0.01", "--output", str(tmp_path / "bench")])
        assert bench.exit_code == 0, bench.output
        assert json.loads((tmp_path / "bench" / "m_toy.json").read_text())["backend"] == "toy"
        doctor = runner.invoke(cli, ["doctor", "--json", "--backend", "toy"])
        assert json.loads(doctor.stdout)["capabilities"] == {"run .toy": True}
    finally:
        backends.all_backends.cache_clear()


@pytest.fixture
def tiny_onnx(onnx_factory):
    return onnx_factory("toy.onnx", batch=None)
