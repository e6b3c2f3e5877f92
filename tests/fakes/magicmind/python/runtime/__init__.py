"""Fake `magicmind.python.runtime`: the calls Cambricon's samples make, computed with ONNX Runtime.

Put tests/fakes on sys.path (and PYTHONPATH for subprocesses); then `import magicmind.python.runtime as mm`
gives this module, and `from magicmind.python.runtime.parser import Parser` its parser.

Sources: Cambricon/magicmind_cloud release v1.7 (git dc085c19, 2023-11-28), no MagicMind wheel:
  * build half (_builder.py, parser.py): buildin/python_common/framework_parser.py (Parser(ModelKind.kOnnx).parse),
    model_process.py (Network, ITensor set_dimension/get_dimension/get_data_type, BuilderConfig.parse_from_string
    and its JSON keys, mlu_archs, Builder.build_model, Model.serialize_to_file), common_calibrate.py (Calibrator,
    set_quantization_algorithm, QuantizationAlgorithm, calibrate on an active device), the gen_model/calibrator.py
    CalibData classes (CalibDataInterface; get_shape, get_data_type, get_sample, next -> Status(Code.OUT_OF_RANGE)
    at the end, reset; Status.OK());
  * run half (_runtime.py): buildin/python_common/mm_runner.py, model_process.py, buildin/cv/.../infer_python/
    infer.py: Model (deserialize_from_file, get_input/output_names, _dimensions, _data_types, get_input/output_num,
    create_i_engine), Model.EngineConfig (device_type), engine.create_i_context, context.create_inputs / enqueue,
    System (device_count; a context manager), Device (id, active, create_queue), queue.sync, tensor from_numpy /
    to / asnumpy, Dims (GetDims, GetDimValue), DataType, Status (ok).
No public source shows the runtime's own messages; the `[MMERROR]` wording is the fake's.

The "model" is what the fake Builder serialises: `FAKE-MAGICMIND` + a JSON record (the ONNX, the precision, each
input's dims with -1 where its own dim_range lets it vary, its dtype and range, the calibration's min/max/count
per input). The run half runs that ONNX with ONNX Runtime on the CPU, so outputs are real tensors; a
force_float16 build rounds the outputs through float16. qint* builds run in float (only the calibration is
modelled, not int8 arithmetic).

It refuses what the real runtime would, the way the samples show refusals (a Status that is not ok, None
from a factory, or an exception); the build half's refusals are listed in _builder.py. Run half:
  * deserialize_from_file on a file that is not a model: Status not ok;
  * metadata getters and create_i_engine before a successful deserialize: empty lists / None;
  * Device.active() for an id that is not visible (FAKE_MLU_COUNT, default 1): not ok;
  * work on a device that is not the thread's current one (device 0 until Device.active() makes
    another current) [inferred from the samples, which run on device 0 without active()]:
    create_queue -> None, tensor.to(dev) -> not ok;
  * enqueue with an input that has no data, the wrong dtype, or a shape the model does not take
    (static dims; a mutable dim outside that input's own range): not ok;
  * asnumpy() on an output whose queue was not synced yet: RuntimeError.

Failure injection: FAKE_MAGICMIND_DRIFT=<float> adds that value to output 0 (a device that
computes wrong, for accuracy-gate tests).
"""

from magicmind.python.runtime._builder import (Builder, BuilderConfig, CalibDataInterface, Calibrator, ITensor,
                                                ModelKind, Network, QuantizationAlgorithm)
from magicmind.python.runtime._runtime import Context, Device, Engine, Model, Queue, System, Tensor
from magicmind.python.runtime._types import NUMPY as _NUMPY
from magicmind.python.runtime._types import Code, DataType, Dims, Status

__all__ = ["Builder", "BuilderConfig", "CalibDataInterface", "Calibrator", "Code", "Context", "DataType", "Device",
           "Dims", "Engine", "ITensor", "Model", "ModelKind", "Network", "QuantizationAlgorithm", "Queue", "Status",
           "System", "Tensor", "_NUMPY"]
