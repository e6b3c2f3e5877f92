"""A small synthetic bins folder for the seeded ssd-resnet34 (shared by the precision tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

IMAGES = 8


@pytest.fixture(scope="session")
def r34_bins(tmp_path_factory) -> Path:
    """Preprocessed synthetic images for ssd-resnet34: manifest.json + <stem>.bin (the annotated ones)."""
    from preprocess.run import preprocess_dataset
    from ssdconvert.synth import generate
    from ssdconvert.zoo import get_spec

    root = tmp_path_factory.mktemp("precision")
    ds = generate(root / "coco", images=IMAGES + 2, seed=3)
    spec = get_spec("ssd-resnet34")
    out = root / "bins"
    preprocess_dataset(ds.annotation_file, ds.image_dir, out, spec.transform, model=spec.name,
                       input_name=spec.input.name, workers=1, progress=False)
    return out
