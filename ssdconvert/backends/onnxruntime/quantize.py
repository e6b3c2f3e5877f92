"""ONNX Runtime static INT8 quantization: QDQ, per-channel weights, calibrated on the preprocessed bins.

Read in the installed onnxruntime 1.31 (`onnxruntime.quantization`):
  * `quant_pre_process` (shape inference + graph optimisation) is the documented first step;
  * `quantize_static(..., quant_format=QDQ, per_channel, reduce_range, activation_type,
    weight_type, nodes_to_exclude, extra_options)`; per-channel QDQ writes DequantizeLinear with
    an `axis`, which needs opset >= 13, so an opset-11 export (what older ATC takes) is converted
    to 13 first (onnx.version_converter); `extra_options["CalibMaxIntermediateOutputs"]` makes
    MinMax calibration reduce ranges every few batches instead of keeping every activation of
    every calibration image in memory.
  * Its docstring ("Choosing parameters for CPU inference") recommends, on x86, U8 activations +
    S8 weights, with `reduce_range=True` on CPUs without VNNI; symmetric S8S8 on ARM.

Which types by default (`types="auto"`) was decided by measurement on the development machine (AMD
EPYC with AVX512-VNNI, 2 cores, onnxruntime 1.31, seeded ssd-resnet34, batch 1 and 8): S8S8 QDQ ran
at 1.1-1.2x the FP32 speed, U8S8 at 3.0-3.4x, with the same tensor agreement (docs/precision.md). So `auto` is U8S8 on x86 (with
reduce_range where the CPU lacks VNNI, said in the settings) and S8S8 elsewhere; `s8s8` (the
ONNX Runtime docs' general first choice), `u8s8` and `u8u8` are there to choose explicitly.

Which calibration by default (`calibration="percentile"`, 99.999) was decided by measurement on one
real model: STMicroelectronics' COCO-trained SSD-MobileNetV2-FPNLite 256x256, calibrated on 85 real
COCO images, scored on 43 COCO val2014 images (benchmarks/int8_real.py, results/int8_real.md): U8S8
per-channel with Percentile 99.999 gained +0.35 AP points over FP32 (SNR scores/offsets 43.0/23.0 dB,
2.0x the FP32 speed); MinMax lost -0.24 (41.2/19.7 dB); Entropy as quantize_static runs it keeps
128 histogram bins for 128 quantized ones, which is MinMax's ranges (-0.24). ONNX Runtime's
HistogramCalibrater fills each tensor's histogram from the first batch's range, so Percentile (and
Entropy) calibrate one image per batch (HISTOGRAM_BATCH): that is how the measured figures were taken.
"""

from __future__ import annotations

import contextlib

import platform
import tempfile
from pathlib import Path
from typing import Sequence

from ssdconvert.errors import SsdConvertError

TYPES = ("auto", "s8s8", "u8s8", "u8u8")
CALIBRATIONS = ("minmax", "percentile", "entropy")
DEFAULT_CALIBRATION = "percentile"
DEFAULT_PERCENTILE = 99.999
CALIBRATION_BATCH = 4  # MinMax
HISTOGRAM_BATCH = 1  # Percentile, Entropy (see the module doc)
STRIDE = 2  # calibration batches whose activations are held before they are reduced to ranges (memory bound)
PER_CHANNEL_OPSET = 13


def resolve_types(types: str, cpu) -> tuple[str, bool, str]:
    """(types, reduce_range, why) for `types` on this CPU (cpu: ssdconvert.cpu.CpuFeatures)."""
    if types not in TYPES:
        raise SsdConvertError(f"unknown ONNX Runtime INT8 types {types!r}; choose from {', '.join(TYPES)}")
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
    if types != "auto":
        reduce = x86 and not cpu.vnni and types != "s8s8"
        return types, reduce, f"{types} as asked" + (" (reduce_range: this CPU has no VNNI)" if reduce else "")
    if not x86:
        return "s8s8", False, "s8s8: not an x86 CPU (ONNX Runtime's advice for ARM)"
    if cpu.vnni:
        return "u8s8", False, "u8s8: x86 with VNNI (measured 3x the FP32 speed here, S8S8 about 1.1x)"
    return "u8s8", True, "u8s8 with reduce_range: x86 without VNNI (7-bit weights avoid 16-bit saturation)"


def calibration_options(calibration: str, percentile: float) -> tuple[object, dict, int, str]:
    """(ONNX Runtime CalibrationMethod, its extra_options, calibration batch, label for the record) of a
    `calibration` of CALIBRATIONS."""
    from onnxruntime.quantization import CalibrationMethod

    if calibration == "minmax":
        return CalibrationMethod.MinMax, {}, CALIBRATION_BATCH, "MinMax"
    if calibration == "entropy":
        return CalibrationMethod.Entropy, {}, HISTOGRAM_BATCH, "Entropy"
    if calibration != "percentile":
        raise SsdConvertError(f"unknown ONNX Runtime calibration {calibration!r}; choose from "
                              f"{', '.join(CALIBRATIONS)}")
    if not 0 < percentile <= 100:
        raise SsdConvertError(f"--percentile must be in (0, 100], not {percentile}")
    return (CalibrationMethod.Percentile, {"CalibPercentile": percentile}, HISTOGRAM_BATCH,
            f"Percentile {percentile:g}")


def quantize(onnx_path: Path, samples, output: Path, *, exclude: Sequence[str], ort_types: str, per_channel: bool,
             say, calibration: str = DEFAULT_CALIBRATION, percentile: float = DEFAULT_PERCENTILE) -> dict:
    """Write the QDQ INT8 model to `output` (an .onnx): `exclude`d nodes in float, `ort_types` (TYPES),
    per-channel or per-tensor weight scales, activation ranges by `calibration` (CALIBRATIONS; `percentile`
    for Percentile); return the settings used (for the record)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from ssdconvert.backends.onnxinfo import load_onnx
    from ssdconvert.backends.onnxruntime.runner import OnnxRuntimeRunner
    from ssdconvert.cpu import cpu_features

    types, reduce_range, why = resolve_types(ort_types, cpu_features())
    method, calib_extra, batch, method_label = calibration_options(calibration, percentile)
    quant = {"s": QuantType.QInt8, "u": QuantType.QUInt8}
    model = load_onnx(onnx_path)
    with OnnxRuntimeRunner(onnx_path) as probe:
        inputs = probe.inputs
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=output.parent) as tmp:
        staged = Path(tmp) / "model.onnx"
        if opset < PER_CHANNEL_OPSET and per_channel:
            say(f"converting opset {opset} -> {PER_CHANNEL_OPSET} (per-channel QDQ needs DequantizeLinear axis)")
            model = version_converter.convert_version(model, PER_CHANNEL_OPSET)
        onnx.save(model, str(staged))
        del model
        prepared = Path(tmp) / "prepared.onnx"
        symbolic = prepare(staged, prepared, say)
        check_exclusions(onnx.load(str(prepared), load_external_data=False), exclude)

        class Reader(CalibrationDataReader):
            """Calibration batches; ONNX Runtime reads them STRIDE at a time and reduces each stride's
            activations to ranges before the next (CalibStridedMinMax)."""

            def __init__(self):
                self.count = -(-len(samples) // batch)
                self.batches = iter(())

            def __len__(self):
                return self.count

            def set_range(self, start_index: int, end_index: int) -> None:
                part = samples.subset(range(start_index * batch, min(end_index * batch, len(samples))))
                self.batches = (feeds for _, feeds, _ in part.batches(inputs, batch))

            def get_next(self):
                return next(self.batches, None)

        reader = Reader()
        if method_label != "MinMax":
            reader.set_range(0, len(reader))  # histogram calibrators read the whole set at once
        say(f"calibrating on {len(samples)} images ({method_label}), quantizing {types} QDQ, "
            f"{'per-channel' if per_channel else 'per-tensor'} weights ...")
        quantize_static(str(prepared), str(output), reader, quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=reduce_range,
                        activation_type=quant[types[0]], weight_type=quant[types[2]],
                        nodes_to_exclude=list(exclude) or None, calibrate_method=method,
                        extra_options=calib_extra or {"CalibStridedMinMax": stride(len(reader))})
    return {"format": "QDQ", "types": types, "symbolic_shape_inference": symbolic, "types_why": why,
            "reduce_range": reduce_range,
            "per_channel": per_channel, "calibration": method_label, "calibration_batch": batch, "source_opset": opset,
            "excluded": list(exclude)}


def prepare(model: Path, prepared: Path, say) -> bool:
    """quant_pre_process (shape inference, graph optimisation) of `model` into `prepared`; True if ONNX Runtime's
    symbolic shape inference ran. It cannot complete on a graph whose shapes depend on data (Faster R-CNN's NMS,
    TopK over proposals: it raises "Incomplete symbolic shape inference"), and its docstring calls it most
    effective on transformers; then ONNX shape inference alone prepares the graph (skip_symbolic_shape), which
    still types every convolution a CNN's quantization needs, and the settings record it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    say("quant_pre_process (shape inference, graph optimisation) ...")
    # in the staging folder: a failing symbolic shape inference leaves sym_shape_infer_temp.onnx and its external
    # data file in the working directory (onnxruntime 1.2x)
    model, prepared = model.resolve(), prepared.resolve()  # relative paths would not survive the chdir
    with contextlib.chdir(prepared.parent):
        try:
            # auto_merge: a Resize with constant scales gets the batch symbol floor(1.0*N), which otherwise stops
            # inference at the Add joining it to an N-batch tensor (ssd-mobilenet-v2-fpnlite's FPN); merging equal
            # symbols changes nothing else
            quant_pre_process(str(model), str(prepared), auto_merge=True)
            return True
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises a bare Exception
            if "symbolic shape inference" not in str(exc).lower():
                raise
        say("note: symbolic shape inference cannot complete on this graph (shapes that depend on data, e.g. NMS); "
            "preparing it with ONNX shape inference only")
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
    return False


def stride(batches: int) -> int:
    """ONNX Runtime needs the batch count to be a multiple of the stride."""
    return STRIDE if batches % STRIDE == 0 else 1


def check_exclusions(model, exclude) -> None:
    """Every name to keep in float must be a node of the graph (a typo would silently quantize it)."""
    names = {n.name for n in model.graph.node}
    unknown = [n for n in exclude if n not in names]
    if unknown:
        convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
        raise SsdConvertError(f"--exclude {unknown[0]!r} is not a node of {model.graph.name or 'the model'}; "
                              f"its Conv nodes are e.g. {', '.join(convs[-4:])} ({len(convs)} in all)")
