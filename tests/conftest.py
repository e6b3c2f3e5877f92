"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

EXPORT_BS = 2


@pytest.fixture(scope="session")
def spec():
    from ssdconvert.zoo import get_spec

    return get_spec("ssd-resnet34")


@pytest.fixture(scope="session")
def torch_model(spec):
    """The seeded-random SSD-ResNet34 (seed 0), eval mode."""
    from ssdconvert.checkpoints import build_model

    model, _ = build_model(spec)
    return model


@pytest.fixture(scope="session")
def export_bs() -> int:
    return EXPORT_BS


@pytest.fixture(scope="session")
def exported_onnx(tmp_path_factory) -> Path:
    """One real dynamic-batch export through the CLI (seed 0), shared by the session."""
    from click.testing import CliRunner

    from ssdconvert.cli import cli

    out = tmp_path_factory.mktemp("export") / "ssd_resnet34.onnx"
    result = CliRunner().invoke(cli, ["export", "--bs", str(EXPORT_BS), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out
