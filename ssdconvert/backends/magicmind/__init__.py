"""Cambricon MLUs: the MagicMind build tool compiles the ONNX; the MagicMind runtime runs it.

A MagicMind model file has no extension (it is written exactly at --magicmind_model), so `auto`
recognises it by the build record `<model>.json` that `ssdconvert cnnl` writes beside it.
"""

from ssdconvert.backends.base import Backend

BACKEND = Backend("magicmind", "MagicMind (Cambricon MLU)", __name__, built_by=("magicmind",),
                  device_help="--device is the MLU id.",
                  builds_per_batch=True,  # bench: one static model per batch size (or one shape-mutable model)
                  precisions=("fp32", "fp16", "int8"),  # force_float32, force_float16, qint8_mixed_float16
                  int8_note=("the MagicMind builder quantizes itself: `ssdconvert cnnl --precision qint8_mixed_float16 "
                             "--calib ssd_bin` (calibration data from the same bins)"))
