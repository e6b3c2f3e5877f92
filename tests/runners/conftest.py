"""Fixtures for runner, infer and bench tests: a tiny SSD-shaped ONNX model and input folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

FAKES = Path(__file__).resolve().parents[1] / "fakes"
SIZE = 8  # tiny "image": 3 x 8 x 8
ANCHORS = SIZE * SIZE
CLASSES = 5
W_LOC = np.linspace(-1, 1, 4 * 3, dtype=np.float32).reshape(4, 3)
W_CLS = np.linspace(-2, 2, CLASSES * 3, dtype=np.float32).reshape(CLASSES, 3)


def make_tiny_onnx(path: Path, batch: int | None = None) -> Path:
    """input `image` (N,3,8,8) -> `ploc` (N,4,64), `plabel` (N,5,64): two 1x1 convs + reshape."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = batch if batch else "N"
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w_loc"], ["loc"]),
            helper.make_node("Conv", ["image", "w_cls"], ["cls"]),
            helper.make_node("Reshape", ["loc", "shape_loc"], ["ploc"]),
            helper.make_node("Reshape", ["cls", "shape_cls"], ["plabel"]),
        ],
        "tiny_ssd",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [n, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("ploc", TensorProto.FLOAT, [n, 4, ANCHORS]),
         helper.make_tensor_value_info("plabel", TensorProto.FLOAT, [n, CLASSES, ANCHORS])],
        initializer=[
            numpy_helper.from_array(W_LOC.reshape(4, 3, 1, 1), "w_loc"),
            numpy_helper.from_array(W_CLS.reshape(CLASSES, 3, 1, 1), "w_cls"),
            numpy_helper.from_array(np.array([0, 4, -1], dtype=np.int64), "shape_loc"),
            numpy_helper.from_array(np.array([0, CLASSES, -1], dtype=np.int64), "shape_cls"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def reference_outputs(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the tiny model computes for one (3,8,8) image."""
    flat = image.reshape(3, -1)
    return W_LOC @ flat, W_CLS @ flat


def write_inputs(folder: Path, count: int, *, dtype: str = "float32", manifest: bool = True,
                 names: list[str] | None = None, seed: int = 0) -> list[Path]:
    """`count` random (3,8,8) .bin files (+ manifest.json) named like COCO stems."""
    from preprocess.manifest import ImageRecord, InputInfo, Manifest, write_manifest
    from stageio.tensor import TensorSpec

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = names or [f"{i:012d}.bin" for i in range(1, count + 1)]
    paths = []
    for name in names:
        data = rng.standard_normal((3, SIZE, SIZE)).astype(np.float32)
        if dtype == "uint8":
            data = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        path = folder / name
        data.astype(dtype).tofile(path)
        paths.append(path)
    if manifest:
        info = InputInfo(TensorSpec("image", (3, SIZE, SIZE) if dtype != "uint8" else (SIZE, SIZE, 3), dtype),
                         layout="CHW" if dtype != "uint8" else "HWC", channel_order="RGB", resize="bilinear",
                         keep_aspect=False, scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                         normalized=dtype != "uint8")
        images = [ImageRecord(id=i, file_name=p.name.split(".")[0] + ".jpg", stem=p.name.split(".")[0], width=640,
                              height=480) for i, p in enumerate(paths, 1)]
        write_manifest(folder, Manifest(model="tiny", input=info, annotation_path="ann.json", annotation_sha256="0",
                                        data_root=".", images=images))
    return paths


@pytest.fixture(scope="session")
def tiny():
    """The helpers above (pytest runs with --import-mode=importlib, so tests cannot import conftest)."""
    return SimpleNamespace(make_onnx=make_tiny_onnx, reference_outputs=reference_outputs, write_inputs=write_inputs,
                           CLASSES=CLASSES, SIZE=SIZE, FAKES=FAKES)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny_dyn.onnx")


@pytest.fixture(scope="session")
def tiny_onnx_bs4(tmp_path_factory) -> Path:
    return make_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny_bs4.onnx", batch=4)


def _fake_packages(monkeypatch, package: str, knobs: tuple[str, ...], env: dict[str, str] | None = None):
    """Put tests/fakes on the path of this process and of subprocesses, clear the fakes' `knobs` and set `env`;
    undo afterwards."""
    monkeypatch.syspath_prepend(str(FAKES))
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(FAKES) + (os.pathsep + existing if existing else ""))
    for name in knobs:
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    yield FAKES
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]


@pytest.fixture
def fake_ais_bench(monkeypatch):
    """The fake ais_bench package (tests/fakes/ais_bench), importable here and by `python -m ais_bench`."""
    monkeypatch.setenv("SSDCONVERT_AIS_BENCH_PYTHON", sys.executable)
    yield from _fake_packages(monkeypatch, "ais_bench", ("FAKE_AIS_BENCH_FAIL", "FAKE_AIS_BENCH_OLD_KEYS",
                                                         "FAKE_AIS_BENCH_VERSION"))


@pytest.fixture
def fake_magicmind(monkeypatch, tmp_path, launcher):
    """The fake MagicMind (tests/fakes/magicmind) importable here and by ssdconvert's build script, fake mm_run on
    PATH."""
    bin_dir = tmp_path / "mm_bin"
    launcher(bin_dir, "mm_run", "mm_run.py")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_MM_RUN_DURATION_MS", "20")  # the real default is 3000 ms per run
    # the build script runs under this interpreter (it sees the fakes through PYTHONPATH), whatever an earlier
    # test left importable as `magicmind` in this process
    yield from _fake_packages(monkeypatch, "magicmind", ("FAKE_MLU_COUNT", "FAKE_MAGICMIND_DRIFT", "FAKE_MM_MODE",
                                                         "NEUWARE_HOME"),
                              env={"SSDCONVERT_MAGICMIND_PYTHON": sys.executable})
