"""Fixtures for ssd-resnet50: the seeded model and FP32 export of the contract suite, and one FP16 export."""

from __future__ import annotations

from pathlib import Path

import pytest

R50_EXPORT_BS = 2


@pytest.fixture(scope="session")
def r50_export_bs() -> int:
    return R50_EXPORT_BS


@pytest.fixture(scope="session")
def r50_spec():
    from ssdconvert.zoo import get_spec

    return get_spec("ssd-resnet50")


@pytest.fixture(scope="session")
def r50_model(seeded_model):
    """The seeded-random SSD-ResNet50 (seed 0), eval mode: the same weights the CLI exports."""
    return seeded_model("ssd-resnet50")


def _cli_export(tmp_path_factory, name: str, *extra: str) -> tuple[Path, str]:
    from click.testing import CliRunner

    from ssdconvert.cli import cli

    out = tmp_path_factory.mktemp("r50_export") / name
    result = CliRunner().invoke(cli, ["export", "--model", "ssd-resnet50", "--bs", str(R50_EXPORT_BS),
                                      "--output", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="session")
def r50_onnx(onnx_export) -> Path:
    """Dynamic-batch FP32 export (seed 0), the one the contract suite checks."""
    return onnx_export("ssd-resnet50")


@pytest.fixture(scope="session")
def r50_onnx_fp16(tmp_path_factory) -> tuple[Path, str]:
    """Dynamic-batch FP16 export through the CLI (seed 0), with the command's printed output."""
    return _cli_export(tmp_path_factory, "ssd_resnet50_fp16.onnx", "--half")
