"""Annotation file validation, image selection, stems and path safety."""

from __future__ import annotations

import json
import os

import pytest

from preprocess.annotations import ImageEntry, load_annotations, plan_jobs, resolve_under, select_images, stem_of
from preprocess.errors import ImageFailure, PreprocessError

GOOD_IMAGE = {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}


def _write(tmp_path, doc) -> str:
    path = tmp_path / "ann.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


@pytest.mark.parametrize("doc, message", [
    ('{"images": [', "is not valid JSON: Expecting value at line 1 column 13"),
    ([GOOD_IMAGE], "the top level must be an object, got an array"),
    ({"annotations": []}, "'images' must be an array (missing)"),
    ({"images": {"1": GOOD_IMAGE}}, "'images' must be an array (got an object)"),
    ({"images": [GOOD_IMAGE, "b.jpg"]}, "images[1] must be an object (got a string)"),
    ({"images": [{**GOOD_IMAGE, "file_name": ""}]}, "images[0].file_name must be a non-empty string"),
    ({"images": [{"id": 1, "width": 1, "height": 1}]}, "images[0].file_name must be a non-empty string (got null)"),
    ({"images": [{**GOOD_IMAGE, "width": "640"}]}, 'images[0].width must be an integer (got a string "640")'),
    ({"images": [{**GOOD_IMAGE, "height": 0}]}, "images[0].height must be at least 1 (got 0)"),
    ({"images": [{**GOOD_IMAGE, "id": True}]}, "images[0].id must be an integer (got a boolean true)"),
    ({"images": [GOOD_IMAGE, {**GOOD_IMAGE, "file_name": "b.jpg"}]}, "images[1].id 1 duplicates images[0].id"),
    ({"images": [GOOD_IMAGE], "annotations": {}}, "'annotations' must be an array (got an object)"),
    ({"images": [GOOD_IMAGE], "annotations": [{"image_id": 1}, {"bbox": [0, 0, 1, 1]}]},
     "annotations[1].image_id must be an integer (missing)"),
])
def test_malformed_annotation_files_name_the_json_path(tmp_path, doc, message):
    path = _write(tmp_path, doc)
    with pytest.raises(PreprocessError) as info:
        load_annotations(path)
    assert message in str(info.value) and path in str(info.value)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(PreprocessError, match="does not exist"):
        load_annotations(tmp_path / "nope.json")


def test_selection_skips_images_without_annotations_in_json_order(tmp_path):
    images = [{**GOOD_IMAGE, "id": i, "file_name": f"{i}.jpg"} for i in (5, 3, 9, 7)]
    annotations = [{"image_id": 9}, {"image_id": 5, "iscrowd": 1}, {"image_id": 9}, {"image_id": 42}]
    ann = load_annotations(_write(tmp_path, {"images": images, "annotations": annotations}))
    chosen, skipped = select_images(ann, all_images=False)
    assert [im.id for im in chosen] == [5, 9] and skipped == 2  # crowd-only images count as annotated
    assert ann.dangling == 1
    chosen, skipped = select_images(ann, all_images=True)
    assert [im.id for im in chosen] == [5, 3, 9, 7] and skipped == 0


def test_file_without_annotations_array_needs_all_images(tmp_path):
    ann = load_annotations(_write(tmp_path, {"images": [GOOD_IMAGE]}))
    with pytest.raises(PreprocessError, match="--all-images"):
        select_images(ann, all_images=False)
    assert len(select_images(ann, all_images=True)[0]) == 1


@pytest.mark.parametrize("file_name, stem", [
    ("000000397133.jpg", "000000397133"), ("a.b.c.jpg", "a"), ("noext", "noext"), ("sub/x.jpg", "x"),
    ("./y.png", "y"), (".hidden.jpg", ""),
])
def test_stem_is_the_name_cut_at_the_first_dot(file_name, stem):
    assert stem_of(file_name) == stem


def test_paths_that_escape_data_root_are_refused(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "secret.jpg", root / "link.jpg")
    real = os.path.realpath(root)
    assert resolve_under(real, "sub/ok.jpg") == os.path.join(real, "sub", "ok.jpg")
    for name, reason in [("/etc/passwd", "absolute path"), ("\\\\server\\x.jpg", "absolute path"),
                         ("C:\\x.jpg", "absolute path"), ("../secret.jpg", "contains '..'"),
                         ("sub/../../secret.jpg", "contains '..'"), ("sub\\..\\x.jpg", "contains '..'"),
                         ("link.jpg", "resolves outside --data_root"), ("a\0.jpg", "NUL byte")]:
        with pytest.raises(ImageFailure, match=reason.replace(".", r"\.")):
            resolve_under(real, name)


def test_plan_reports_refused_paths_and_duplicate_stems(tmp_path):
    images = [ImageEntry(i, i, name, 10, 10) for i, name in
              enumerate(["a.jpg", "b.jpg", "a.png", "../a.jpg", ".jpg", "c.jpg"])]
    jobs, failures = plan_jobs(images, tmp_path)
    assert [j.stem for j in jobs] == ["a", "b", "c"]
    reasons = {image.file_name: reason for image, reason in failures}
    assert reasons["a.png"] == "duplicate stem: a.bin already belongs to images[0] (a.jpg)"
    assert "contains '..'" in reasons["../a.jpg"] and "empty stem" in reasons[".jpg"]
