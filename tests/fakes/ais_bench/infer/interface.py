"""Fake `ais_bench.infer.interface.InferSession`, running the ".om" with ONNX Runtime on the CPU.

The ".om" is either an ONNX file renamed to .om, or the placeholder that tests/fakes/atc.py
writes (`FAKE-OM` + a JSON record of the build): then the ONNX named by its `--model` argument
runs with the recorded `--input_shape` (static batch, or -1 for batch gears).
"""

from __future__ import annotations

import enum
import json
import time

import numpy as np


class dtype(enum.Enum):  # aclruntime exposes an enum named like this
    float32 = 0
    float16 = 1
    uint8 = 4


_ITEMSIZE = {dtype.float32: 4, dtype.float16: 2, dtype.uint8: 1}
# the om keeps the ONNX input's element type (ATC changes it only for AIPP or --input_fp16_nodes)
_ORT_TYPES = {"tensor(uint8)": dtype.uint8, "tensor(float16)": dtype.float16}


class _Tensor:
    def __init__(self, name, shape, datatype):
        self.name, self.shape, self.datatype = name, shape, datatype
        n = int(np.prod([abs(d) for d in shape])) * _ITEMSIZE[datatype]
        self.size = self.realsize = n


class _Summary:
    def __init__(self, times):
        self.exec_time_list = times


class InferSession:
    def __init__(self, device_id, model_path, acl_json_path=None, debug=False, loop=1):
        import onnxruntime as ort

        if not str(model_path).endswith(".om"):
            raise RuntimeError(f"model path:{model_path} is not an om file")
        self.device_id, self.loop = device_id, loop
        onnx_path, self._shapes = str(model_path), {}
        with open(model_path, "rb") as f:
            head = f.read(8)
            if head == b"FAKE-OM\n":
                record = json.loads(f.readline())
                onnx_path = _model_arg(record["argv"])
                self._shapes = record.get("input_shape") or {}
        self._session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self.exec_times: list[float] = []
        self.gear = None

    def get_inputs(self):
        return [_Tensor(i.name, list(self._shapes.get(i.name) or [d if isinstance(d, int) else -1 for d in i.shape]),
                        _ORT_TYPES.get(i.type, dtype.float32)) for i in self._session.get_inputs()]

    def get_outputs(self):
        return [_Tensor(o.name, [d if isinstance(d, int) else -1 for d in o.shape], dtype.float32)
                for o in self._session.get_outputs()]

    def infer(self, feeds, mode="static", custom_sizes=100000):
        if mode not in ("static", "dymbatch", "dymdims", "dymshape", "dymhw"):
            raise RuntimeError(f"mode:{mode} not supported")
        names = [i.name for i in self._session.get_inputs()]
        for meta, feed in zip(self.get_inputs(), feeds):
            want = [d for d in meta.shape]
            if want[0] >= 0 and list(feed.shape) != want:
                raise RuntimeError(f"input shape {list(feed.shape)} does not match the om input {want}")
        start = time.perf_counter()
        out = self._session.run(None, dict(zip(names, (np.ascontiguousarray(f) for f in feeds))))
        self.exec_times.append((time.perf_counter() - start) * 1e3)
        return out

    def summary(self):
        return _Summary(list(self.exec_times))

    sumary = summary

    def reset(self):
        self.exec_times = []

    def free_resource(self):
        self._session = None

    finalize = free_resource


def _model_arg(argv) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
        if arg == "--model":
            return argv[i + 1]
    raise RuntimeError("fake om record has no --model")
