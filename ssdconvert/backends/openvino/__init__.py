"""OpenVINO on the CPU: `ovc` converts the ONNX to IR (.xml + .bin); the runner reads IR or .onnx."""

from ssdconvert.backends.base import Backend

BACKEND = Backend("openvino", "OpenVINO", __name__, suffixes=(".xml",), built_by=("ovc",), also_reads=(".onnx",),
                  device_help="--device names one OpenVINO device (CPU, GPU); a number means CPU.",
                  dynamic_image_size=True,  # compiles dynamic height and width (an exact-mode model)
                  precisions=("fp32", "fp16", "bf16", "int8"))  # the CPU plugin's inference precision; int8 via NNCF
