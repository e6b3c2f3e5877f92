"""Fake `magicmind.python.runtime.parser.Parser`: ONNX only (magicmind_cloud framework_parser.py OnnxParser)."""

from __future__ import annotations

from magicmind.python.runtime._builder import ModelKind, Network
from magicmind.python.runtime._types import Status, error


class Parser:
    def __init__(self, kind: ModelKind):
        self.kind = kind

    def set_model_param(self, name: str, value) -> Status:
        return Status()

    def parse(self, network: Network, *paths: str) -> Status:
        if self.kind != ModelKind.kOnnx:
            return error(f"the fake parses ONNX only, not {self.kind.name}")
        return network._load_onnx(paths[0])
