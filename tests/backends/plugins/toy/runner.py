"""The toy's runner: ONNX Runtime on a .toy model built for its architecture."""

from __future__ import annotations

from pathlib import Path

from ssdconvert.backends.base import RunnerError
from ssdconvert.backends.onnxruntime.runner import OnnxRuntimeRunner


class ToyRunner(OnnxRuntimeRunner):
    name = "toy"

    def __init__(self, model: str | Path, arch: str):
        super().__init__(model)
        self.arch = arch

    def _activate(self) -> None:
        import onnx

        from . import META_KEY

        meta = {p.key: p.value for p in onnx.load(str(self.model), load_external_data=False).metadata_props}
        if meta.get(META_KEY) != self.arch:
            raise RunnerError(f"{self.model.name} was built for {meta.get(META_KEY)}, not --toy-arch {self.arch}")
        super()._activate()

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "toy": self.arch}
