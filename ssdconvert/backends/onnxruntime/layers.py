"""Every intermediate tensor of an ONNX model, as ONNX Runtime computes it (for `ssdconvert compare`).

As Polygraphy does (`--onnx-outputs mark all`), the wanted node outputs are added to the graph's
outputs and the model is run as usual. To keep memory bounded the tensors are fetched in chunks
(`compare` asks for as many as fit its byte budget), each chunk a session of its own over a copy of
the model whose graph outputs are that chunk. Graph optimisations stay on: a tensor ONNX Runtime
fuses away is still produced when it is a graph output (it is then computed, not skipped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}


class OrtTaps:
    """Node outputs of `model` (an .onnx) by tensor name; `precision` is not used (the file is what runs)."""

    def __init__(self, model: Path, precision: str | None = None):
        import onnx

        self.model_path = Path(model)
        self.model = onnx.load(str(model))
        self.graph_names = {o.name for o in self.model.graph.output}

    def names(self) -> list[str]:
        return [out for node in self.model.graph.node for out in node.output if out]

    def fetch(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The tensors `names` for one batch of `feeds` (those the model does not produce are left out)."""
        import onnx
        import onnxruntime as ort

        produced = set(self.names()) | {i.name for i in self.model.graph.input}
        wanted = [n for n in names if n in produced]
        if not wanted:
            return {}
        outputs = list(self.model.graph.output)  # swapped for the chunk and put back: no copy of the weights
        del self.model.graph.output[:]
        self.model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in wanted)
        try:
            serialized = self.model.SerializeToString()
        finally:
            del self.model.graph.output[:]
            self.model.graph.output.extend(outputs)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
        del serialized
        given = {i.name for i in session.get_inputs()}
        arrays = session.run(wanted, {k: v for k, v in feeds.items() if k in given})
        return {n: a for n, a in zip(wanted, arrays) if isinstance(a, np.ndarray) and a.dtype.kind == "f"}


def make_taps(model: Path, precision: str | None = None) -> OrtTaps:
    return OrtTaps(model, precision)
