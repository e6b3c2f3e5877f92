"""ONNX Runtime on the CPU: runs the exported .onnx as it is (no compile step); the accuracy reference."""

from ssdconvert.backends.base import Backend

BACKEND = Backend("onnxruntime", "ONNX Runtime", __name__, suffixes=(".onnx",),
                  device_help="It runs on this machine's CPU.",
                  shared_runner=True,  # a dynamic-batch session takes any batch as is
                  dynamic_image_size=True,  # and any image size of an exact-mode model
                  precisions=("fp32", "int8"))  # int8: a QDQ model from quantize.py; no BF16/FP16 CPU kernels
