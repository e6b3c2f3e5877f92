"""manifest.json version 3 is written (4 for the exact mode, tests/families/faster_rcnn/test_exact.py); version 1
files (before the decoder fields) are still read."""

from __future__ import annotations

import json

import pytest

from preprocess.errors import PreprocessError
from preprocess.manifest import read_manifest

V1 = {"schema": "ssdconvert.manifest", "version": 1, "model": "ssd-resnet34",
      "input": {"name": "image", "shape": [3, 300, 300], "dtype": "float32", "layout": "CHW", "channel_order": "RGB",
                "resize": "pil_bilinear", "keep_aspect": False, "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225], "normalized": True},
      "annotation_path": "a.json", "annotation_sha256": "", "data_root": "/data",
      "images": [{"id": 1, "file_name": "x.jpg", "stem": "x", "width": 640, "height": 480}],
      "failures": [], "skipped_without_annotations": 0, "pillow_version": "12.3.0"}


def test_version_1_reads_with_pil_defaults(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(V1))
    man = read_manifest(tmp_path)
    assert man.input.decoder == "pil" and man.input.pixel_order == "" and man.opencv_version == ""
    (image,) = man.images
    assert (image.width, image.height, image.decoded_width, image.decoded_height) == (640, 480, None, None)
    assert image.resized_width is None and image.pad_bottom is None and man.side_inputs == []  # version 3 fields


def test_unknown_versions_are_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({**V1, "version": 5}))
    with pytest.raises(PreprocessError, match="manifest version 5; this ssdconvert reads versions 1, 2, 3, 4"):
        read_manifest(tmp_path)
