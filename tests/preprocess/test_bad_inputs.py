"""Bad input never kills the run silently: each gets its message, good images are all written."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from preprocess.manifest import read_manifest


def _break_dataset(coco, tmp_path):
    """Damage a copy of the synthetic set in every way the issue lists; return (expected failures, good)."""
    doc = coco.doc
    kept = [im for im in doc["images"] if im["id"] in {a["image_id"] for a in doc["annotations"]}]
    pick = iter(kept)
    missing, empty, truncated, png, cmyk = (next(pick) for _ in range(5))
    (coco.images / missing["file_name"]).unlink()
    (coco.images / empty["file_name"]).write_bytes(b"")
    data = (coco.images / truncated["file_name"]).read_bytes()
    (coco.images / truncated["file_name"]).write_bytes(data[: len(data) // 3])
    # good ones in disguise: a PNG named .jpg and a CMYK JPEG
    Image.open(coco.images / png["file_name"]).save(coco.images / png["file_name"], format="PNG")
    Image.open(coco.images / cmyk["file_name"]).convert("CMYK").save(coco.images / cmyk["file_name"], quality=90)

    (tmp_path / "outside.jpg").write_bytes((coco.images / kept[-1]["file_name"]).read_bytes())
    os.symlink(tmp_path / "outside.jpg", coco.images / "escape.jpg")
    next_id = max(im["id"] for im in doc["images"]) + 1
    extra = [("/etc/hostname", "file_name is an absolute path"),
             ("../outside.jpg", "file_name contains '..'"),
             ("escape.jpg", "resolves outside --data_root"),
             (kept[-1]["file_name"][:-4] + ".png", "duplicate stem")]
    for k, (file_name, _) in enumerate(extra):
        doc["images"].append({"id": next_id + k, "file_name": file_name, "width": 640, "height": 480})
        doc["annotations"].append({"id": 10**6 + k, "image_id": next_id + k, "bbox": [1, 1, 5, 5],
                                   "category_id": 1, "iscrowd": 0, "area": 25})
    coco.ann.write_text(json.dumps(doc))
    expected = {missing["file_name"]: "image file not found", empty["file_name"]: "empty file (0 bytes)",
                truncated["file_name"]: "image file is truncated", **{f: reason for f, reason in extra}}
    good = [im for im in kept if im["file_name"] not in expected]
    return expected, good


def test_bad_images_are_reported_and_good_ones_all_written(cli, coco, tmp_path, h):
    expected, good = _break_dataset(coco, tmp_path)
    out = tmp_path / "out"
    result = cli(*h.preprocess_args(coco, out, "--workers", 2))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"{len(expected)} image(s) failed; the other {len(good)} are written" in result.output
    for file_name, reason in expected.items():
        assert any(line.startswith(f"failed: {file_name} (id ") and reason in line
                   for line in result.stderr.splitlines()), (file_name, result.stderr)

    h.assert_matches_reference(out, coco.images, good)  # incl. the PNG-as-.jpg, CMYK and grayscale ones
    assert len(list(out.glob("*.bin"))) == len(good)
    m = read_manifest(out)
    assert [r.file_name for r in m.images] == [im["file_name"] for im in good]
    assert {f["file_name"]: f["reason"] for f in m.failures}.keys() == expected.keys()
    assert all(reason in {f["file_name"]: f["reason"] for f in m.failures}[name] for name, reason in expected.items())
    assert not (tmp_path / "outside.bin").exists() and not (out / "outside.bin").exists()

    # --skip-bad: same report, exit 0; complete files are kept
    result = cli(*h.preprocess_args(coco, out, "--skip-bad"))
    assert result.exit_code == 0, result.output
    assert f"already complete  {len(good)}" in result.stdout and "failed            7" in result.stdout


def test_grayscale_images_become_three_equal_channels(cli, coco, tmp_path, h):
    gray = [im for im in h.annotated(coco.doc) if Image.open(coco.images / im["file_name"]).mode == "L"]
    assert gray, "the synthetic set has grayscale images"
    out = tmp_path / "out"
    assert cli(*h.preprocess_args(coco, out, "--dtype", "uint8")).exit_code == 0
    pixels = np.fromfile(out / f"{gray[0]['file_name'][:-4]}.bin", np.uint8).reshape(300, 300, 3)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_malformed_annotation_file_stops_before_any_work(cli, coco, tmp_path, h):
    doc = coco.doc
    doc["images"][3]["height"] = "480"
    coco.ann.write_text(json.dumps(doc))
    out = tmp_path / "out"
    result = cli(*h.preprocess_args(coco, out))
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"{coco.ann}: images[3].height must be an integer" in errors[0]
    assert not out.exists()


def test_wrong_data_root_says_so(cli, coco, tmp_path):
    result = cli("preprocess", "--val_annotation", coco.ann, "--data_root", coco.root, "--save_path",
                 tmp_path / "out", "--no-progress")
    assert result.exit_code == 1
    assert "none of the" in result.output and "images was found under --data_root" in result.output
