"""Intermediate tensors of an OpenVINO model, matched to the ONNX graph by tensor name (for `compare`).

How they are matched: the OpenVINO ONNX frontend keeps each ONNX tensor name among the names of
the output port that produces it (`Output.get_names()`, observed with openvino 2026.4 on the
exported detectors; an IR written by ovc keeps them too), so the port of ONNX tensor `t` is the one
whose names contain `t`. Tensors without such a port (folded into a constant, fused into a
neighbour during conversion, or renamed) are reported as unmatched by `compare`.

The ports of a chunk are added as model outputs (`Model.add_outputs`) before compiling, so the CPU
plugin must compute them; that can keep it from fusing those nodes with their neighbours, which
changes nothing for FP32 but places the BF16/FP16 conversions at the same points as a plain run
only approximately. Each chunk compiles the model again (memory stays bounded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


class OvTaps:
    def __init__(self, model: Path, precision: str | None = None):
        import openvino as ov

        from ssdconvert.backends.openvino.runner import inference_hint, recorded_precision

        self.model_path = Path(model)
        self.hint = inference_hint(precision or recorded_precision(self.model_path) or "fp32")
        self.core = ov.Core()
        self.ports = self._ports(self.core.read_model(str(model)))

    @staticmethod
    def _ports(model) -> dict[str, tuple[str, int]]:
        """ONNX tensor name -> (friendly name of the producing op, output index)."""
        found = {}
        for op in model.get_ordered_ops():
            if op.get_type_name() in ("Parameter", "Constant", "Result"):
                continue
            for k, out in enumerate(op.outputs()):
                for name in out.get_names():
                    found.setdefault(name, (op.get_friendly_name(), k))
        return found

    def names(self) -> list[str]:
        return list(self.ports)

    def fetch(self, names: Sequence[str], feeds: Mapping[str, np.ndarray],
              outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """The float tensors `names` for one batch of `feeds`, and those of `outputs` of any type (e.g.
        int64 labels); the tensors without a port are left out."""
        wanted = [n for n in names if n in self.ports]
        if not wanted:
            return {}
        model = self.core.read_model(str(self.model_path))
        ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
        outputs = [ops[self.ports[n][0]].output(self.ports[n][1]) for n in wanted]
        model.add_outputs(outputs)
        batch = next(iter(feeds.values())).shape[0]
        shapes = {}
        for port in model.inputs:
            shape = port.get_partial_shape()
            shape[0] = batch
            shapes[port.get_any_name()] = shape
        model.reshape(shapes)
        compiled = self.core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": self.hint,
                                                          "PERFORMANCE_HINT": "LATENCY"})
        result = compiled.create_infer_request().infer(dict(feeds), share_outputs=False)
        arrays = {}
        for name in wanted:
            value = np.asarray(result[name])  # an output port answers to every tensor name it carries
            if value.dtype.kind == "f" or name in outputs:
                arrays[name] = value
        return arrays


def make_taps(model: Path, precision: str | None = None) -> OvTaps:
    return OvTaps(model, precision)
