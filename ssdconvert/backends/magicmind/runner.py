"""How MagicMind runs: in-process through the MagicMind Python runtime, batch by batch like every
runner (so `infer` writes the same ais_bench layout); `bench` falls back to Cambricon's `mm_run`
(magicmind/mm_run.py) where this Python cannot import the runtime.

The runtime calls, as Cambricon's own samples make them [verified: Cambricon/magicmind_cloud
`buildin/python_common/mm_runner.py`, `buildin/cv/detection/ssd_caffe/infer_python/infer.py`,
`buildin/cv/classification/resnet50_onnx/infer_python/infer.py`; model metadata getters in
`buildin/python_common/model_process.py`]:

    import magicmind.python.runtime as mm
    model = mm.Model(); model.deserialize_from_file(path)       -> Status (.ok())
    with mm.System() as system: system.device_count()
    dev = mm.Device(); dev.id = n; dev.active()                  -> Status
    econfig = mm.Model.EngineConfig(); econfig.device_type = "MLU"
    engine = model.create_i_engine(econfig)                      (None on failure)
    context = engine.create_i_context(); queue = dev.create_queue()
    inputs = context.create_inputs(); inputs[i].from_numpy(array); inputs[i].to(dev)
    outputs = []; context.enqueue(inputs, outputs, queue)        -> Status; queue.sync() -> Status
    outputs[i].asnumpy()
    model.get_input_names() / get_input_dimensions() (Dims, .GetDims()) / get_input_data_types()
    (mm.DataType.FLOAT32, ...), and the same for outputs

[inferred, not run on an MLU]: -1 marks a mutable dimension of a shape-mutable model, whose
input shape follows the array given to from_numpy; the compute time here is the host wall time
of enqueue + queue.sync (the runtime has no per-call device timer in these samples).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Mapping

import numpy as np

from ssdconvert.backends.base import Runner, RunnerError, RunOptions, dim_or_none
from stageio.tensor import TensorSpec

RUNTIME = "magicmind.python.runtime"
# mm.DataType member names -> numpy (the build tool's dtype names: model_process.py PARAM_DATA_TYPE_2_MM)
DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "UINT8": "uint8", "INT8": "int8", "INT16": "int16",
          "INT32": "int32", "INT64": "int64", "UINT16": "uint16", "UINT32": "uint32", "BOOL": "bool"}


def runtime_missing() -> str | None:
    """Why this Python cannot import the MagicMind runtime, or None."""
    try:
        if importlib.util.find_spec(RUNTIME) is not None:
            return None
    except (ImportError, ValueError):
        pass
    return (f"the MagicMind Python runtime ({RUNTIME}) is not importable: install the magicmind wheel of the "
            "MagicMind release (or run in Cambricon's MagicMind container) and source the Neuware environment")


def runtime_version() -> str:
    try:
        return importlib.metadata.version("magicmind")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module("magicmind"), "__version__", "?"))


def _ok(status) -> bool:
    return bool(status.ok()) if hasattr(status, "ok") else bool(status)


class MagicMindRunner(Runner):
    """Runs a MagicMind model on one MLU with the runtime's engine, context and queue."""

    name = "magicmind"

    def __init__(self, model: str | Path, *, device: int = 0, batch: int | None = None):
        super().__init__(model)
        self.device = device
        self.batch = batch
        self._stack: contextlib.ExitStack | None = None
        self._dev = self._context = self._queue = None
        self._tensors: list = []

    def _activate(self) -> None:
        why = runtime_missing()
        if why:
            raise RunnerError(why)
        mm = importlib.import_module(RUNTIME)
        model = mm.Model()
        status = model.deserialize_from_file(str(self.model))
        if not _ok(status):
            raise RunnerError(f"MagicMind cannot load {self.model}: {status}")
        stack = contextlib.ExitStack()
        try:
            system = stack.enter_context(mm.System())
            count = system.device_count()
            if self.device >= count:
                raise RunnerError(f"MLU {self.device} does not exist here ({count} visible; check `cnmon` and "
                                  "MLU_VISIBLE_DEVICES)")
            dev = mm.Device()
            dev.id = self.device
            status = dev.active()
            if not _ok(status):
                raise RunnerError(f"cannot activate MLU {self.device}: {status}")
            econfig = mm.Model.EngineConfig()
            econfig.device_type = "MLU"
            engine = model.create_i_engine(econfig)
            if engine is None:
                raise RunnerError(f"MagicMind cannot create an engine for {self.model.name} on MLU {self.device} "
                                  "(built for another MLU architecture?)")
            context = engine.create_i_context()
            queue = dev.create_queue()
            if context is None or queue is None:
                raise RunnerError(f"MagicMind cannot create a context and queue on MLU {self.device}")
        except BaseException:
            stack.close()
            raise
        self._stack, self._model, self._engine = stack, model, engine
        self._dev, self._context, self._queue = dev, context, queue
        self._tensors = context.create_inputs()
        self.inputs = _metas(model.get_input_names(), model.get_input_dimensions(), model.get_input_data_types())
        self.outputs = _metas(model.get_output_names(), model.get_output_dimensions(), model.get_output_data_types())
        if self.batch and self.inputs and self.inputs[0].batch is None:  # shape-mutable: run the batch asked for
            self.inputs = [TensorSpec(m.name, m.shape, m.dtype, batch=self.batch) for m in self.inputs]

    def _infer(self, feeds: Mapping[str, np.ndarray]):
        for tensor, meta in zip(self._tensors, self.inputs):
            tensor.from_numpy(np.ascontiguousarray(feeds[meta.name]))
            tensor.to(self._dev)
        outputs: list = []
        start = self._clock()
        status = self._context.enqueue(self._tensors, outputs, self._queue)
        if not _ok(status):
            raise RunnerError(f"MagicMind enqueue failed on {self.model.name}: {status}")
        status = self._queue.sync()
        if not _ok(status):
            raise RunnerError(f"MagicMind queue sync failed on {self.model.name}: {status}")
        ms = (self._clock() - start) * 1e3
        return [tensor.asnumpy() for tensor in outputs], ms

    def _deactivate(self) -> None:
        self._tensors, self._context, self._queue, self._engine, self._model = [], None, None, None, None
        self._dev = None
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def versions(self) -> dict[str, str]:
        return {"magicmind": runtime_version(), "device": f"MLU {self.device}"}


def _metas(names, dims, dtypes) -> list[TensorSpec]:
    metas = []
    for name, dim, dtype in zip(names, dims, dtypes):
        shape = dim.GetDims() if hasattr(dim, "GetDims") else list(dim)
        kind = str(getattr(dtype, "name", dtype)).split(".")[-1].upper()
        metas.append(TensorSpec.batched(str(name), [dim_or_none(d) for d in shape], DTYPES.get(kind, kind.lower())))
    return metas


def make_runner(model: Path, options: RunOptions) -> MagicMindRunner:
    if not options.device.isdigit():
        raise RunnerError(f"--device for MagicMind is an MLU id (0, 1, ...), not {options.device!r}")
    return MagicMindRunner(model, device=int(options.device), batch=options.batch)


def time_batch(model: Path, batch: int, ctx, tool: str | None = None):
    """Bench with `mm_run` (`tool`, else PATH) where this Python cannot import the runtime; None lets the runner
    time it."""
    if runtime_missing() is None:
        return None
    from ssdconvert.backends.magicmind.mm_run import bench_row

    return bench_row(model, batch, ctx, tool)


def runtime_label(versions: Mapping[str, str]) -> str:
    return f"MagicMind {versions.get('magicmind', '')} {versions.get('device', 'MLU')}".replace("  ", " ").strip()
