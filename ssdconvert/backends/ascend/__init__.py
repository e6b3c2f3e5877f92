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
)
