"""The build half of the fake MagicMind: Network and its tensors, BuilderConfig, Calibrator, Builder.

The calls are the ones Cambricon/magicmind_cloud v1.7 (git dc085c19) makes in buildin/python_common
(framework_parser.py, model_process.py, common_calibrate.py) and the gen_model/calibrator.py CalibData classes.
What it refuses, and how (a Status that is not ok, or None from build_model, with an `[MMERROR]` line on stderr):
  * set_dimension with another rank, or changing a dim the ONNX fixes;
  * BuilderConfig JSON that does not parse, has a key none of those scripts writes, a precision_mode outside
    build_param.py's list, or a dim_range entry whose min and max differ in rank or have min > max;
  * calibrate without one CalibDataInterface per network input, with no sample, or with a sample whose numpy
    dtype or shape is not what its get_data_type / get_shape say or does not fit the network input;
  * build_model at a qint* precision that was not calibrated (nor given custom_ranges) [inferred from
    model_process.py, which sets custom_ranges when it has no data]; a static build (graph_shape_mutable false,
    the fake's default) with a -1 dim left; a mutable build with a -1 dim on an input that has no dim_range
    entry of its own ("dim_range": {"<input index>": {"min", "max"}}, one per input as model_process.py
    set_dim_range writes it).
The model it builds records, per input, its dims (-1 where the range lets it vary), dtype and own range, its
inserted batch norm (`insert_bn_before_firstnode`, keyed by input index as model_process.py writes --means/--vars:
the input becomes UINT8 and is normalised (v - mean) / sqrt(var) per channel of an NCHW input), and the
calibration's min, max and sample count per input; the run half (_runtime.py) reads that record.

Failure injection (FAKE_MM_MODE): crash (SIGSEGV in build_model), hang (sleep an hour), fail (build_model
returns None after an `[MMERROR]` line), no-artefact (serialize_to_file says ok and writes nothing).
"""

from __future__ import annotations

import enum
import json
import os
import signal
import sys
import time

import numpy as np

from magicmind.python.runtime._runtime import Model
from magicmind.python.runtime._types import NUMPY, Code, DataType, Dims, Status, error

PRECISIONS = ("force_float32", "force_float16", "qint16_mixed_float16", "qint8_mixed_float16",
              "qint16_mixed_float32", "qint8_mixed_float32")
CONFIG_KEYS = {"precision_config", "archs", "graph_shape_mutable", "dim_range", "computation_preference",
               "opt_config", "insert_bn_before_firstnode", "custom_ranges", "cross_compile_toolchain_path"}
ONNX_TYPES = {1: DataType.FLOAT32, 10: DataType.FLOAT16, 2: DataType.UINT8, 3: DataType.INT8, 6: DataType.INT32,
              7: DataType.INT64, 9: DataType.BOOL}


class ModelKind(enum.Enum):
    kTensorflow = 0
    kCaffe = 1
    kPytorch = 2
    kOnnx = 3


class QuantizationAlgorithm(enum.Enum):
    LINEAR_ALGORITHM = 0
    EQNM_ALGORITHM = 1


class ITensor:
    def __init__(self, name: str, dims: list[int], dtype: DataType):
        self._name, self._dims, self._dtype = name, list(dims), dtype
        self._model_dims = list(dims)  # what the ONNX fixes (-1: free)

    def get_tensor_name(self) -> str:
        return self._name

    def get_dimension(self) -> Dims:
        return Dims(self._dims)

    def set_dimension(self, dims: Dims) -> Status:
        new = dims.GetDims()
        if len(new) != len(self._model_dims):
            return error(f"{self._name}: rank {len(new)}, the network input has rank {len(self._model_dims)}")
        if any(m != -1 and n != m for m, n in zip(self._model_dims, new)) or any(n < -1 or n == 0 for n in new):
            return error(f"{self._name}: dims {new} do not fit the network input {self._model_dims}")
        self._dims = new
        return Status()

    def get_data_type(self) -> DataType:
        return self._dtype

    def set_data_type(self, dtype: DataType) -> Status:
        self._dtype = dtype
        return Status()


class Network:
    def __init__(self):
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._onnx: str | None = None
        self._calibration: list[dict] | None = None

    def _load_onnx(self, path: str) -> Status:
        import onnx

        try:
            graph = onnx.load(path, load_external_data=False).graph
        except Exception as exc:  # onnx raises several types
            return error(f"cannot parse {path}: {exc}")
        weights = {i.name for i in graph.initializer}
        self._inputs = [_tensor(v) for v in graph.input if v.name not in weights]
        self._outputs = [_tensor(v) for v in graph.output]
        self._onnx = path
        return Status()

    def get_input_count(self) -> int:
        return len(self._inputs)

    def get_input(self, i: int) -> ITensor:
        return self._inputs[i]

    def get_output_count(self) -> int:
        return len(self._outputs)

    def get_output(self, i: int) -> ITensor:
        return self._outputs[i]


def _tensor(value) -> ITensor:
    t = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in t.shape.dim]
    return ITensor(value.name, dims, ONNX_TYPES.get(t.elem_type, DataType.FLOAT32))


class BuilderConfig:
    def __init__(self):
        self.mlu_archs: list[str] = []
        self._items: dict = {}

    def parse_from_string(self, text: str) -> Status:
        try:
            item = json.loads(text)
        except ValueError as exc:
            return error(f"build config is not JSON: {exc}")
        problem = _config_problem(item)
        if problem:
            return error(problem)
        for key, value in item.items():
            if isinstance(value, dict) and isinstance(self._items.get(key), dict):
                self._items[key] = {**self._items[key], **value}
            else:
                self._items[key] = value
        return Status()

    def parse_from_file(self, path: str) -> Status:
        with open(path, encoding="utf-8") as f:
            return self.parse_from_string(f.read())


def _config_problem(item) -> str:
    if not isinstance(item, dict) or set(item) - CONFIG_KEYS:
        return f"unknown build config key(s) {sorted(set(item) - CONFIG_KEYS) if isinstance(item, dict) else item}"
    mode = item.get("precision_config", {}).get("precision_mode")
    if mode is not None and mode not in PRECISIONS:
        return f"unknown precision_mode {mode}"
    for index, bn in item.get("insert_bn_before_firstnode", {}).items():
        if not index.isdigit() or len(bn.get("mean", [])) != len(bn.get("var", [])) or min(bn.get("var", [1])) <= 0:
            return f"insert_bn_before_firstnode {index}: one mean and one positive var per channel"
    for index, bounds in item.get("dim_range", {}).items():
        lo, hi = bounds.get("min", []), bounds.get("max", [])
        if not index.isdigit() or len(lo) != len(hi) or any(a > b for a, b in zip(lo, hi)):
            return f"dim_range {index}: min {lo} and max {hi} must have one rank and min <= max"
    return ""


class CalibDataInterface:
    """Subclassed by the user's CalibData: get_shape, get_data_type, get_sample, next, reset."""

    def __init__(self):
        pass


class Calibrator:
    def __init__(self, data: list):
        self._data = list(data)
        self._algorithm = None

    def set_quantization_algorithm(self, algorithm) -> Status:
        if not isinstance(algorithm, QuantizationAlgorithm):
            return error(f"unknown quantization algorithm {algorithm}")
        self._algorithm = algorithm
        return Status()

    def calibrate(self, network: Network, config: BuilderConfig) -> Status:
        if len(self._data) != network.get_input_count():
            return error(f"{len(self._data)} calibration data for {network.get_input_count()} network input(s)")
        ranges = config._items.get("dim_range", {})
        stats = []
        for k, data in enumerate(self._data):
            found = _calibrate_input(data, network.get_input(k), ranges.get(str(k)))
            if isinstance(found, Status):
                return found
            stats.append(found)
        network._calibration = stats
        return Status()


def _calibrate_input(data, tensor: ITensor, dim_range) -> dict | Status:
    """Run one input's CalibData from reset to OUT_OF_RANGE; its samples' min, max and count, or the refusal."""
    low, high, count = np.inf, -np.inf, 0
    if not data.reset().ok():
        return error(f"{tensor.get_tensor_name()}: reset failed")
    for _ in range(100000):
        status = data.next()
        if status.code == Code.OUT_OF_RANGE:
            break
        if not status.ok():
            return status
        sample, shape = data.get_sample(), data.get_shape().GetDims()
        if not isinstance(sample, np.ndarray) or sample.dtype != NUMPY[data.get_data_type()] or \
                list(sample.shape) != shape or data.get_data_type() != tensor.get_data_type():
            return error(f"{tensor.get_tensor_name()}: a calibration sample is "
                         f"{getattr(sample, 'dtype', type(sample).__name__)} {list(getattr(sample, 'shape', []))}, "
                         f"not {data.get_data_type().name} {shape} for the input's {tensor.get_data_type().name}")
        problem = _shape_problem(shape, tensor.get_dimension().GetDims(), dim_range)
        if problem:
            return error(f"{tensor.get_tensor_name()}: calibration sample {shape}: {problem}")
        low, high, count = min(low, float(sample.min())), max(high, float(sample.max())), count + shape[0]
    if not count:
        return error(f"{tensor.get_tensor_name()}: no calibration sample")
    return {"min": low, "max": high, "samples": count}


def _shape_problem(got: list[int], want: list[int], dim_range) -> str:
    if len(got) != len(want):
        return f"rank {len(got)}, the input has rank {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        if dim_range and not dim_range["min"][k] <= g <= dim_range["max"][k]:
            return f"dim {k} is {g}, outside the range {dim_range['min'][k]}..{dim_range['max'][k]}"
        if not dim_range and w >= 0 and g != w:
            return f"dim {k} is {g}, the input has {w}"
    return ""


class Builder:
    def build_model(self, name: str, network: Network, config: BuilderConfig) -> Model | None:
        mode = os.environ.get("FAKE_MM_MODE", "")
        if mode == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if mode == "hang":
            time.sleep(3600)
        if mode == "fail":
            print("[MMERROR] forced failure (FAKE_MM_MODE=fail)", file=sys.stderr, flush=True)
            return None
        record, problem = _model_record(network, config)
        if problem:
            print(f"[MMERROR] build_model {name}: {problem}", file=sys.stderr, flush=True)
            return None
        return Model._built(record)


def _model_record(network: Network, config: BuilderConfig) -> tuple[dict, str]:
    items = config._items
    precision = items.get("precision_config", {}).get("precision_mode", "force_float32")
    if precision.startswith("qint") and network._calibration is None and "custom_ranges" not in items:
        return {}, f"{precision} needs calibration (Calibrator.calibrate) or custom_ranges"
    mutable = bool(items.get("graph_shape_mutable", False))
    inputs = []
    for k, tensor in enumerate(network._inputs):
        dims, bounds = tensor.get_dimension().GetDims(), items.get("dim_range", {}).get(str(k)) if mutable else None
        if bounds is not None:
            lo, hi, fixed = bounds["min"], bounds["max"], tensor._model_dims
            if len(lo) != len(fixed) or any(m != -1 and not a == b == m for m, a, b in zip(fixed, lo, hi)):
                return {}, f"dim_range {k} {bounds} does not fit input {tensor.get_tensor_name()} {fixed}"
            dims = [a if a == b else -1 for a, b in zip(lo, hi)]
        elif -1 in dims:
            return {}, (f"input {k} ({tensor.get_tensor_name()}) has dims {dims}: a static build needs every dim, "
                        "a mutable one a dim_range for this input")
        bn = items.get("insert_bn_before_firstnode", {}).get(str(k))
        inputs.append({"name": tensor.get_tensor_name(), "dims": dims, "range": bounds, "bn": bn,
                       "dtype": "UINT8" if bn else tensor.get_data_type().name})
    return {"onnx": network._onnx, "precision": precision, "mlu_archs": list(config.mlu_archs),
            "graph_shape_mutable": mutable, "inputs": inputs, "calibration": network._calibration}, ""
