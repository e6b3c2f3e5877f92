"""ONNX Runtime runner (CPU by default): the fallback that runs anywhere, and the accuracy reference."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ssdconvert.backends.base import Runner, RunnerError, dim_or_none, first_line
from stageio.tensor import TensorSpec

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32", "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


class OnnxRuntimeRunner(Runner):
    """Runs an .onnx file with `onnxruntime.InferenceSession` (session defaults, all cores)."""

    name = "onnxruntime"

    def __init__(self, model: str | Path, *, providers: Sequence[str] | None = None,
                 intra_op_threads: int | None = None):
        super().__init__(model)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.intra_op_threads = intra_op_threads
        self.session = None
        self._output_names: list[str] = []

    def _activate(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        try:
            self.session = ort.InferenceSession(str(self.model), options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise RunnerError(f"ONNX Runtime cannot load {self.model}: {first_line(exc)}") from None
        self.inputs = [_meta(i) for i in self.session.get_inputs()]
        self.outputs = [_meta(o) for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def _infer(self, feeds: Mapping[str, np.ndarray]):
        run = self.session.run
        start = self._clock()
        try:
            arrays = run(self._output_names, feeds)
        except Exception as exc:
            raise RunnerError(f"ONNX Runtime failed on {self.model.name}: {first_line(exc)}") from None
        return arrays, (self._clock() - start) * 1e3

    def _deactivate(self) -> None:
        self.session = None

    def versions(self) -> dict[str, str]:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__, "providers": ",".join(self.providers)}


def _meta(node) -> TensorSpec:
    return TensorSpec.batched(node.name, [dim_or_none(d) for d in node.shape], _ORT_TYPES.get(node.type, node.type))



def runtime_label(versions: Mapping[str, str]) -> str:
    return f"ONNX Runtime {versions.get('onnxruntime', '')} CPU".replace("  ", " ")
