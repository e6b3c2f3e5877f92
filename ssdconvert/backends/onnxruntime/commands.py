"""ONNX Runtime's command line: the options it adds to `quantize` (it has no compiler command)."""

from __future__ import annotations

import click

from ssdconvert.backends.commands import FiniteFloat

from ssdconvert.backends.onnxruntime.quantize import CALIBRATIONS, DEFAULT_CALIBRATION, DEFAULT_PERCENTILE, TYPES


def generic_options(command: str) -> list[click.Option]:
    """What `quantize` takes for ONNX Runtime: ort_types, per_tensor (OnnxRuntimeOptions.per_channel, inverted),
    calibration and percentile."""
    if command != "quantize":
        return []
    return [click.Option(["--ort-types", "ort_types"], type=click.Choice(TYPES), default="auto", show_default=True,
                         help="ONNX Runtime activation/weight types. auto: u8s8 on x86 (reduce_range without VNNI), "
                              "s8s8 elsewhere."),
            click.Option(["--per-tensor", "per_tensor"], is_flag=True,
                         help="ONNX Runtime: one scale per weight tensor instead of per channel."),
            click.Option(["--calibration", "calibration"], type=click.Choice(CALIBRATIONS), default=DEFAULT_CALIBRATION,
                         show_default=True,
                         help="ONNX Runtime: how activation ranges are calibrated. The default was chosen on one real "
                              "model (ST's COCO-trained SSD-MobileNetV2-FPNLite, 85 calibration images, COCO AP on "
                              "43 val2014 images: benchmarks/results/int8_real.md): percentile 99.999 +0.35 AP "
                              "points against FP32 (SNR scores/offsets 43/23 dB, 2.0x FP32 speed), minmax -0.24 "
                              "(41/20 dB); entropy as ONNX Runtime runs it keeps minmax's ranges. Percentile and "
                              "entropy calibrate one image per batch."),
            click.Option(["--percentile", "percentile"], type=FiniteFloat(min=0, max=100, min_open=True),
                         default=DEFAULT_PERCENTILE, show_default=True,
                         help="ONNX Runtime --calibration percentile: the percentile of each activation's absolute "
                              "values taken as its range.")]
