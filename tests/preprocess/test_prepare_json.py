"""`ssdconvert prepare-json`: the reference prepare-json.py semantics on a crafted file."""

from __future__ import annotations

import json

import pytest

INSTANCES = {
    "info": {"description": "crafted", "year": 2017},
    "licenses": [{"id": 1, "name": "x", "url": ""}],
    "images": [
        {"license": 1, "file_name": "000000000139.jpg", "coco_url": "u", "height": 426, "width": 640,
         "date_captured": "d", "flickr_url": "f", "id": 139},
        {"id": 285, "file_name": "000000000285.jpg", "height": 640, "width": 586, "license": 4},
    ],
    "annotations": [
        {"segmentation": [[1.0, 2.0, 3.0, 4.0]], "area": 531.8, "iscrowd": 0, "image_id": 139,
         "bbox": [412.8, 157.61, 53.05, 138.01], "category_id": 1, "id": 230831},
        {"segmentation": {"counts": [1, 2], "size": [640, 586]}, "area": 9000.0, "iscrowd": 1, "image_id": 285,
         "bbox": [0.0, 0.5, 100.25, 90.0], "category_id": 23, "id": 900100, "extra": "kept?"},
        {"image_id": 285, "bbox": [1, 2, 3, 4], "category_id": 90, "id": 7, "iscrowd": 0},  # no area/segmentation
    ],
    "categories": [{"supercategory": "person", "id": 1, "name": "person"},
                   {"supercategory": "animal", "id": 23, "name": "bear"},
                   {"supercategory": "indoor", "id": 90, "name": "toothbrush"}],
}


@pytest.fixture
def instances(tmp_path):
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(INSTANCES))
    return path


def test_keep_keys_lies_about_area_and_empties_segmentation(cli, instances, tmp_path):
    out = tmp_path / "bbox_only.json"
    result = cli("prepare-json", "--keep-keys", instances, out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    doc = json.loads(text)
    assert list(doc) == ["images", "annotations", "categories"]
    assert doc["images"] == [{"file_name": "000000000139.jpg", "height": 426, "width": 640, "id": 139},
                             {"id": 285, "file_name": "000000000285.jpg", "height": 640, "width": 586}]
    assert [list(im) for im in doc["images"]] == [["file_name", "height", "width", "id"],
                                                  ["id", "file_name", "height", "width"]]  # order kept
    first, crowd, bare = doc["annotations"]
    assert list(first) == list(INSTANCES["annotations"][0])  # keys keep their place
    assert first == {**INSTANCES["annotations"][0], "segmentation": [], "area": 1.0}
    assert crowd["iscrowd"] == 1 and crowd["extra"] == "kept?" and crowd["segmentation"] == [] and crowd["area"] == 1.0
    assert list(bare)[-2:] == ["segmentation", "area"]  # missing keys are added
    assert doc["categories"] == INSTANCES["categories"]
    assert text == json.dumps(doc, separators=(",", ":"))  # compact like the reference
    assert "images       2" in result.stdout and "dropped coco_url (1), date_captured (1)" in result.stdout
    assert "dropped top-level keys: info, licenses" in result.stdout
    assert "small, medium and large" in result.stderr and "meaningless" in result.stderr


def test_without_keep_keys_only_four_annotation_keys_survive(cli, instances, tmp_path):
    out = tmp_path / "bbox_only.json"
    result = cli("prepare-json", instances, out, "--pretty-print")
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [list(a) for a in doc["annotations"]] == [["image_id", "bbox", "category_id", "id"],
                                                    ["image_id", "bbox", "category_id", "id"],
                                                    ["image_id", "bbox", "category_id", "id"]]
    assert doc["annotations"][0]["bbox"] == [412.8, 157.61, 53.05, 138.01]
    assert "\n    " in out.read_text()
    assert "dropped area (2), extra (1), iscrowd (3), segmentation (2)" in result.stdout
    assert "iscrowd" in result.stderr and "cannot evaluate" in result.stderr


def test_output_is_valid_input_for_preprocess(instances, tmp_path):
    from preprocess.annotations import load_annotations
    from preprocess.prepare_json import prepare_json

    prepare_json(instances, tmp_path / "b.json", keep_keys=True)
    ann = load_annotations(tmp_path / "b.json")
    assert [im.id for im in ann.images] == [139, 285] and ann.annotated == {139, 285}


@pytest.mark.parametrize("change, message", [
    ({"categories": None}, "'categories' must be an array (got null)"),
    ({"annotations": [[]]}, "annotations[0] must be an object (got an array)"),
    ({"images": [{"id": 1}]}, "images[0].file_name must be a non-empty string"),
])
def test_malformed_input_is_a_one_line_error(cli, tmp_path, change, message):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**INSTANCES, **change}))
    result = cli("prepare-json", bad, tmp_path / "out.json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert message in result.output and not (tmp_path / "out.json").exists()


def test_refuses_to_overwrite_its_input(cli, instances):
    result = cli("prepare-json", "-k", instances, instances)
    assert result.exit_code == 1 and "is the input file" in result.output
    assert json.loads(instances.read_text()) == INSTANCES
