"""Huawei Ascend NPUs: ATC compiles the ONNX to an offline model (.om); ais_bench runs it.

One name for the whole backend: `ascend` (the device family). `atc` is only its compiler and
`ais_bench` only its runtime; both are still accepted as backend names, with a deprecation note.
"""

from ssdconvert.backends.base import Backend

BACKEND = Backend(
    "ascend", "Ascend (ATC + ais_bench)", __name__, suffixes=(".om",), built_by=("atc",),
    aliases=("atc", "ais_bench"),
    device_list=True,  # ais_bench --device 0,1,...: one process per NPU, the inputs split between them
    device_help="--device is the NPU id, or a list (0,1,2,3) to split the inputs across NPUs.",
    builds_per_batch=True,  # bench: ATC builds one static .om per batch size, like the published tables
    precisions=("fp16", "fp32", "bf16"),  # ATC --precision_mode force_fp16 (its default), force_fp32, bf16 mix
    default_precision="fp16",
    int8_note=("Ascend INT8 is calibrated with AMCT on the CANN host (`amct_onnx calibration --model m.onnx "
               "--save_path out/m --input_shape image:1,3,300,300 --data_dir ssd_bin --data_types float32`), and the "
               "resulting out/m_deploy_model.onnx is compiled by `ssdconvert atc` (README: Lower precision)"),
)
