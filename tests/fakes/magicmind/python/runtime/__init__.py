"""Fake `magicmind.python.runtime`: the calls Cambricon's samples make, computed with ONNX Runtime.

Put tests/fakes on sys.path (and PYTHONPATH for subprocesses); then `import
magicmind.python.runtime as mm` gives this module. The surface is what Cambricon/magicmind_cloud
samples use [buildin/python_common/mm_runner.py, model_process.py, buildin/cv/.../infer_python/
infer.py]: Model (deserialize_from_file, get_input/output_names, _dimensions, _data_types,
get_input/output_num, create_i_engine), Model.EngineConfig (device_type), engine.create_i_context,
context.create_inputs / enqueue, System (device_count; a context manager), Device (id, active,
create_queue), queue.sync, tensor from_numpy / to / asnumpy, Dims (GetDims), DataType, Status (ok).

The "model" is the placeholder tests/fakes/mm_build.py writes: `FAKE-MAGICMIND` + a JSON record
of the build argv. The fake runs the ONNX named by its `--onnx` with ONNX Runtime on the CPU at
the recorded input dims (a static build) or within the recorded dim range (`--dynamic_shape
true`), so outputs are real tensors; a force_float16 build rounds the outputs through float16.

It refuses what the real runtime would, the way the samples show refusals (a Status that is not
ok, None from a factory, or an exception):
  * deserialize_from_file on a file that is not a model: Status not ok;
  * metadata getters and create_i_engine before a successful deserialize: empty lists / None;
  * Device.active() for an id that is not visible (FAKE_MLU_COUNT, default 1): not ok;
  * work on a device that is not the thread's current one (device 0 until Device.active() makes
    another current) [inferred from the samples, which run on device 0 without active()]:
    create_queue -> None, tensor.to(dev) -> not ok;
  * enqueue with an input that has no data, the wrong dtype, or a shape the model does not take
    (static dims; a mutable dim outside its range): not ok;
  * asnumpy() on an output whose queue was not synced yet: RuntimeError.

Failure injection: FAKE_MAGICMIND_DRIFT=<float> adds that value to output 0 (a device that
computes wrong, for accuracy-gate tests).
"""

from __future__ import annotations

import enum
import json
import os
import threading

import numpy as np


class DataType(enum.Enum):
    FLOAT32 = 0
    FLOAT16 = 1
    UINT8 = 2
    INT8 = 3
    INT16 = 4
    INT32 = 5
    INT64 = 6
    UINT16 = 7
    UINT32 = 8
    BOOL = 9
    QINT8 = 10
    QINT16 = 11


_NUMPY = {DataType.FLOAT32: np.float32, DataType.FLOAT16: np.float16, DataType.UINT8: np.uint8,
          DataType.INT8: np.int8, DataType.INT16: np.int16, DataType.INT32: np.int32, DataType.INT64: np.int64,
          DataType.UINT16: np.uint16, DataType.UINT32: np.uint32, DataType.BOOL: np.bool_}
_ORT = {"tensor(float)": DataType.FLOAT32, "tensor(float16)": DataType.FLOAT16, "tensor(uint8)": DataType.UINT8,
        "tensor(int32)": DataType.INT32, "tensor(int64)": DataType.INT64}


class Status:
    def __init__(self, message: str = ""):
        self._message = message

    def ok(self) -> bool:
        return not self._message

    def __str__(self) -> str:
        return self._message or "OK"

    __repr__ = __str__


class Dims:
    def __init__(self, dims):
        self._dims = [int(d) for d in dims]

    def GetDims(self) -> list[int]:  # noqa: N802 - the runtime's spelling
        return list(self._dims)

    def __repr__(self) -> str:
        return f"Dims({self._dims})"


_current = threading.local()


def _current_device() -> int:
    return getattr(_current, "device", 0)


def _visible() -> int:
    return int(os.environ.get("FAKE_MLU_COUNT", "1"))


class System:
    """`with mm.System() as system:` around the work, as the samples do."""

    def __enter__(self) -> "System":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def device_count(self) -> int:
        return _visible()


class Device:
    def __init__(self):
        self.id = 0

    def active(self) -> Status:
        if not 0 <= int(self.id) < _visible():
            return Status(f"[MMERROR] device id {self.id} is invalid: {_visible()} MLU(s) visible")
        _current.device = int(self.id)
        return Status()

    def create_queue(self) -> "Queue | None":
        if int(self.id) != _current_device():
            return None  # not the thread's current device: activate it first
        return Queue(int(self.id))


class Queue:
    def __init__(self, device: int):
        self.device = device
        self._pending: list[Tensor] = []

    def sync(self) -> Status:
        for tensor in self._pending:
            tensor._ready = True
        self._pending = []
        return Status()


class Tensor:
    def __init__(self, name: str, dims: list[int], dtype: DataType):
        self.name, self._dims, self._dtype = name, list(dims), dtype
        self._data: np.ndarray | None = None
        self._ready = True

    @property
    def shape(self) -> list[int]:
        return list(self._data.shape) if self._data is not None else list(self._dims)

    def from_numpy(self, array: np.ndarray) -> Status:
        self._data = np.array(array, copy=True)
        return Status()

    def to(self, device: Device) -> Status:
        if int(device.id) != _current_device():
            return Status(f"[MMERROR] device {device.id} is not the current device")
        return Status()

    def asnumpy(self) -> np.ndarray:
        if not self._ready:
            raise RuntimeError("[MMERROR] tensor data is not ready: sync its queue first")
        if self._data is None:
            raise RuntimeError("[MMERROR] tensor has no data")
        return self._data.copy()


class _Record:
    """The build as tests/fakes/mm_build.py recorded it."""

    def __init__(self, record: dict):
        argv = record["argv"]
        self.onnx = _flag(argv, "--onnx")[0]
        self.precision = record.get("precision", "force_float32")
        self.dynamic = record.get("dynamic_shape") == "true"
        self.dims = [[int(d) for d in dims] for dims in record.get("input_dims") or []]
        self.range = ([int(v) for v in _flag(argv, "--dim_range_min")], [int(v) for v in _flag(argv, "--dim_range_max")]) \
            if self.dynamic else None


def _flag(argv: list[str], name: str) -> list[str]:
    if name not in argv:
        return []
    values = []
    for item in argv[argv.index(name) + 1:]:
        if item.startswith("--"):
            break
        values.append(item)
    return values


class Model:
    class EngineConfig:
        def __init__(self):
            self.device_type = "MLU"

    def __init__(self):
        self._record: _Record | None = None
        self._session = None

    def deserialize_from_file(self, path: str) -> Status:
        try:
            with open(path, "rb") as f:
                head, line = f.readline(), f.readline()
        except OSError as exc:
            return Status(f"[MMERROR] cannot open {path}: {exc.strerror}")
        if head != b"FAKE-MAGICMIND\n":
            return Status(f"[MMERROR] {path} is not a MagicMind model")
        import onnxruntime as ort

        self._record = _Record(json.loads(line))
        self._session = ort.InferenceSession(self._record.onnx, providers=["CPUExecutionProvider"])
        return Status()

    # -- metadata (empty before a successful deserialize) --------------------------------------
    def _inputs(self):
        return self._session.get_inputs() if self._session else []

    def _outputs(self):
        return self._session.get_outputs() if self._session else []

    def get_input_num(self) -> int:
        return len(self._inputs())

    def get_output_num(self) -> int:
        return len(self._outputs())

    def get_input_names(self) -> list[str]:
        return [i.name for i in self._inputs()]

    def get_output_names(self) -> list[str]:
        return [o.name for o in self._outputs()]

    def get_input_data_types(self) -> list[DataType]:
        return [_ORT.get(i.type, DataType.FLOAT32) for i in self._inputs()]

    def get_output_data_types(self) -> list[DataType]:
        return [_ORT.get(o.type, DataType.FLOAT32) for o in self._outputs()]

    def get_input_dimensions(self) -> list[Dims]:
        return [Dims(dims) for dims in self._input_dims()]

    def get_output_dimensions(self) -> list[Dims]:
        batch = -1 if self._mutable_batch() else (self._input_dims() or [[1]])[0][0]
        return [Dims([batch if k == 0 else (d if isinstance(d, int) else -1) for k, d in enumerate(o.shape)])
                for o in self._outputs()]

    def _input_dims(self) -> list[list[int]]:
        if self._record is None:
            return []
        if self._record.dynamic:
            lo, hi = self._record.range
            return [[a if a == b else -1 for a, b in zip(lo, hi)] for _ in self._inputs()]
        return self._record.dims

    def _mutable_batch(self) -> bool:
        return bool(self._record and self._record.dynamic and self._input_dims()[0][0] == -1)

    def create_i_engine(self, config: "Model.EngineConfig | None" = None) -> "Engine | None":
        if self._session is None:
            return None
        if config is not None and config.device_type != "MLU":
            return None
        return Engine(self)


class Engine:
    def __init__(self, model: Model):
        self._model = model

    def create_i_context(self) -> "Context":
        return Context(self._model)


class Context:
    def __init__(self, model: Model):
        self._model = model

    def create_inputs(self) -> list[Tensor]:
        m = self._model
        return [Tensor(name, dims.GetDims(), dtype) for name, dims, dtype in
                zip(m.get_input_names(), m.get_input_dimensions(), m.get_input_data_types())]

    def enqueue(self, inputs: list[Tensor], outputs: list, queue: Queue) -> Status:
        m = self._model
        if not isinstance(queue, Queue):
            return Status("[MMERROR] enqueue needs a queue")
        if len(inputs) != m.get_input_num():
            return Status(f"[MMERROR] {len(inputs)} inputs given, the model has {m.get_input_num()}")
        feeds = {}
        for k, (tensor, want, dtype) in enumerate(zip(inputs, m.get_input_dimensions(), m.get_input_data_types())):
            if tensor._data is None:
                return Status(f"[MMERROR] input {k} has no data (from_numpy first)")
            data = tensor._data
            if data.dtype != _NUMPY[dtype]:
                return Status(f"[MMERROR] input {k} data type {data.dtype} does not match the model's {dtype.name}")
            problem = _shape_problem(list(data.shape), want.GetDims(), m._record.range)
            if problem:
                return Status(f"[MMERROR] input {k} shape {list(data.shape)}: {problem}")
            feeds[tensor.name] = data
        results = m._session.run(None, feeds)
        drift = float(os.environ.get("FAKE_MAGICMIND_DRIFT", "0") or 0)
        for k, array in enumerate(results):
            if m._record.precision == "force_float16":
                array = array.astype(np.float16).astype(array.dtype)
            if k == 0 and drift:
                array = array + np.asarray(drift, array.dtype)
            tensor = Tensor(m.get_output_names()[k], list(array.shape), _ORT.get(m._outputs()[k].type, DataType.FLOAT32))
            tensor._data, tensor._ready = array, False
            queue._pending.append(tensor)
            outputs.append(tensor)
        return Status()


def _shape_problem(got: list[int], want: list[int], dim_range) -> str:
    if len(got) != len(want):
        return f"rank {len(got)}, the model input has rank {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        if w >= 0 and g != w:
            return f"dim {k} is {g}, the model input has {w}"
        if w < 0 and dim_range and not dim_range[0][k] <= g <= dim_range[1][k]:
            return f"dim {k} is {g}, outside the model's range {dim_range[0][k]}..{dim_range[1][k]}"
    return ""
