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


def test_the_input_and_side_inputs_are_written_flat_in_the_schema_order(tmp_path):
    """The records hold a TensorSpec, but the file keeps the schema's flat objects and key order."""
    from preprocess.manifest import ImageRecord, InputInfo, Manifest, SideInput, write_manifest
    from stageio.tensor import TensorSpec

    info = InputInfo(TensorSpec("images", (3, 64, 96), "float32"), layout="CHW", channel_order="BGR",
                     resize="pil_bilinear", keep_aspect=True, scale=1.0, mean=(1.0, 2.0, 3.0), std=(1.0, 1.0, 1.0),
                     normalized=True)
    side = SideInput(TensorSpec("im_info", (2,), "float32", meaning="unpadded (h, w)"), folder="im_info", layout="ND")
    written = Manifest("m", info, "a.json", "", "/data", images=[ImageRecord(1, "x.jpg", "x", 640, 480)],
                       side_inputs=[side])
    write_manifest(tmp_path, written)
    text = (tmp_path / "manifest.json").read_text()
    data = json.loads(text)
    assert (data["schema"], data["version"]) == ("ssdconvert.manifest", 3)
    assert list(data) == ["schema", "version", "model", "input", "annotation_path", "annotation_sha256", "data_root",
                          "images", "failures", "skipped_without_annotations", "pillow_version", "opencv_version",
                          "side_inputs"]
    assert data["input"] == {"name": "images", "shape": [3, 64, 96], "dtype": "float32", "layout": "CHW",
                             "channel_order": "BGR", "resize": "pil_bilinear", "keep_aspect": True, "scale": 1.0,
                             "mean": [1.0, 2.0, 3.0], "std": [1.0, 1.0, 1.0], "normalized": True, "decoder": "pil",
                             "pixel_order": ""}
    assert list(data["input"]) == ["name", "shape", "dtype", "layout", "channel_order", "resize", "keep_aspect",
                                   "scale", "mean", "std", "normalized", "decoder", "pixel_order"]
    assert data["side_inputs"] == [{"name": "im_info", "folder": "im_info", "shape": [2], "dtype": "float32",
                                    "layout": "ND", "meaning": "unpadded (h, w)"}]
    assert list(data["side_inputs"][0]) == ["name", "folder", "shape", "dtype", "layout", "meaning"]
    assert read_manifest(tmp_path) == written


def test_a_side_input_with_an_unknown_field_is_malformed(tmp_path):
    side = {"name": "im_info", "folder": "im_info", "shape": [2], "dtype": "float32", "layout": "ND", "meaning": "",
            "extra": 1}
    (tmp_path / "manifest.json").write_text(json.dumps({**V1, "version": 3, "side_inputs": [side]}))
    with pytest.raises(PreprocessError, match="malformed: unexpected side input field"):
        read_manifest(tmp_path)
