"""Every intermediate tensor of an ONNX model, as ONNX Runtime computes it (for `ssdconvert compare`).

As Polygraphy does (`--onnx-outputs mark all`), the wanted node outputs are added to the graph's
outputs and the model is run as usual. To keep memory bounded the tensors are fetched in chunks
(`compare` asks for as many as fit its byte budget), each chunk a session of its own over a copy of
the model whose graph outputs are that chunk. Graph optimisations stay on: a tensor ONNX Runtime
fuses away is still produced when it is a graph output (it is then computed, not skipped).

In a QDQ (INT8) model the value the next layer really consumes is the DequantizeLinear output that
follows the tensor's QuantizeLinear, so a tensor `t` with `t -> QuantizeLinear -> DequantizeLinear`
is fetched as that DequantizeLinear's output. This matters: ONNX Runtime's quantizer removes a
Relu after a Conv and lets the Conv write the Relu's tensor name (the clipping happens in the
quantization's zero point), so the raw tensor of that name is pre-ReLU (observed, onnxruntime 1.31).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}


class OrtTaps:
    """Node outputs of `model` (an .onnx) by tensor name; `precision` is not used (the file is what runs)."""

    def __init__(self, model: Path, precision: str | None = None):
        from ssdconvert.backends.onnxinfo import load_onnx

        self.model_path = Path(model)
        self.model = load_onnx(model)
        self.producers = {out: node.op_type for node in self.model.graph.node for out in node.output if out}
        self.effective = _dequantized(self.model)

    def names(self) -> list[str]:
        return [out for node in self.model.graph.node for out in node.output if out]

    def fetch(self, names: Sequence[str], feeds: Mapping[str, np.ndarray],
              outputs: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """The float tensors `names` for one batch of `feeds`, and those of `outputs` of any type (e.g.
        int64 labels); the tensors the model does not produce are left out."""
        import onnx
        import onnxruntime as ort

        produced = set(self.names()) | {i.name for i in self.model.graph.input}
        asked = [n for n in names if n in produced]
        if not asked:
            return {}
        wanted = list(dict.fromkeys(self.effective.get(n, n) for n in asked))
        graph_outputs = list(self.model.graph.output)  # swapped for the chunk and put back: no copy of the weights
        del self.model.graph.output[:]
        self.model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in wanted)
        try:
            serialized = self.model.SerializeToString()
        finally:
            del self.model.graph.output[:]
            self.model.graph.output.extend(graph_outputs)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
        del serialized
        given = {i.name for i in session.get_inputs()}
        arrays = dict(zip(wanted, session.run(wanted, {k: v for k, v in feeds.items() if k in given})))
        found = {n: arrays[self.effective.get(n, n)] for n in asked}
        return {n: a for n, a in found.items() if isinstance(a, np.ndarray) and (a.dtype.kind == "f" or n in outputs)}


def _dequantized(model) -> dict[str, str]:
    """Tensor -> the DequantizeLinear output of its QuantizeLinear (QDQ models; empty otherwise)."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        dq = [c for c in consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"]
        if dq:
            found[node.input[0]] = dq[0].output[0]
    return found


def make_taps(model: Path, precision: str | None = None) -> OrtTaps:
    return OrtTaps(model, precision)
