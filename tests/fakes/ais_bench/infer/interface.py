"""Fake `ais_bench.infer.interface.InferSession`, running the ".om" with ONNX Runtime on the CPU.

The ".om" is either an ONNX file renamed to .om (static: its dims; a symbolic dim stays -1), or the
placeholder that tests/fakes/atc.py writes (`FAKE-OM` + a JSON record of the build): then the ONNX named
by its `--model` argument runs with the recorded inputs (shape, dtype, layout, AIPP) and batch gears.

Two generations of the Python API, chosen by FAKE_AIS_BENCH_VERSION (see ais_bench/__init__.py):
  standalone  Ascend/tools ais-bench_workload/tool/ais_bench (git 9d6da90, 2023-06-10), interface.py:
              `infer(feeds, mode)` accepts any mode and sets nothing for it (only dymshape/dymdims call a
              setter), `sumary()` whose exec_time_list holds ms, `finalize()`;
  ait-*       mjlovesz/sync-ait ait/components/benchmark/ais_bench/infer/interface.py (tags AIT-6.0.RC2.001,
              AIT-6.0.RC3.001, master c432ed56): `infer` dispatches on mode (static -> set_staticbatch,
              dymbatch -> set_dynamic_batchsize(dim 0 of the feed)), anything else is refused;
              `summary()` whose exec_time_list holds (start, end) pairs, `free_resource()`.
Both have `set_dynamic_batchsize` and `run(feeds, out_array)` (what the CLI calls).

The aclruntime behaviour it keeps (backend/base/module/ModelInfer/ModelInferenceProcessor.cpp and
model_process.cpp, both generations):
  * a tensor's `size` is aclmdlGetInputSizeByIndex: for a batch-gear model the largest gear's bytes;
    `realsize` starts equal and `set_dynamic_batchsize(b)` scales it to gear b for inputs with a -1 dim;
  * `set_dynamic_batchsize` refuses a gear the model was not built with ("the dymBatch parameter is not
    correct") and a model without gears ("the dynamic_batch_size parameter is not specified for model
    conversion");
  * `run` checks each feed's byte size against `realsize` ("Check i:0 name:image in size:.. needsize:..
    not match") and nothing else: the bytes are read in the om input's dtype and layout (no conversion);
  * [the fake's own strictness; the device outcome is not documented] a gear model run with no gear set
    (after `set_staticbatch`, or never set) is refused.
AIPP (`--insert_op_conf`, record from the fake ATC): the input is uint8 NHWC as the .om presents it; the
fake applies what the AIPP doc (hicann/ge AIPP/config_file_template.md, normalization_config.md) says:
R<->B swap first when rbuv_swap_switch, then (v - mean_chn - min_chn) * var_reci_chn with fp16 constants
and an fp16 result, then NCHW float32 into the ONNX. Crop, padding, colour-space conversion, resize,
rotation and formats other than RGB888_U8 are refused at load (not modelled). `--dynamic_dims` models are
refused too.
"""

from __future__ import annotations

import enum
import json
import os
import time

import numpy as np

GENERATIONS = ("standalone", "ait-6.0.RC2", "ait-6.0.RC3")
AIPP_MODELLED = {"aipp_mode", "related_input_rank", "related_input_name", "input_format", "src_image_size_w",
                 "src_image_size_h", "rbuv_swap_switch", *(f"{k}_{c}" for k in ("mean_chn", "min_chn", "var_reci_chn")
                                                          for c in range(4))}
ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
               "tensor(int32)": np.int32, "tensor(uint8)": np.uint8}
AIPP_OFF = {"crop": False, "padding": False, "csc_switch": False, "resize": False, "rotation_angle": 0,
            "ax_swap_switch": False, "single_line_mode": False}


def generation() -> str:
    value = os.environ.get("FAKE_AIS_BENCH_VERSION", "ait-6.0.RC3")
    if value not in GENERATIONS:
        raise RuntimeError(f"FAKE_AIS_BENCH_VERSION={value}: expected one of {GENERATIONS}")
    return value


class dtype(enum.Enum):  # aclruntime exposes an enum named like this
    float32 = 0
    float16 = 1
    int8 = 2
    int32 = 3
    uint8 = 4
    int64 = 9


class _Tensor:
    def __init__(self, name, shape, datatype, size, realsize):
        self.name, self.shape, self.datatype = name, list(shape), datatype
        self.size, self.realsize = size, realsize


class _Summary:
    def __init__(self, times):
        self.exec_time_list = times


class _Input:
    """One .om input: name, shape (-1 = gear batch or dynamic), numpy dtype, AIPP block or None."""

    def __init__(self, name, shape, np_dtype, aipp=None):
        self.name, self.shape, self.dtype, self.aipp = name, [int(d) for d in shape], np.dtype(np_dtype), aipp

    def nbytes(self, batch):
        dims = [batch if d < 0 and k == 0 else d for k, d in enumerate(self.shape)]
        return 0 if any(d < 0 for d in dims) else int(np.prod(dims)) * self.dtype.itemsize


class InferSession:
    """The session of the generation FAKE_AIS_BENCH_VERSION names (a subclass below)."""

    def __new__(cls, *args, **kwargs):
        if cls is InferSession:
            cls = _StandaloneSession if generation() == "standalone" else _AitSession
        return super().__new__(cls)

    def __init__(self, device_id, model_path, acl_json_path=None, debug=False, loop=1):
        import onnxruntime as ort

        if not str(model_path).endswith(".om"):
            raise RuntimeError(f"model path:{model_path} is not an om file")
        self.device_id, self.loop = device_id, loop
        onnx_path, record = _read_om(model_path)
        self._session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self._inputs = _om_inputs(self._session, record)
        self._onnx_dtypes = {i.name: ONNX_DTYPES.get(i.type, np.float32) for i in self._session.get_inputs()}
        self._gears = [int(g) for g in record.get("dynamic_batch_size") or []]
        self._gear = None
        self.exec_times: list = []

    # -- descriptors ----------------------------------------------------------------------------
    def get_inputs(self):
        top = max(self._gears) if self._gears else 1
        return [_Tensor(i.name, i.shape, dtype[i.dtype.name], i.nbytes(top), i.nbytes(self._gear or top))
                for i in self._inputs]

    def get_outputs(self):
        return [_Tensor(o.name, [d if isinstance(d, int) else -1 for d in o.shape], dtype.float32, 0, 0)
                for o in self._session.get_outputs()]

    # -- gears ----------------------------------------------------------------------------------
    def set_staticbatch(self):
        self._gear = None

    def set_dynamic_batchsize(self, batch):
        if not self._gears:
            raise RuntimeError("the dynamic_batch_size parameter is not specified for model conversion")
        if int(batch) not in self._gears:
            raise RuntimeError(f"the dymBatch parameter is not correct: {batch} (model gears {self._gears})")
        self._gear = int(batch)

    # -- running --------------------------------------------------------------------------------
    def run(self, feeds, out_array=False):
        if len(feeds) != len(self._inputs):
            raise RuntimeError(f"intensors size:{len(feeds)} need size:{len(self._inputs)} not match")
        batch = self._gear or (max(self._gears) if self._gears else 1)
        raws = [np.ascontiguousarray(feed) for feed in feeds]
        for k, (meta, raw) in enumerate(zip(self._inputs, raws)):
            need = meta.nbytes(batch) or raw.nbytes  # a dynamic-shape input takes what it gets
            if raw.nbytes != need:
                raise RuntimeError(f"Check i:{k} name:{meta.name} in size:{raw.nbytes} needsize:{need} not match")
        if self._gears and self._gear is None:
            raise RuntimeError("[fake] a batch-gear model run without a gear: call set_dynamic_batchsize first")
        arrays = {meta.name: _device_input(meta, raw, batch).astype(self._onnx_dtypes[meta.name], copy=False)
                  for meta, raw in zip(self._inputs, raws)}
        start = time.perf_counter()
        out = self._session.run(None, arrays)
        end = time.perf_counter()
        self._record_time(start * 1e3, end * 1e3)
        return out

    def convert_tensors_to_host(self, tensors):
        pass

    def reset(self):
        self.exec_times = []

    reset_sumaryinfo = reset

    def _record_time(self, start_ms, end_ms):
        raise NotImplementedError


class _StandaloneSession(InferSession):
    """Ascend/tools interface.py: `infer` ignores `mode` (dymbatch sets nothing), `sumary()` in ms, `finalize`."""

    def infer(self, feeds, mode="static", custom_sizes=100000):
        return self.run([np.asarray(f) for f in feeds], out_array=True)

    def sumary(self):
        return _Summary(list(self.exec_times))

    def finalize(self):
        self._session = None

    def _record_time(self, start_ms, end_ms):
        self.exec_times.append(end_ms - start_ms)


class _AitSession(InferSession):
    """sync-ait interface.py: `infer` prepares by mode, `summary()` in (start, end) pairs, `free_resource`."""

    def infer(self, feeds, mode="static", custom_sizes=100000, out_array=True):
        feeds = [np.ascontiguousarray(f) for f in feeds]
        if mode == "static":
            self.set_staticbatch()
        elif mode == "dymbatch":
            self._dymbatch_prepare([f.shape for f in feeds])
        elif mode in ("dymhw", "dymdims", "dymshape"):
            raise RuntimeError(f"[fake] infer mode {mode} is not modelled")
        else:
            raise RuntimeError(f'wrong infer_mode:{mode}, only support "static","dymbatch","dymhw", '
                               '"dymdims","dymshape"')
        return self.run(feeds, out_array)

    def _dymbatch_prepare(self, shapes):
        if len(shapes) != len(self._inputs):
            raise RuntimeError("input datas and intensors nums not matched!")
        for shape, meta in zip(shapes, self._inputs):
            for want, dim in zip(meta.shape, shape):
                if want < 0:
                    self.set_dynamic_batchsize(dim)
                    return
                if want != dim:
                    raise RuntimeError("input datas and intensors dim not matched!")
        raise RuntimeError("not a dymbatch model!")

    def summary(self):
        return _Summary(list(self.exec_times))

    def free_resource(self):
        self._session = None

    def _record_time(self, start_ms, end_ms):
        self.exec_times.append((start_ms, end_ms))


def om_input_names(model_path) -> list[str]:
    """The .om's input names without loading a session (the record's, else the ONNX graph's)."""
    onnx_path, record = _read_om(model_path)
    if "inputs" in record:
        return list(record["inputs"])
    import onnx

    graph = onnx.load(onnx_path, load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in weights]


def _read_om(model_path):
    """(the ONNX it runs, the fake ATC's build record or {} for an ONNX named .om)."""
    with open(model_path, "rb") as f:
        if f.read(8) != b"FAKE-OM\n":
            return str(model_path), {}
        record = json.loads(f.readline())
    if record.get("dynamic_dims"):
        raise RuntimeError("[fake] --dynamic_dims models are not modelled")
    return _model_arg(record["argv"]), record


def _om_inputs(session, record) -> list[_Input]:
    """The inputs as the .om presents them: the fake ATC's record, else the ONNX's own."""
    if "inputs" not in record:
        shapes = record.get("input_shape") or {}
        return [_Input(i.name, shapes.get(i.name) or [d if isinstance(d, int) else -1 for d in i.shape],
                       np.dtype(ONNX_DTYPES.get(i.type, np.float32)).name) for i in session.get_inputs()]
    inputs = []
    for name, spec in record["inputs"].items():
        aipp = spec.get("aipp")
        if aipp is not None:
            _check_aipp_modelled(aipp)
        inputs.append(_Input(name, [d if isinstance(d, int) else -1 for d in spec["shape"]], spec["dtype"], aipp))
    return inputs


def _check_aipp_modelled(block):
    unknown = sorted(k for k in block if k not in AIPP_MODELLED and k not in AIPP_OFF)
    switched_on = sorted(k for k, off in AIPP_OFF.items() if block.get(k, off) != off)
    if block.get("aipp_mode") != "static" or block.get("input_format") != "RGB888_U8" or unknown or switched_on:
        raise RuntimeError(f"[fake] AIPP {block.get('aipp_mode')} {block.get('input_format')} with "
                           f"{unknown + switched_on} is not modelled (static RGB888_U8 swap + normalisation only)")


def _device_input(meta, raw, batch):
    """The bytes as the device reads them (the om dtype and layout); AIPP makes them fp16 NCHW."""
    shape = [batch if d < 0 and k == 0 else d for k, d in enumerate(meta.shape)]
    if any(d < 0 for d in shape):  # dynamic shape: take the feed's own shape
        shape = list(raw.shape)
    data = np.frombuffer(raw.tobytes(), meta.dtype).reshape(shape)
    if meta.aipp is None:
        return data
    return _aipp(meta.aipp, data)


def _aipp(block, pixels):
    """Static AIPP on uint8 NHWC RGB888: swap, then (v - mean_chn - min_chn) * var_reci_chn in fp16."""
    if block.get("rbuv_swap_switch"):
        pixels = pixels[..., ::-1]
    half = np.float16
    mean = np.array([block.get(f"mean_chn_{c}", 0) for c in range(3)], half)
    low = np.array([block.get(f"min_chn_{c}", 0.0) for c in range(3)], half)
    scale = np.array([block.get(f"var_reci_chn_{c}", 1.0) for c in range(3)], half)
    out = ((pixels.astype(half) - mean - low) * scale).astype(half)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _model_arg(argv) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
        if arg == "--model":
            return argv[i + 1]
    raise RuntimeError("fake om record has no --model")
