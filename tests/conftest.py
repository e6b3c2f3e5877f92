"""Fixtures shared by every test package."""

from __future__ import annotations

import contextlib
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

    import contextlib

    out = tmp_path_factory.mktemp("export") / "ssd_resnet34.onnx"
    with contextlib.chdir(out.parent):  # export remembers its output in ./.ssdconvert/
        result = CliRunner().invoke(cli, ["export", "--bs", str(EXPORT_BS), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def seeded_model():
    """seeded_model(name) -> the seeded-random model (seed 0, eval mode) of a zoo spec, built once."""
    from ssdconvert.checkpoints import build_model
    from ssdconvert.zoo import get_spec

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = build_model(get_spec(name))[0]
        return cache[name]

    return get


@pytest.fixture(scope="session")
def onnx_export(request, tmp_path_factory, seeded_model):
    """onnx_export(name) -> a dynamic-batch FP32 export (seed 0, validated at bs 1 and 2), made once.

    ssd-resnet34 reuses the CLI export of `exported_onnx`, faster-rcnn-r101-fpn is `frcnn_export`.
    """
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.export import export_model
    from ssdconvert.zoo import get_spec

    cache: dict = {}

    def get(name: str) -> Path:
        if name == "ssd-resnet34":
            return request.getfixturevalue("exported_onnx")
        if name == "faster-rcnn-r101-fpn":
            return request.getfixturevalue("frcnn_export").onnx_path
        if name not in cache:
            out = tmp_path_factory.mktemp("export") / f"{name.replace('-', '_')}.onnx"
            export_model(seeded_model(name), get_spec(name), out, weights=WeightsSource(random_seed=0), batch=EXPORT_BS)
            cache[name] = out
        return cache[name]

    return get


FRCNN_CANVAS = (128, 160)  # ~20 GMAC per image (the box head's 1000 RoIs dominate) instead of ~480 at 1344x1344


@pytest.fixture(scope="session")
def frcnn_spec():
    """faster-rcnn-r101-fpn for a 128x160 canvas."""
    from ssdconvert.zoo import get_spec

    return get_spec("faster-rcnn-r101-fpn").with_canvas(FRCNN_CANVAS)


@pytest.fixture(scope="session")
def frcnn_model(seeded_model):
    """The zoo's demo model (seed 0: randomize + ssdconvert.zoo.faster_rcnn.demo's calibration), eval mode."""
    return seeded_model("faster-rcnn-r101-fpn")


@pytest.fixture(scope="session")
def frcnn_export(tmp_path_factory, frcnn_model, frcnn_spec):
    """The fixed-size detector for the small canvas through the family's exporter, validated on detections at
    batch 1 and 3. Not simplified: onnxslim costs ~20 s on it (the heavy tests export simplified)."""
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.export import export_model

    out = tmp_path_factory.mktemp("frcnn") / "faster_rcnn.onnx"
    return export_model(frcnn_model, frcnn_spec, out, weights=WeightsSource(random_seed=0, demo=True), batch=3,
                        simplify_model=False)


FAKES = Path(__file__).resolve().parent / "fakes"


def write_fake_launcher(bin_dir: Path, name: str, script: str) -> Path:
    """`bin_dir/name`: a shell wrapper that execs a fake vendor tool with this venv's Python."""
    import stat
    import sys

    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / name
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / script}" "$@"\n')
    launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return launcher


@pytest.fixture(scope="session")
def launcher():
    """launcher(bin_dir, name, script) -> an executable wrapper around a fake in tests/fakes/."""
    return write_fake_launcher


@pytest.fixture(scope="session")
def fake_vendor_env(tmp_path_factory) -> dict[str, str]:
    """Environment in which the fake `atc`, `mm_run`, `python -m ais_bench` and `magicmind` (for ssdconvert's
    MagicMind build script) are the installed tools (the in-process MagicMind runtime also needs tests/fakes on
    sys.path: see `fakes_importable`)."""
    import os
    import sys

    bin_dir = tmp_path_factory.mktemp("fakebin")
    write_fake_launcher(bin_dir, "atc", "atc.py")
    write_fake_launcher(bin_dir, "mm_run", "mm_run.py")
    python_path = os.pathsep.join(p for p in (str(FAKES), os.environ.get("PYTHONPATH")) if p)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": python_path,
            "SSDCONVERT_AIS_BENCH_PYTHON": sys.executable, "SSDCONVERT_MAGICMIND_PYTHON": sys.executable,
            "FAKE_MM_RUN_DURATION_MS": "20"}


@contextlib.contextmanager
def fakes_importable():
    """tests/fakes (the fake ais_bench and magicmind packages) importable in this process, then forgotten."""
    import sys

    sys.path.insert(0, str(FAKES))
    try:
        yield
    finally:
        sys.path.remove(str(FAKES))
        for name in [m for m in sys.modules if m.split(".")[0] in ("ais_bench", "magicmind")]:
            del sys.modules[name]


@pytest.fixture(scope="session")
def with_fakes():
    """A context manager: the fake vendor packages importable in this process while it is open."""
    return fakes_importable


@pytest.fixture(scope="session")
def r34_bins(tmp_path_factory) -> Path:
    """A few preprocessed synthetic images for ssd-resnet34: manifest.json + <stem>.bin (the annotated ones)."""
    from preprocess.run import preprocess_dataset
    from ssdconvert.synth import generate
    from ssdconvert.zoo import get_spec

    root = tmp_path_factory.mktemp("r34_bins")
    ds = generate(root / "coco", images=10, seed=3)
    spec = get_spec("ssd-resnet34")
    out = root / "bins"
    preprocess_dataset(ds.annotation_file, ds.image_dir, out, spec.transform, model=spec.name,
                       input_name=spec.input.name, workers=1, progress=False)
    return out


CPU_KINDS = ("this-cpu", "avx2-only")


@pytest.fixture(params=CPU_KINDS)
def cpu_kind(request, monkeypatch) -> str:
    """Each test taking it runs twice: on this CPU as it is, and with every probe (ssdconvert.cpu's flags and
    OpenVINO's capabilities) made to report an AVX2-only CPU (no AVX-512, VNNI, BF16 or FP16), so the branch
    of the CPU this machine is not is covered too. A test compares what the probes say with what happened."""
    from ssdconvert.cpu import AVX2_ONLY, SIMULATE_ENV

    if request.param == "avx2-only":
        monkeypatch.setenv(SIMULATE_ENV, AVX2_ONLY)
    else:
        monkeypatch.delenv(SIMULATE_ENV, raising=False)
    return request.param


@pytest.fixture
def avx2_only(monkeypatch) -> None:
    """Every CPU probe reports an AVX2-only CPU (see `cpu_kind`)."""
    from ssdconvert.cpu import AVX2_ONLY, SIMULATE_ENV

    monkeypatch.setenv(SIMULATE_ENV, AVX2_ONLY)

