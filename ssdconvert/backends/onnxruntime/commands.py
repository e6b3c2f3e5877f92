"""ONNX Runtime's command line: the options it adds to `quantize` (it has no compiler command)."""

from __future__ import annotations

import click

from ssdconvert.backends.onnxruntime.quantize import TYPES


def generic_options(command: str) -> list[click.Option]:
    """What `quantize` takes for ONNX Runtime: ort_types, and per_tensor (OnnxRuntimeOptions.per_channel, inverted)."""
    if command != "quantize":
        return []
    return [click.Option(["--ort-types", "ort_types"], type=click.Choice(TYPES), default="auto", show_default=True,
                         help="ONNX Runtime activation/weight types. auto: u8s8 on x86 (reduce_range without VNNI), "
                              "s8s8 elsewhere."),
            click.Option(["--per-tensor", "per_tensor"], is_flag=True,
                         help="ONNX Runtime: one scale per weight tensor instead of per channel.")]
