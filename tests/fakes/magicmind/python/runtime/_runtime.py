"""The run half of the fake MagicMind: Model, Engine, Context, System, Device, Queue, Tensor (see __init__.py)."""

from __future__ import annotations

import json
import os
import threading

import numpy as np

from magicmind.python.runtime._types import NUMPY, ORT, DataType, Dims, Status, error, visible_devices

MAGIC = b"FAKE-MAGICMIND\n"
_current = threading.local()


def _current_device() -> int:
    return getattr(_current, "device", 0)


class System:
    """`with mm.System() as system:` around the work, as the samples do."""

    def __enter__(self) -> "System":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def device_count(self) -> int:
        return visible_devices()


class Device:
    def __init__(self):
        self.id = 0

    def active(self) -> Status:
        if not 0 <= int(self.id) < visible_devices():
            return error(f"device id {self.id} is invalid: {visible_devices()} MLU(s) visible")
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
            return error(f"device {device.id} is not the current device")
        return Status()

    def asnumpy(self) -> np.ndarray:
        if not self._ready:
            raise RuntimeError("[MMERROR] tensor data is not ready: sync its queue first")
        if self._data is None:
            raise RuntimeError("[MMERROR] tensor has no data")
        return self._data.copy()


class Model:
    """A model built by the fake Builder (_builder.py): its record names the ONNX, each input's dims, dtype and
    own range, the precision and the calibration."""

    class EngineConfig:
        def __init__(self):
            self.device_type = "MLU"

    def __init__(self):
        self._record: dict | None = None
        self._session = None

    @classmethod
    def _built(cls, record: dict) -> "Model":
        model = cls()
        model._record = record
        return model

    def serialize_to_file(self, path: str) -> Status:
        if os.environ.get("FAKE_MM_MODE") == "no-artefact":
            return Status()
        try:
            with open(path, "wb") as f:
                f.write(MAGIC + json.dumps(self._record).encode() + b"\n")
        except OSError as exc:
            return error(f"cannot write {path}: {exc.strerror}")
        return Status()

    def deserialize_from_file(self, path: str) -> Status:
        try:
            with open(path, "rb") as f:
                head, line = f.readline(), f.readline()
        except OSError as exc:
            return error(f"cannot open {path}: {exc.strerror}")
        if head != MAGIC:
            return error(f"{path} is not a MagicMind model")
        import onnxruntime as ort

        self._record = json.loads(line)
        self._session = ort.InferenceSession(self._record["onnx"], providers=["CPUExecutionProvider"])
        return Status()

    # -- metadata (empty before a successful deserialize) --------------------------------------
    def _inputs(self) -> list[dict]:
        return self._record["inputs"] if self._session else []

    def _outputs(self):
        return self._session.get_outputs() if self._session else []

    def get_input_num(self) -> int:
        return len(self._inputs())

    def get_output_num(self) -> int:
        return len(self._outputs())

    def get_input_names(self) -> list[str]:
        return [i["name"] for i in self._inputs()]

    def get_output_names(self) -> list[str]:
        return [o.name for o in self._outputs()]

    def get_input_data_types(self) -> list[DataType]:
        return [DataType[i["dtype"]] for i in self._inputs()]

    def get_output_data_types(self) -> list[DataType]:
        return [ORT.get(o.type, DataType.FLOAT32) for o in self._outputs()]

    def get_input_dimensions(self) -> list[Dims]:
        return [Dims(i["dims"]) for i in self._inputs()]

    def get_output_dimensions(self) -> list[Dims]:
        inputs = self._inputs()
        batch = inputs[0]["dims"][0] if inputs else 1
        return [Dims([batch if k == 0 else (d if isinstance(d, int) else -1) for k, d in enumerate(o.shape)])
                for o in self._outputs()]

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
            return error("enqueue needs a queue")
        if len(inputs) != m.get_input_num():
            return error(f"{len(inputs)} inputs given, the model has {m.get_input_num()}")
        feeds = {}
        for k, (tensor, spec) in enumerate(zip(inputs, m._inputs())):
            if tensor._data is None:
                return error(f"input {k} has no data (from_numpy first)")
            data, dtype = tensor._data, DataType[spec["dtype"]]
            if data.dtype != NUMPY[dtype]:
                return error(f"input {k} data type {data.dtype} does not match the model's {dtype.name}")
            problem = _shape_problem(list(data.shape), spec["dims"], spec.get("range"))
            if problem:
                return error(f"input {k} shape {list(data.shape)}: {problem}")
            feeds[tensor.name] = _normalise(data, spec["bn"]) if spec.get("bn") else data
        self._run(feeds, outputs, queue)
        return Status()

    def _run(self, feeds: dict, outputs: list, queue: Queue) -> None:
        m = self._model
        results = m._session.run(None, feeds)
        drift = float(os.environ.get("FAKE_MAGICMIND_DRIFT", "0") or 0)
        for k, array in enumerate(results):
            if m._record["precision"] == "force_float16":
                array = array.astype(np.float16).astype(array.dtype)
            if k == 0 and drift:
                array = array + np.asarray(drift, array.dtype)
            tensor = Tensor(m.get_output_names()[k], list(array.shape), ORT.get(m._outputs()[k].type, DataType.FLOAT32))
            tensor._data, tensor._ready = array, False
            queue._pending.append(tensor)
            outputs.append(tensor)


def _normalise(data: np.ndarray, bn: dict) -> np.ndarray:
    """The batch norm the builder put before the first node: (v - mean) / sqrt(var) along the channel axis (1)."""
    shape = [1, len(bn["mean"])] + [1] * (data.ndim - 2)
    mean, var = np.reshape(bn["mean"], shape), np.reshape(bn["var"], shape)
    return ((data.astype(np.float32) - mean) / np.sqrt(var)).astype(np.float32)


def _shape_problem(got: list[int], want: list[int], dim_range) -> str:
    """What is wrong with input shape `got` for model dims `want` (-1: within this input's own range)."""
    if len(got) != len(want):
        return f"rank {len(got)}, the model input has rank {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        if w >= 0 and g != w:
            return f"dim {k} is {g}, the model input has {w}"
        if w < 0 and dim_range and not dim_range["min"][k] <= g <= dim_range["max"][k]:
            return f"dim {k} is {g}, outside the model's range {dim_range['min'][k]}..{dim_range['max'][k]}"
    return ""
