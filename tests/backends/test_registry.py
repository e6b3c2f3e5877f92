"""The backend registry: one name each, deprecated aliases, model recognition, and the seam a new backend plugs into."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import pytest

from ssdconvert import backends
from ssdconvert.cli import cli
from ssdconvert.errors import SsdConvertError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ssdconvert" / "backends"
NAMES = {"onnxruntime", "openvino", "ascend", "magicmind", "atc", "ais_bench"}


BUILT_IN = ["onnxruntime", "openvino", "ascend", "magicmind"]


def test_every_backend_is_one_folder_with_the_same_files():
    assert backends.names() == [b.name for b in backends.all_backends()]
    assert backends.names()[:len(BUILT_IN)] == BUILT_IN  # a backend added later comes after them
    for backend in backends.all_backends()[:len(BUILT_IN)]:
        folder = PACKAGE / backend.name
        assert type(backend).__module__ == f"ssdconvert.backends.{backend.name}"
        present = {p.name for p in folder.glob("*.py")}
        assert {"__init__.py", "runner.py", "doctor.py"} <= present, backend.name
        assert ("compile.py" in present) == (backend.name != "onnxruntime"), backend.name  # it compiles nothing
        assert ("quantize.py" in present) == backend.quantizes, backend.name
        assert ("layers.py" in present) == backend.exposes_layers, backend.name
        assert ("commands.py" in present) == bool(backend.commands() or any(
            backend.cli_options(c) for c in ("run", "bench", "infer", "quantize"))), backend.name
        assert backend.default_precision in backend.precisions, backend.name


def test_the_compile_commands_are_the_backends_own_from_the_registry():
    for backend in backends.all_backends():
        for command in backend.commands():
            assert cli.get_command(None, command.name) is command
    assert {"atc", "cnnl", "magicmind", "openvino"} <= set(cli.list_commands(None))


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
    with pytest.raises(SsdConvertError, match=f"unknown backend 'tensorrt'; choose one of {', '.join(backends.names())}$"):
        backends.get("tensorrt")


def test_auto_picks_the_backend_by_file_type_or_build_record(tmp_path):
    assert backends.for_model("m.om").name == "ascend"
    assert backends.for_model("m.ONNX").name == "onnxruntime"
    assert backends.for_model("m.xml").name == "openvino"
    assert backends.for_model("m.onnx", "openvino").name == "openvino"
    mm_model = tmp_path / "ssd_model_force_float32_false_2"  # MagicMind models have no extension
    mm_model.write_bytes(b"model")
    with pytest.raises(SsdConvertError, match=r"cannot choose a backend for 'ssd_model_force_float32_false_2': "
                                              r"expected \.onnx \(onnxruntime\), \.xml \(openvino\), \.om \(ascend\)(, .*)?, "
                                              r"or a model with its build record <model>\.json \(magicmind(, .*)?\)"):
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


LIBRARY = ["infer.py", "bench.py", "timing.py", "doctor.py", "evaluation.py", "quantize.py", "compare.py",
           "pipeline/__init__.py", "pipeline/report.py", "backends/base.py", "backends/composite.py",
           "backends/commands.py", "cli/__init__.py", "cli/infer.py", "cli/bench.py", "cli/run.py", "cli/doctor.py",
           "cli/quantize.py", "cli/compile.py", "cli/options.py"]


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


def test_a_backend_class_that_declares_what_it_does_not_implement_fails_when_defined():
    """A misspelt `build_for_batch` no longer makes bench time the .onnx: the class is refused at once."""
    from ssdconvert.backends.base import Backend

    class Complete(Backend):
        name, label = "complete", "Complete"

        def build(self, onnx, out_dir, *, batch, precision, calib):
            return [onnx]

        def runner_for(self, model, options):
            raise NotImplementedError

        def checks(self):
            return []

        def missing(self):
            return None

    with pytest.raises(TypeError, match="sets builds_per_batch but does not implement build_for_batch"):
        type("Misspelt", (Complete,), {"builds_per_batch": True, "build_for_bach": lambda self, o, b, c: (o, {})})
    with pytest.raises(TypeError, match="implements build_for_batch but does not set builds_per_batch"):
        type("Unflagged", (Complete,), {"build_for_batch": lambda self, o, b, c: (o, {})})
    with pytest.raises(TypeError, match="sets quantized_suffix but does not implement quantize"):
        type("NoQuantizer", (Complete,), {"quantized_suffix": ".q"})
    with pytest.raises(TypeError, match="builds fp16, not its default precision fp32"):
        type("Wrong", (Complete,), {"precisions": ("fp16",)})
    with pytest.raises(TypeError, match="declares no name"):
        type("Nameless", (Backend,), {k: v for k, v in vars(Complete).items() if k not in ("name", "__dict__")})

    class Incomplete(Backend):
        name, label = "incomplete", "Incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
    assert Complete().build_tag == "complete"  # its name unless it declares another


def test_options_travel_as_the_backends_own_typed_object():
    from ssdconvert.backends.ascend import AscendOptions
    from ssdconvert.backends.base import BackendOptions, RunOptions
    from ssdconvert.timing import BenchContext

    ascend = backends.get("ascend")
    configured = ascend.configured(soc="Ascend310P3")
    assert configured.options == AscendOptions(soc="Ascend310P3") and ascend.options == AscendOptions()
    assert ascend.configured({"ascend": AscendOptions(dym_batch=True), "openvino": BackendOptions()}).options.dym_batch
    assert ascend.configured({"openvino": BackendOptions()}).options == AscendOptions()  # not named: its defaults
    with pytest.raises(SsdConvertError, match="Ascend .* has no option arch"):
        ascend.configured(arch="x")
    with pytest.raises(SsdConvertError, match="takes AscendOptions, not BackendOptions"):
        ascend.configured(BackendOptions())
    generic = {f for cls in (RunOptions, BenchContext, BackendOptions) for f in cls.__dataclass_fields__}
    assert not generic & {"soc", "dym_batch", "mlu_arch", "ort_types"}


def test_no_zoo_model_is_named_in_a_backend():
    """A backend knows no family: what it needs of one comes from the model's records or the zoo by name."""
    from ssdconvert.zoo import model_names

    named = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docs = {id(node.body[0].value) for node in ast.walk(tree) if isinstance(node, (ast.Module, ast.FunctionDef,
                ast.ClassDef)) and node.body and isinstance(node.body[0], ast.Expr)}
        named += [f"{path.relative_to(PACKAGE)}: {node.value[:60]}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
                  and any(name in node.value for name in model_names())]
    assert named == []
