"""CLI behaviour common to every command: help, version, one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ssdconvert import __version__
from ssdconvert.cli import cli

runner = CliRunner()


def test_version():
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("command", cli.list_commands(None))
def test_every_command_has_help(command):
    result = runner.invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and len(result.output.splitlines()) > 3


def assert_one_line_error(result, text):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and text in errors[0], result.output


def test_unknown_model_is_a_one_line_error():
    assert_one_line_error(runner.invoke(cli, ["export", "--model", "yolo"]), "unknown model 'yolo'")


def test_bad_checkpoint_is_a_one_line_error(tmp_path):
    (tmp_path / "x.pt").write_text("garbage")
    result = runner.invoke(cli, ["export", "--checkpoint", str(tmp_path / "x.pt"), "--output", str(tmp_path / "m.onnx")])
    assert_one_line_error(result, "is not a readable PyTorch checkpoint")


def test_unwritable_output_path_is_a_one_line_error(tmp_path):
    (tmp_path / "afile").write_text("")
    result = runner.invoke(cli, ["export", "--output", str(tmp_path / "afile" / "m.onnx")])
    assert_one_line_error(result, "cannot create directory")


def test_models_lists_the_contract():
    result = runner.invoke(cli, ["models"])
    assert result.exit_code == 0
    assert "ssd-resnet34" in result.output and "plabel float32 ['N', 81, 8732]" in result.output
    described = {d["name"]: d for d in json.loads(runner.invoke(cli, ["models", "--json"]).output)}
    assert described["ssd-resnet34"]["head"]["anchors"]["count"] == 8732


def test_cli_and_zoo_import_no_heavy_runtime():
    """`ssdconvert --help` and the model specs work without importing torch or any runtime."""
    import subprocess
    import sys

    code = ("import sys; from ssdconvert.cli import cli; from ssdconvert.zoo import all_specs; "
            "[s.describe() for s in all_specs()]; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_library_never_imports_the_cli():
    """Only ssdconvert/cli/ may import ssdconvert.cli: shared formatting lives in ssdconvert/formatting.py."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "ssdconvert"
    offenders = []
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts or path.name == "__main__.py":  # the entry points
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith("ssdconvert.cli")]
    assert offenders == []


@pytest.mark.parametrize("command", [["bench", "--model", "x.onnx"], ["run"], ["atc", "--soc", "Ascend310P3",
                                                                            "--dry-run", "--dynamic-bs"]])
@pytest.mark.parametrize("value", ["1,,4", "4,", "1,x", "0,2", "-1"])
def test_integer_lists_refuse_empty_and_non_positive_items(command, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.onnx").write_bytes(b"")
    flag = [] if command[-1] == "--dynamic-bs" else ["--bs"]
    result = CliRunner().invoke(cli, [*command, *flag, value])
    assert result.exit_code == 2, result.output
    assert "expected comma-separated positive integers" in result.output and repr(value) in result.output


def test_every_command_of_every_module_is_registered_and_loads_alone():
    """Commands load lazily by name; each module's COMMANDS must all be in COMMAND_MODULES (or they vanish)."""
    import importlib
    import subprocess
    import sys

    from ssdconvert.cli import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        for command in importlib.import_module(f"ssdconvert.cli.{module}").COMMANDS:
            assert COMMAND_MODULES.get(command.name) == module, command.name
            assert cli.get_command(None, command.name) is command
    code = ("import sys; from ssdconvert.cli import main; sys.argv = ['ssdconvert', 'preprocess', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('ssdconvert.backends', 'ssdconvert.cli.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['ssdconvert.cli.options', 'ssdconvert.cli.preprocess']"
