"""ssdconvert's MagicMind build script: ONNX -> MagicMind model, INT8 calibrated on preprocessed bins.

Run it with the Python that has Cambricon's `magicmind` wheel (`ssdconvert cnnl` does, with
$SSDCONVERT_MAGICMIND_PYTHON, else this interpreter if it imports magicmind, else python3); it imports
nothing from ssdconvert. Its flags are Cambricon's, spelled as Cambricon/magicmind_cloud
buildin/python_common/build_param.py spells them (release v1.7, git dc085c19), so the same command line
without the calibration flags also drives a magicmind_cloud gen_model.py. Its calls are the ones
Cambricon's samples make (buildin/python_common/framework_parser.py OnnxParser, model_process.py
config_network / get_builder_config / build_and_serialize and their BuilderConfig JSON keys,
common_calibrate.py, the gen_model/calibrator.py CalibData classes):

    network = mm.Network(); Parser(mm.ModelKind.kOnnx).parse(network, onnx)
    network.get_input(i).set_dimension(mm.Dims(dims))               --input_dims, --batch_size
    config = mm.BuilderConfig(); config.parse_from_string(json)      precision, archs, cluster_num, dim_range ...
    mm.Calibrator([calib_data per input]).calibrate(network, config) on an active MLU (qint* precisions)
    mm.Builder().build_model(name, network, config).serialize_to_file(path)

Why a script of its own: in magicmind_cloud v1.7 each network's gen_model.py calibrates from its own dataset
arguments, and nothing there reads build_param.py's `--calibration`, `--calibration_data_path` or
`--file_list` (model_process.py's is_rand_calib_or_fake_calib, which would, is never called). Here they
are read: `--calibration_data_path DIR --file_list LIST [LIST ...]`, one list per model input, each line
a file name under DIR holding one sample raw (C order, the network input's dtype, the --input_dims shape
without the batch axis; what `ssdconvert preprocess` writes). Samples are batched at the build batch, the
last batch padded with copies of its first sample. A qint* build without data is refused: no random or
fixed ranges. [Not run on an MLU: checked against the fake runtime in tests/fakes/magicmind]

Exit codes: 0 with the model written at --magicmind_model; 1 with an `error: ...` line; 2 for a bad
command line (argparse).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

PRECISIONS = ("force_float32", "force_float16", "qint16_mixed_float16", "qint8_mixed_float16",
              "qint16_mixed_float32", "qint8_mixed_float32")
ARCHS = ("mtp_220", "mtp_270", "mtp_290", "mtp_372", "tp_322", "mtp_592")
# model_process.py get_default_cluster_num_of_arches
DEFAULT_CLUSTERS = {"mtp_220": [1], "mtp_270": [1], "mtp_290": [1], "mtp_372": [2, 6, 8], "tp_322": [1], "mtp_592": [1]}
NUMPY_TYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "UINT8": "uint8", "INT8": "int8", "INT16": "int16",
               "INT32": "int32", "INT64": "int64", "UINT16": "uint16", "UINT32": "uint32", "BOOL": "bool"}
BOOL = ("true", "false")


class BuildError(Exception):
    """What stops the build, said in one line."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="build_model.py", allow_abbrev=False,
                                description="ONNX -> MagicMind model (build_param.py flag spellings).")
    p.add_argument("--onnx", required=True, help="ONNX file.")
    p.add_argument("--magicmind_model", default="./model", help="Model file, written exactly there.")
    p.add_argument("--precision", choices=PRECISIONS, default="force_float32")
    p.add_argument("--mlu_arch", choices=ARCHS, nargs="+", default=["mtp_372"])
    p.add_argument("--cluster_num", type=int, nargs="+", action="append", help="One list per --mlu_arch.")
    p.add_argument("--input_dims", type=int, nargs="+", action="append", help="Once per input, in input order.")
    p.add_argument("--batch_size", type=int, nargs="+", help="One per input.")
    p.add_argument("--dynamic_shape", choices=BOOL, default="true")
    p.add_argument("--dim_range_min", type=int, nargs="+", action="append", help="Once per input (mutable shape).")
    p.add_argument("--dim_range_max", type=int, nargs="+", action="append", help="Once per input (mutable shape).")
    p.add_argument("--means", type=float, nargs="+", action="append",
                   help="Per-channel means, once per input from the first: a BN before the first node, uint8 input.")
    p.add_argument("--vars", type=float, nargs="+", action="append", help="Per-channel variances (std^2), with --means.")
    p.add_argument("--computation_preference", choices=("auto", "fast", "high_precision"), default="auto")
    p.add_argument("--type64to32_conversion", choices=BOOL, default="false")
    p.add_argument("--conv_scale_fold", choices=BOOL, default="false")
    p.add_argument("--calibration_data_path", help="Folder of the calibration samples (qint* precisions).")
    p.add_argument("--file_list", nargs="+", help="One list of sample files per input, names under the folder.")
    p.add_argument("--calibration_algo", choices=("linear", "eqnm"), default="linear")
    p.add_argument("--weight_quant_granularity", choices=("per_tensor", "per_axis"), default="per_tensor")
    p.add_argument("--activation_quant_algo", choices=("symmetric", "asymmetric"), default="symmetric")
    p.add_argument("--device_id", type=int, default=0, help="The MLU that calibrates.")
    return p


def check_arguments(args: argparse.Namespace) -> None:
    if (args.calibration_data_path is None) != (args.file_list is None):
        raise BuildError("--calibration_data_path and --file_list go together")
    if args.precision.startswith("qint") and args.file_list is None:
        raise BuildError(f"--precision {args.precision} calibrates: give --calibration_data_path and --file_list")
    if args.file_list is not None and not args.precision.startswith("qint"):
        raise BuildError(f"--file_list calibrates a qint* precision, not {args.precision}")
    if len(args.dim_range_min or []) != len(args.dim_range_max or []):
        raise BuildError("give --dim_range_min and --dim_range_max once each per input")
    if [len(m) for m in args.means or []] != [len(v) for v in args.vars or []]:
        raise BuildError("give --means and --vars together, once each per input, one value per channel")
    if args.dynamic_shape == "false" and args.dim_range_min:
        raise BuildError("--dim_range_min/max describe a mutable shape: they need --dynamic_shape true")
    if args.cluster_num and len(args.cluster_num) != len(args.mlu_arch):
        raise BuildError(f"give one --cluster_num per --mlu_arch ({len(args.mlu_arch)})")


def parse_onnx(mm, onnx: str):
    from magicmind.python.runtime.parser import Parser

    if not os.path.isfile(onnx):
        raise BuildError(f"--onnx {onnx}: no such file")
    network = mm.Network()
    status = Parser(mm.ModelKind.kOnnx).parse(network, onnx)
    if not status.ok():
        raise BuildError(f"MagicMind cannot parse {onnx}: {status}")
    return network


def configure_inputs(mm, network, args: argparse.Namespace) -> None:
    """model_process.py config_network: each input's dims, then its batch."""
    count = network.get_input_count()
    for flag, values in (("--input_dims", args.input_dims), ("--batch_size", args.batch_size)):
        if values is not None and len(values) != count:
            raise BuildError(f"the network has {count} input(s) but {flag} gives {len(values)}")
    for i in range(count):
        tensor = network.get_input(i)
        dims = list(args.input_dims[i]) if args.input_dims else tensor.get_dimension().GetDims()
        if args.batch_size and dims:
            dims[0] = args.batch_size[i]
        status = tensor.set_dimension(mm.Dims(dims))
        if not status.ok():
            raise BuildError(f"input {i} ({tensor.get_tensor_name()}) takes no dims {dims}: {status}")


def config_strings(args: argparse.Namespace) -> list[str]:
    """The BuilderConfig JSON of model_process.py get_builder_config, item by item."""
    clusters = args.cluster_num or [DEFAULT_CLUSTERS[a] for a in args.mlu_arch]
    items = [{"precision_config": {"precision_mode": args.precision}},
             {"archs": [{arch: list(c)} for arch, c in zip(args.mlu_arch, clusters)]}]
    if args.precision.startswith("qint"):
        items += [{"precision_config": {"weight_quant_granularity": args.weight_quant_granularity}},
                  {"precision_config": {"activation_quant_algo": args.activation_quant_algo}}]
    items.append({"graph_shape_mutable": args.dynamic_shape == "true"})
    if args.dynamic_shape == "true" and args.dim_range_min:
        items.append({"dim_range": {str(i): {"min": lo, "max": hi}
                                    for i, (lo, hi) in enumerate(zip(args.dim_range_min, args.dim_range_max))}})
    if args.means:  # model_process.py insert_bn_before_first_node: the input becomes UINT8
        items.append({"insert_bn_before_firstnode": {str(i): {"mean": m, "var": v}
                                                     for i, (m, v) in enumerate(zip(args.means, args.vars))}})
    items += [{"computation_preference": args.computation_preference},
              {"opt_config": {"type64to32_conversion": args.type64to32_conversion == "true"}},
              {"opt_config": {"conv_scale_fold": args.conv_scale_fold == "true"}}]
    return [json.dumps(item) for item in items]


def builder_config(mm, args: argparse.Namespace):
    config = mm.BuilderConfig()
    config.mlu_archs = list(args.mlu_arch)
    for text in config_strings(args):
        status = config.parse_from_string(text)
        if not status.ok():
            raise BuildError(f"MagicMind refused the build config {text}: {status}")
    return config


def read_list(path: str, folder: str) -> list[str]:
    if not os.path.isfile(path):
        raise BuildError(f"--file_list {path}: no such file")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise BuildError(f"--file_list {path} lists no file")
    files = [os.path.join(folder, name) for name in names]
    absent = next((f for f in files if not os.path.isfile(f)), None)
    if absent:
        raise BuildError(f"{absent} (listed in {path}) does not exist")
    return files


def calib_data_class(mm):
    """A CalibDataInterface over sample files, as magicmind_cloud's gen_model/calibrator.py classes are written."""
    import numpy as np

    class FileCalibData(mm.CalibDataInterface):
        def __init__(self, files: list[str], dims: list[int], data_type):
            super().__init__()
            self.files, self.dims, self.data_type = files, list(dims), data_type
            self.dtype = np.dtype(NUMPY_TYPES[data_type.name])
            self.sample, self.cursor = None, 0
            want = int(np.prod(self.dims[1:])) * self.dtype.itemsize
            wrong = next((f for f in files if os.path.getsize(f) != want), None)
            if wrong:  # before calibrating: an exception inside the calibrator's callbacks says less
                raise BuildError(f"{wrong} holds {os.path.getsize(wrong)} bytes; one sample of {self.dims[1:]} "
                                 f"{self.dtype.name} is {want}")

        def get_shape(self):
            return mm.Dims(self.dims)

        def get_data_type(self):
            return self.data_type

        def get_sample(self):
            return self.sample

        def next(self):
            if self.cursor >= len(self.files):
                return mm.Status(mm.Code.OUT_OF_RANGE, "Data end reached")
            chunk = self.files[self.cursor:self.cursor + self.dims[0]]
            chunk += [chunk[0]] * (self.dims[0] - len(chunk))  # the last batch padded with its first sample
            self.sample = np.ascontiguousarray(np.stack([self.read(f) for f in chunk]))
            self.cursor += self.dims[0]
            return mm.Status.OK()

        def read(self, path: str):
            return np.fromfile(path, dtype=self.dtype).reshape(self.dims[1:])

        def reset(self):
            self.sample, self.cursor = None, 0
            return mm.Status.OK()

    return FileCalibData


def calibrate(mm, network, config, args: argparse.Namespace) -> None:
    """common_calibrate.py: a Calibrator over one CalibData per input, its algorithm, an active MLU."""
    count = network.get_input_count()
    if len(args.file_list) != count:
        raise BuildError(f"the network has {count} input(s): give one --file_list per input, not {len(args.file_list)}")
    data_class = calib_data_class(mm)
    data = [data_class(read_list(listed, args.calibration_data_path), network.get_input(i).get_dimension().GetDims(),
                       network.get_input(i).get_data_type()) for i, listed in enumerate(args.file_list)]
    calibrator = mm.Calibrator(data)
    algorithms = {"linear": mm.QuantizationAlgorithm.LINEAR_ALGORITHM, "eqnm": mm.QuantizationAlgorithm.EQNM_ALGORITHM}
    if not calibrator.set_quantization_algorithm(algorithms[args.calibration_algo]).ok():
        raise BuildError(f"MagicMind refused the calibration algorithm {args.calibration_algo}")
    with mm.System() as system:
        if args.device_id >= system.device_count():
            raise BuildError(f"--device_id {args.device_id}: {system.device_count()} MLU(s) visible")
        device = mm.Device()
        device.id = args.device_id
        if not device.active().ok():
            raise BuildError(f"cannot activate MLU {args.device_id} for calibration")
        status = calibrator.calibrate(network, config)
    if not status.ok():
        raise BuildError(f"calibration failed: {status}")
    print(f"calibrated on {len(data[0].files)} sample(s) per input ({args.calibration_algo})", flush=True)


def build_and_serialize(mm, network, config, path: str) -> None:
    model = mm.Builder().build_model("ssdconvert", network, config)
    if model is None:
        raise BuildError("MagicMind could not build the model (its log above says why)")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    status = model.serialize_to_file(path)
    if not status.ok():
        raise BuildError(f"cannot write {path}: {status}")
    print(f"wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_arguments(args)
        try:
            import magicmind.python.runtime as mm
        except ImportError as exc:
            raise BuildError(f"this Python ({sys.executable}) cannot import Cambricon's magicmind wheel: {exc}") \
                from None
        network = parse_onnx(mm, args.onnx)
        configure_inputs(mm, network, args)
        config = builder_config(mm, args)
        if args.precision.startswith("qint"):
            calibrate(mm, network, config, args)
        build_and_serialize(mm, network, config, args.magicmind_model)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
