"""Real COCO images, their original annotations and a real COCO-trained SSD, shipped as package data.

The files sit beside this module (README.md and each folder's PROVENANCE.md give source, commit and
licence; provenance.json lists every file with its sha256), so an installed `ssdconvert` finds them
without a checkout:

    VAL_IMAGES          43 COCO val2014 images (COCO_val2014_<id>.jpg)
    VAL_ANNOTATION      their original COCO annotations (instances_val2014_43.json)
    CALIBRATION_IMAGES  85 further COCO images, no annotations, for INT8 calibration
    ST_SSD_INT8         STMicroelectronics' SSD-MobileNetV2-FPNLite 256x256, QDQ INT8 ONNX
    ST_LABELS           its 81 class names (line 0 background)
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
VAL_IMAGES = ROOT / "coco-val2014-43" / "val2014"
VAL_ANNOTATION = ROOT / "coco-val2014-43" / "annotations" / "instances_val2014_43.json"
CALIBRATION_IMAGES = ROOT / "calibration-85"
ST_SSD_INT8 = ROOT / "ssd-mobilenet-v2-fpnlite" / "ssd_mobilenet_v2_fpnlite_10_256_int8.onnx"
ST_LABELS = ROOT / "ssd-mobilenet-v2-fpnlite" / "labels_coco_dataset_80.txt"
PROVENANCE = ROOT / "provenance.json"


def images(folder: Path) -> list[Path]:
    """The .jpg files of a data folder, sorted by name."""
    return sorted(folder.glob("*.jpg"))
