"""Fixtures of the ssd-mobilenet-v2-fpnlite tests: the real model and the real images vendored in
ssdconvert/realdata, each made once per session.

    st_export    the vendored QDQ release exported (dequantized, dynamic batch, validated at bs 1 and 2)
    val_bins     the 43 COCO val2014 images preprocessed (uint8 NHWC, ST's resize), with their annotations
    calib_bins   the 85 calibration images preprocessed as an image folder (no annotations)
    val_results  ONNX Runtime's outputs for val_bins in the ais_bench layout (`ssdconvert infer`)
    cli          run `ssdconvert ARGS...` in a private folder, with the fake vendor tools on PATH
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ssdconvert import realdata

MODEL = "ssd-mobilenet-v2-fpnlite"


@pytest.fixture(scope="session")
def spec():
    from ssdconvert.zoo import get_spec

    return get_spec(MODEL)


@pytest.fixture(scope="session")
def st_export(tmp_path_factory, spec) -> Path:
    from ssdconvert.checkpoints import build_model
    from ssdconvert.export import export_model

    source, weights = build_model(spec)  # the vendored release
    out = tmp_path_factory.mktemp("st_export") / "st.onnx"
    export_model(source, spec, out, weights=weights, batch=2)
    return out


@pytest.fixture(scope="session")
def val_bins(tmp_path_factory, spec) -> Path:
    from preprocess.run import preprocess_dataset

    out = tmp_path_factory.mktemp("st_val") / "bins"
    preprocess_dataset(realdata.VAL_ANNOTATION, realdata.VAL_IMAGES, out, spec.transform, model=spec.name,
                       input_name=spec.input.name, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def calib_bins(tmp_path_factory, spec) -> Path:
    from preprocess.run import preprocess_dataset

    out = tmp_path_factory.mktemp("st_calib") / "bins"
    preprocess_dataset(None, realdata.CALIBRATION_IMAGES, out, spec.transform, model=spec.name,
                       input_name=spec.input.name, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def val_results(tmp_path_factory, st_export, val_bins) -> Path:
    from ssdconvert.infer import run_infer

    out = tmp_path_factory.mktemp("st_results") / "result"
    run_infer(st_export, val_bins, out, batchsize=8, progress=False)
    return out


@pytest.fixture
def cli(tmp_path, fake_vendor_env, with_fakes, monkeypatch):
    """cli(*args) -> the click Result of `ssdconvert ARGS...`, run in tmp_path with the fake atc, mm_build and
    ais_bench in reach (tests/conftest.py) and the fake MagicMind runtime importable."""
    from ssdconvert.cli import cli as group

    for key, value in fake_vendor_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # commands remember their last outputs in ./.ssdconvert/

    def invoke(*args):
        with with_fakes():
            return CliRunner().invoke(group, [str(a) for a in args])

    return invoke
