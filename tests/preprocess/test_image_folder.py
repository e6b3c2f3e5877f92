"""Calibration sets are image folders: `preprocess` without --val_annotation writes every image of the folder
(name order, ids 1..n, header sizes) and a version 5 manifest with no annotations; eval refuses it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from preprocess.manifest import read_manifest
from preprocess.reference import reference_tensor


@pytest.fixture
def folder(synth_coco, tmp_path):
    """Synthetic images under shuffled names (one upper-case suffix, one EXIF-rotated), a text file, a broken JPEG."""
    root = tmp_path / "calib"
    root.mkdir()
    sources = sorted(synth_coco.image_dir.glob("*.jpg"))
    for k, source in enumerate(sources[:6]):
        shutil.copy(source, root / f"img_{(7 * k) % 6}{'.JPG' if k == 1 else '.jpg'}")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(sources[9]).save(root / "rotated.jpg", quality=90, exif=exif)  # 211x157 stored
    (root / "README.md").write_text("not an image\n")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def test_every_image_of_the_folder_becomes_a_bin_in_name_order(cli, folder, tmp_path):
    out = tmp_path / "bins"
    result = cli("preprocess", "--data_root", folder, "--save_path", out, "--workers", 2, "--no-progress", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "annotations: none (every image of" in result.output
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".jpg")
    assert len(names) == 8 and "broken.jpg" in names
    data = json.loads((out / "manifest.json").read_text())
    assert data["version"] == 5 and data["annotation_path"] is None and data["annotation_sha256"] is None
    assert data["failures"] == [{"id": 1, "file_name": "broken.jpg", "reason": data["failures"][0]["reason"]}]
    good = [n for n in names if n != "broken.jpg"]
    assert [(r["id"], r["file_name"]) for r in data["images"]] == [(names.index(n) + 1, n) for n in good]
    for record in data["images"]:
        stored = Image.open(folder / record["file_name"]).size
        assert (record["width"], record["height"]) == stored  # the header's size, before any EXIF rotation
        got = np.fromfile(out / f"{record['stem']}.bin", np.float32)
        assert np.array_equal(got, reference_tensor(folder / record["file_name"]).ravel()), record["file_name"]
    assert sorted(p.name for p in out.glob("*.bin")) == sorted(f"{n.split('.')[0]}.bin" for n in good)
    man = read_manifest(out)
    assert not man.has_annotations and man.annotation_path is None


def test_a_folder_without_images_is_one_error_line(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    result = cli("preprocess", "--data_root", empty, "--save_path", tmp_path / "bins", "--no-progress")
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output
    assert errors[0].startswith(f"Error: --data_root {empty} holds no image files (")


def test_eval_refuses_an_image_folder_with_one_line(cli, folder, tmp_path):
    out = tmp_path / "bins"
    assert cli("preprocess", "--data_root", folder, "--save_path", out, "--no-progress", "--skip-bad").exit_code == 0
    (tmp_path / "results").mkdir()
    result = cli("eval", "--bin_path", tmp_path / "results", "--manifest", out)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output
    assert errors[0].startswith(f"Error: {out / 'manifest.json'} describes an image folder without annotations "
                                f"(7 images of {folder.resolve()}, ids given in name order: a calibration set)")


def test_the_annotated_manifest_keeps_its_version(cli, coco, tmp_path, h):
    out = tmp_path / "bins"
    assert cli(*h.preprocess_args(coco, out)).exit_code == 0
    data = json.loads((out / "manifest.json").read_text())
    assert data["version"] == 3 and read_manifest(out).has_annotations
