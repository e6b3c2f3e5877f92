"""The synthetic COCO dataset is deterministic and COCO-shaped."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from ssdconvert.errors import SsdConvertError
from ssdconvert.synth import COCO_CATEGORIES, generate


def test_same_seed_same_bytes(tmp_path):
    a = generate(tmp_path / "a", images=12, seed=5)
    b = generate(tmp_path / "b", images=12, seed=5)
    assert a.annotation_file.read_bytes() == b.annotation_file.read_bytes()
    for image in a.image_dir.iterdir():
        assert image.read_bytes() == (b.image_dir / image.name).read_bytes()
    c = generate(tmp_path / "c", images=12, seed=6)
    assert c.annotation_file.read_bytes() != a.annotation_file.read_bytes()


def test_dataset_looks_like_coco(tmp_path):
    ds = generate(tmp_path / "coco", images=21)
    doc = json.loads(ds.annotation_file.read_text())
    ids = [c["id"] for c in doc["categories"]]
    assert len(ids) == 80 and ids[0] == 1 and ids[-1] == 90 and 12 not in ids
    assert len(doc["images"]) == 21 and ds.images == 21
    annotated = {a["image_id"] for a in doc["annotations"]}
    assert 0 < len(annotated) < 21  # some images have no annotation
    assert any(a["iscrowd"] for a in doc["annotations"])
    modes = set()
    for record in doc["images"]:
        with Image.open(ds.image_dir / record["file_name"]) as im:
            assert im.size == (record["width"], record["height"]) and im.format == "JPEG"
            modes.add(im.mode)
    assert modes == {"RGB", "L"}
    for ann in doc["annotations"]:
        img = next(r for r in doc["images"] if r["id"] == ann["image_id"])
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"]


def test_refuses_to_overwrite_without_flag(tmp_path):
    generate(tmp_path / "d", images=2)
    with pytest.raises(SsdConvertError, match="--overwrite"):
        generate(tmp_path / "d", images=2)
    assert generate(tmp_path / "d", images=3, overwrite=True).images == 3


def test_category_table_matches_reference_inv_map():
    expected = list(range(1, 12)) + list(range(13, 26)) + [27, 28] + list(range(31, 45)) + \
        list(range(46, 66)) + [67, 70] + list(range(72, 83)) + list(range(84, 91))
    assert [c[0] for c in COCO_CATEGORIES] == expected


def test_folders_get_the_umask_mode_not_700(tmp_path):
    """The dataset was built in a mkdtemp folder (mode 700) renamed into place, so others could not read it
    (issue 24 §3.10); now every folder has the mode mkdir gives."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        ds = generate(tmp_path / "coco", images=2)
    finally:
        os.umask(old)
    for folder in (ds.root, ds.image_dir, ds.annotation_file.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
