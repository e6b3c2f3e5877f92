"""Fixtures for the preprocess stage: a small synthetic COCO set and a CLI runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

SYNTH_IMAGES = 22  # 11 sizes x 2 (incl. 211x157, 97x130), 3 grayscale, 2 without annotations


@pytest.fixture(scope="session")
def synth_coco(tmp_path_factory):
    from ssdconvert.synth import generate

    return generate(tmp_path_factory.mktemp("synth") / "coco", images=SYNTH_IMAGES, seed=5)


@pytest.fixture
def coco(synth_coco, tmp_path) -> SimpleNamespace:
    """A private, mutable copy of the synthetic dataset (root, ann, images, doc)."""
    root = tmp_path / "coco"
    shutil.copytree(synth_coco.root, root)
    ann = root / "annotations" / "instances_val2017.json"
    return SimpleNamespace(root=root, ann=ann, images=root / "val2017", doc=json.loads(ann.read_text()))


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run `ssdconvert ARGS...` in tmp_path (so .ssdconvert/state.json lands there)."""
    from ssdconvert.cli import cli as group

    monkeypatch.chdir(tmp_path)

    def invoke(*args):
        return CliRunner().invoke(group, [str(a) for a in args])

    return invoke


def preprocess_args(coco, out, *extra):
    return ["preprocess", "--val_annotation", coco.ann, "--data_root", coco.images, "--save_path", out,
            "--no-progress", *extra]


def annotated(doc) -> list[dict]:
    """The images the reference keeps (at least one annotation), in json order."""
    ids = {a["image_id"] for a in doc["annotations"]}
    return [im for im in doc["images"] if im["id"] in ids]


def assert_matches_reference(save: Path, image_dir: Path, records, dtype: str = "float32") -> None:
    """Every <stem>.bin equals the literal reference transform bit for bit."""
    from preprocess.reference import reference_tensor

    for r in records:
        file_name = r["file_name"] if isinstance(r, dict) else r.file_name
        stem = file_name.split(".", 1)[0]
        expected = reference_tensor(image_dir / file_name, dtype=dtype)
        got = np.fromfile(save / f"{stem}.bin", dtype=dtype)
        assert got.size == expected.size, file_name
        assert np.array_equal(got, expected.ravel()), file_name


def tree_bytes(directory: Path) -> dict[str, bytes]:
    """Visible files of a directory and their content (hidden lock/marker files excluded)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if not p.name.startswith(".")}


@pytest.fixture(scope="session")
def h() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(preprocess_args=preprocess_args, annotated=annotated,
                           assert_matches_reference=assert_matches_reference, tree_bytes=tree_bytes)
