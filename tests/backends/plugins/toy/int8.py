"""The toy's INT8: every float weight tensor rounded to a symmetric per-tensor int8 grid."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def quantize(source: Path, samples, output: Path, exclude: Sequence[str], arch: str) -> dict:
    """Write the INT8 .toy model to `output`; the calibration samples give the recorded input range."""
    import onnx
    from onnx import numpy_helper

    from . import write_toy

    model = onnx.load(str(source))
    rounded = []
    for tensor in model.graph.initializer:
        weights = numpy_helper.to_array(tensor)
        if weights.dtype != np.float32 or weights.ndim < 2 or tensor.name in exclude:
            continue
        scale = float(np.abs(weights).max()) / 127 or 1.0
        tensor.CopyFrom(numpy_helper.from_array((np.round(weights / scale) * scale).astype(np.float32), tensor.name))
        rounded.append(tensor.name)
    input_absmax = max(float(np.abs(np.fromfile(files[0], dtype=np.float32)).max()) for files in samples.files)
    write_toy(source, output, arch, model)
    return {"arch": arch, "rounded": len(rounded), "calibration_images": len(samples), "input_absmax": input_absmax}
