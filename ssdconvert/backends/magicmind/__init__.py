"""Cambricon MLUs: the MagicMind build tool compiles the ONNX; the MagicMind runtime runs it.

A MagicMind model file has no extension (it is written exactly at --magicmind_model), so `auto`
recognises it by the build record `<model>.json` that `ssdconvert cnnl` writes beside it.
"""

from ssdconvert.backends.base import Backend

BACKEND = Backend("magicmind", "MagicMind (Cambricon MLU)", __name__, built_by=("magicmind",),
                  device_help="--device is the MLU id.",
                  builds_per_batch=True)  # bench: one static model per batch size (or one shape-mutable model)
