"""The vendored real data (ssdconvert/realdata) is what its provenance notes say, and ships in the package.

The upstream git blob ids below were read in STMicroelectronics/meta-st-x-linux-ai at commit
6813080f1bb326793950c5a3ae02a3fd59a94f28 (`git ls-tree`, recipes-samples/object-detection/models/files/):
a file that differs from the vendor's by one byte fails here, whatever provenance.json says.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ssdconvert import realdata

REPO = Path(__file__).resolve().parents[2]
ST_UPSTREAM_BLOBS = {
    "ssd_mobilenet_v2_fpnlite_10_256_int8.onnx": "334e62fe002d27ec4fde45f5763e1b0738c036b0",
    "labels_coco_dataset_80.txt": "e290149963116c873fe6c54d28337a78bc500d8a",
    "LICENSE": "00baf9a1f3b0ef3d276797d22cd92dd1b1d78462",
}
NOT_DATA = {"__init__.py", "provenance.json"}


def data_files() -> set[str]:
    """Every vendored data file (relative path), i.e. everything but code, notes and the manifest."""
    return {p.relative_to(realdata.ROOT).as_posix() for p in realdata.ROOT.rglob("*")
            if p.is_file() and p.name not in NOT_DATA and p.suffix not in (".md", ".pyc")}


def git_blob_id(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(scope="module")
def annotation() -> dict:
    return json.loads(realdata.VAL_ANNOTATION.read_text())


def test_the_st_files_are_byte_identical_to_the_vendor_commit():
    folder = realdata.ST_SSD_INT8.parent
    assert {p.name for p in folder.iterdir()} == {*ST_UPSTREAM_BLOBS, "PROVENANCE.md"}
    for name, blob in ST_UPSTREAM_BLOBS.items():
        assert git_blob_id(folder / name) == blob, name
    assert "6813080f1bb326793950c5a3ae02a3fd59a94f28" in (folder / "PROVENANCE.md").read_text()
    assert (folder / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]


def test_provenance_json_lists_every_file_with_its_hash():
    record = json.loads(realdata.PROVENANCE.read_text())
    assert set(record["files"]) == data_files()
    for rel, entry in record["files"].items():
        data = (realdata.ROOT / rel).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"], rel
    assert set(record["sources"]) == {"coco-val2014-43/val2014", "coco-val2014-43/annotations", "calibration-85",
                                      "ssd-mobilenet-v2-fpnlite"}
    for folder in ("coco-val2014-43", "calibration-85", "ssd-mobilenet-v2-fpnlite"):
        assert "Licence" in (realdata.ROOT / folder / "PROVENANCE.md").read_text(), folder


def test_the_annotation_file_is_cocos_original_records_of_the_43_images(annotation):
    assert set(annotation) == {"info", "licenses", "images", "annotations", "categories"}
    assert annotation["info"]["description"] == "COCO 2014 Dataset"
    assert len(annotation["images"]) == 43 and len(annotation["categories"]) == 80
    boxes = annotation["annotations"]
    assert len(boxes) == 374 and sum(a["iscrowd"] for a in boxes) == 4
    assert all(a["area"] > 1 for a in boxes)  # real areas, not the bbox-only 1.0
    ids = {im["id"] for im in annotation["images"]}
    assert min(ids) == 42 and max(ids) == 641 and {a["image_id"] for a in boxes} <= ids


def test_every_image_record_has_its_file_at_its_size(annotation):
    from PIL import Image

    names = {p.name for p in realdata.images(realdata.VAL_IMAGES)}
    assert names == {f"COCO_val2014_{im['id']:012d}.jpg" for im in annotation["images"]}
    assert names == {im["file_name"] for im in annotation["images"]}
    for im in annotation["images"]:
        with Image.open(realdata.VAL_IMAGES / im["file_name"]) as img:
            assert img.size == (im["width"], im["height"]), im["file_name"]


def test_the_calibration_images_are_85_others(annotation):
    calibration = realdata.images(realdata.CALIBRATION_IMAGES)
    assert len(calibration) == 85
    ids = {int(p.stem) for p in calibration}
    assert not ids & {im["id"] for im in annotation["images"]}


def test_label_lines_are_background_then_cocos_categories_in_id_order(annotation):
    labels = realdata.ST_LABELS.read_text().splitlines()
    names = [c["name"] for c in sorted(annotation["categories"], key=lambda c: c["id"])]
    assert labels == ["background", *names]


def test_the_st_model_has_the_documented_contract():
    import onnx

    graph = onnx.load(str(realdata.ST_SSD_INT8), load_external_data=False).graph
    describe = lambda v: (v.name, v.type.tensor_type.elem_type,  # noqa: E731
                          [d.dim_value or None for d in v.type.tensor_type.shape.dim])
    assert [describe(v) for v in graph.input] == [("serving_default_input_1:0", onnx.TensorProto.UINT8,
                                                   [None, 256, 256, 3])]
    assert [describe(v) for v in graph.output] == [
        ("StatefulPartitionedCall:2", onnx.TensorProto.FLOAT, [None, 6820, 81]),
        ("StatefulPartitionedCall:1", onnx.TensorProto.FLOAT, [None, 6820, 4]),
        ("StatefulPartitionedCall:0", onnx.TensorProto.FLOAT, [None, 6820, 4])]


def test_package_data_patterns_cover_every_data_file():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    covered = {p.relative_to(realdata.ROOT).as_posix() for pattern in patterns["ssdconvert.realdata"]
               for p in realdata.ROOT.glob(pattern) if p.is_file()}
    assert data_files() | {"README.md", "provenance.json"} <= covered


def test_a_built_wheel_carries_the_data(tmp_path):
    """A plain (non-editable) wheel of the project holds every vendored file under ssdconvert/realdata/."""
    pytest.importorskip("setuptools")  # the build backend, used without build isolation (offline)
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("ssdconvert", "preprocess", "postprocess"):
        shutil.copytree(REPO / part, source / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    wheel, = (tmp_path / "dist").glob("ssdconvert-*.whl")
    prefix = "ssdconvert/realdata/"
    shipped = {n[len(prefix):] for n in zipfile.ZipFile(wheel).namelist() if n.startswith(prefix)}
    assert data_files() | {"README.md", "provenance.json", "__init__.py"} <= shipped
