"""Fixtures for the compiler adapters: tiny ONNX files and launchers for the fake vendor tools."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest



def make_onnx(path: Path, *, batch: int | None = None, name: str = "image", opset: int = 11,
              extra_domain: bool = False, nonzero: bool = False, hw: int = 300) -> Path:
    """A tiny one-input model shaped like the detectors' input: [N|-1, 3, hw, hw] -> Relu."""
    import onnx
    from onnx import TensorProto, helper

    first = batch if batch is not None else "-1"  # the export's symbolic batch name
    inp = helper.make_tensor_value_info(name, TensorProto.FLOAT, [first, 3, hw, hw])
    out = helper.make_tensor_value_info("ploc", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Relu", [name], ["ploc"])]
    outputs = [out]
    if nonzero:  # data-dependent output shape: ATC packs host op libraries -> _<os>_<arch>.om
        nodes.append(helper.make_node("NonZero", [name], ["nz"]))
        outputs.append(helper.make_tensor_value_info("nz", TensorProto.INT64, None))
    graph = helper.make_graph(nodes, "tiny", [inp], outputs)
    opsets = [helper.make_opsetid("", opset)]
    if extra_domain:
        opsets.append(helper.make_opsetid("com.example", 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="ssdconvert-tests")
    model.ir_version = 8 if opset <= 18 else 10
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def fake_bin(tmp_path, launcher) -> Path:
    """A directory holding an `atc` launcher for the fake."""
    bin_dir = tmp_path / "fakebin"
    launcher(bin_dir, "atc", "atc.py")
    return bin_dir


@pytest.fixture
def fake_on_path(fake_bin, monkeypatch) -> Path:
    """The fake atc first on PATH, ssdconvert's MagicMind build script on the fake magicmind package (this Python,
    tests/fakes on PYTHONPATH); vendor env vars cleared so only PATH can find a tool."""
    import sys

    fakes = str(Path(__file__).resolve().parents[1] / "fakes")
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (fakes, os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("SSDCONVERT_MAGICMIND_PYTHON", sys.executable)
    for var in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH", "NEUWARE_HOME", "FAKE_ATC_MODE", "FAKE_MM_MODE"):
        monkeypatch.delenv(var, raising=False)
    return fake_bin


@pytest.fixture
def argv_log(tmp_path, monkeypatch) -> Path:
    """File where the fake atc appends the argv it received (one JSON list per call)."""
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("FAKE_ATC_ARGV_LOG", str(log))
    return log


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    return make_onnx(tmp_path / "models" / "ssd_resnet34.onnx")


@pytest.fixture
def onnx_factory(tmp_path):
    """make(name, **kw) -> a tiny ONNX under tmp_path (see make_onnx)."""

    def make(filename: str = "ssd_resnet34.onnx", **kw) -> Path:
        return make_onnx(tmp_path / "models" / filename, **kw)

    return make


@pytest.fixture
def read_calls():
    return calls
