"""OpenVINO INT8 through NNCF post-training quantization, calibrated on the preprocessed bins.

Read in the installed nncf 3.4 and openvino 2026.4: `nncf.quantize(model, nncf.Dataset(items),
subset_size=..., ignored_scope=nncf.IgnoredScope(names=[...]))` takes an `openvino.Model`
(here converted in-process from the ONNX with `openvino.convert_model`, what `ovc` does, or read
from an IR) and returns the quantized `openvino.Model` (FakeQuantize nodes; the CPU plugin runs
the marked convolutions in INT8). IgnoredScope names are OpenVINO node names (friendly names;
for an ONNX source most keep the ONNX node's output name); with `validate=True` (the default)
NNCF refuses a name that matches no node, so a typo cannot silently quantize a layer. Weights
are saved FP32 (`compress_to_fp16=False`): only what NNCF quantized changes precision.

Defaults (preset PERFORMANCE: symmetric activations and weights, per-channel weights, fast bias
correction) are NNCF's; nothing is excluded by default, as for ONNX Runtime, where keeping the head
convolutions in float was measured to lower the agreement on the seeded ssd-resnet34 (docs/commands/quantize.md,
`--exclude`; not measured separately for NNCF).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ssdconvert.errors import SsdConvertError


def quantize(model_path: Path, samples, output: Path, exclude: Sequence[str], say) -> dict:
    """Write the INT8 IR to `output` (.xml + .bin); return the settings used (for the record)."""
    import logging

    import nncf
    import openvino as ov

    from ssdconvert.backends.openvino.runner import OpenVinoRunner

    logging.getLogger("nncf").setLevel(logging.WARNING)
    with OpenVinoRunner(model_path) as probe:
        inputs = probe.inputs
    model = ov.Core().read_model(str(model_path)) if model_path.suffix.lower() == ".xml" else \
        ov.convert_model(str(model_path))
    items = Feeds(samples, inputs)
    say(f"calibrating on {len(items)} images, NNCF post-training quantization (preset performance) ...")
    scope = nncf.IgnoredScope(names=list(exclude)) if exclude else None
    try:
        quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), ignored_scope=scope)
    except nncf.ValidationError as exc:
        raise SsdConvertError(f"--exclude: {str(exc).splitlines()[0]}") from None
    ov.save_model(quantized, str(output), compress_to_fp16=False)
    return {"tool": "nncf", "nncf": nncf.__version__, "preset": "performance", "subset_size": len(items),
            "excluded": list(exclude)}


class Feeds:
    """The calibration feeds at batch 1, read again on every pass (NNCF iterates more than once); a
    list would hold every image in memory."""

    def __init__(self, samples, inputs):
        self.samples, self.inputs = samples, inputs

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return (feeds for _, feeds, _ in self.samples.batches(self.inputs, 1))
