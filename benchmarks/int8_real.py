"""INT8 on real data: which post-training quantization of the real ST SSD-MobileNetV2-FPNLite keeps COCO AP.

Everything runs on the data vendored in ssdconvert/realdata: the 43 COCO val2014 images scored with
pycocotools against their original annotations, INT8 calibrated on the 85 other images, and
STMicroelectronics' QDQ INT8 release of the model (its FP32 original is recovered with
`ssdconvert dequantize`). Rows: FP32 (ONNX Runtime, OpenVINO f32), the vendor's INT8 release on both
runtimes, and INT8 variants made the project's ways: ONNX Runtime static QDQ (the settings of
backends/onnxruntime/quantize.py, then calibration method, per-channel, U8S8/S8S8, reduce_range,
excluded nodes, calibration size) and NNCF for OpenVINO (backends/openvino/quantize.py's call, then
preset, bias correction, subset size, ignored scopes). Per row: COCO AP / AP50, the AP delta to FP32
on the same runtime, per-output SNR against FP32, and (for the rows named in THROUGHPUT) batch-8
throughput, FP32 and INT8 timed side by side in rounds (best of N, and the median ratio within a round: the
machine is shared).

Pipeline, each step as its reference does it:
  preprocess  ST's still-picture app (meta-st-x-linux-ai 6813080f, recipes-samples/object-detection/
              files/stai-mpu/stai_mpu_object_detection.py): `cv2.resize(np.array(Image.open(f)),
              (256, 256))` (bilinear, RGB uint8 NHWC, no EXIF transpose); a non-RGB image (one grayscale
              calibration image) is converted to RGB first, where the app would stop.
  decode      ST's rule (same commit, files/stai-mpu/ssd_mobilenet_pp.py, decode_predictions): box =
              anchor corners + offset x (anchor w, h, w, h), no variances; scores are the model's softmax,
              column 0 background.
  NMS         TF Object Detection API values for SSD-MobileNetV2-FPNLite (tensorflow/models,
              research/object_detection/configs/tf2/ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config
              at 5245161c: batch_non_max_suppression score_threshold 1e-8, iou_threshold 0.6,
              max_detections_per_class 100, max_total_detections 100; use_class_agnostic_nms defaults to
              false in protos/post_processing.proto) with TF's semantics (core/post_processing.py at
              0492e5bb, multiclass_non_max_suppression: per class score > threshold, greedy NMS suppressing
              IoU > threshold (tensorflow/tensorflow core/kernels/image/non_max_suppression_op.cc at
              0698f751; zero-area boxes have IoU 0), then all classes sorted by score, clipped to the image
              and zero-area boxes pruned, top 100). tf_nms was checked against a plain per-class loop.
  AP          pycocotools COCOeval (bbox) on instances_val2014_43.json; score column c is the c-th COCO
              category in id order.

    python benchmarks/int8_real.py                          # every variant, throughput, writes results
    python benchmarks/int8_real.py --only ort-default,nncf-project --rounds 3 --no-write
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ssdconvert import realdata

RESULTS = Path(__file__).resolve().parent / "results"
INPUT = "serving_default_input_1:0"
SCORES, OFFSETS, ANCHORS = "StatefulPartitionedCall:2", "StatefulPartitionedCall:1", "StatefulPartitionedCall:0"
SIZE = 256
SCORE_THRESHOLD, IOU_THRESHOLD, MAX_PER_CLASS, MAX_TOTAL = 1e-8, 0.6, 100, 100
BATCH = 8


# --- data --------------------------------------------------------------------------------------------

def load_image(path: Path) -> np.ndarray:
    """ST's app: cv2.resize(np.array(PIL image), (256, 256)), bilinear; RGB uint8 HWC."""
    import cv2
    from PIL import Image

    with Image.open(path) as img:
        pixels = np.array(img if img.mode == "RGB" else img.convert("RGB"))
    return cv2.resize(pixels, (SIZE, SIZE))


def load_images(paths) -> np.ndarray:
    return np.stack([load_image(p) for p in paths])


# --- decode, NMS, COCO AP -------------------------------------------------------------------------------

def decode(offsets: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """ST's decode: corners + offset * (w, h, w, h) of the anchor; (..., 4) xmin, ymin, xmax, ymax."""
    size = np.concatenate([anchors[..., 2:] - anchors[..., :2]] * 2, axis=-1)
    return anchors + offsets * size


def iou_with(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """TF's IOU: corners normalised by min/max, 0 when either box has no area."""
    lo, hi = np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])
    blo, bhi = np.minimum(box[:2], box[2:]), np.maximum(box[:2], box[2:])
    area, barea = np.prod(hi - lo, axis=1), np.prod(bhi - blo)
    inter = np.prod(np.clip(np.minimum(hi, bhi) - np.maximum(lo, blo), 0, None), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area + barea - inter)
    return np.where((area <= 0) | (barea <= 0), 0.0, iou)


def clipped(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes, 0.0, 1.0)


def tf_nms(boxes: np.ndarray, scores: np.ndarray) -> list[tuple[int, float, np.ndarray]]:
    """One image's detections (class column, score, clipped box), TF OD API multiclass NMS (module doc).

    Exact shortcut: a candidate scoring below the 100th best kept (non-pruned) detection so far can
    never reach the final top 100, so each class stops there and classes are visited by best score."""
    kept: list[tuple[float, int, np.ndarray]] = []
    bound = -math.inf
    foreground = scores[:, 1:]
    for c in np.argsort(-foreground.max(axis=0), kind="stable"):
        column = foreground[:, c]
        if column.max() < bound:
            break
        order = np.flatnonzero((column > SCORE_THRESHOLD) & (column >= bound))
        order = order[np.lexsort((order, -column[order]))]
        picked = 0
        while len(order) and picked < MAX_PER_CLASS and column[order[0]] >= bound:
            best = order[0]
            box = clipped(boxes[best])
            if np.prod(box[2:] - box[:2]) > 0:
                kept.append((float(column[best]), int(c) + 1, box))
            picked += 1
            rest = order[1:]
            order = rest[~(iou_with(boxes[best], boxes[rest]) > IOU_THRESHOLD)]
        if len(kept) >= MAX_TOTAL:
            kept.sort(key=lambda k: -k[0])
            del kept[MAX_TOTAL:]
            bound = kept[-1][0]
    kept.sort(key=lambda k: -k[0])
    return [(label, score, box) for score, label, box in kept[:MAX_TOTAL]]


@dataclass
class Coco:
    """The 43 images' annotations and what COCO rows need: image sizes and the column -> category map."""

    annotation: Path = realdata.VAL_ANNOTATION
    gt: object = None
    images: list = field(default_factory=list)
    categories: list[int] = field(default_factory=list)

    def __post_init__(self):
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            self.gt = COCO(str(self.annotation))
        self.images = sorted(self.gt.dataset["images"], key=lambda im: im["file_name"])
        self.categories = sorted(self.gt.getCatIds())

    @property
    def paths(self) -> list[Path]:
        return [realdata.VAL_IMAGES / im["file_name"] for im in self.images]

    def rows(self, outputs: dict[str, np.ndarray]) -> list[dict]:
        """COCO result rows of every image from the model's three outputs (images in self.images order)."""
        boxes = decode(outputs[OFFSETS], outputs[ANCHORS])
        rows = []
        for im, b, s in zip(self.images, boxes, outputs[SCORES]):
            scale = np.array([im["width"], im["height"]] * 2, np.float64)
            for label, score, box in tf_nms(b, s):
                x0, y0, x1, y1 = box * scale
                rows.append({"image_id": im["id"], "category_id": self.categories[label - 1],
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
        return rows

    def stats(self, rows: list[dict]) -> list[float]:
        """COCOeval bbox stats (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl)."""
        from pycocotools.cocoeval import COCOeval

        if not rows:
            return [0.0] * 12
        with contextlib.redirect_stdout(io.StringIO()):
            evaluation = COCOeval(self.gt, self.gt.loadRes(rows), "bbox")
            evaluation.params.imgIds = [im["id"] for im in self.images]
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return [float(v) for v in evaluation.stats]


# --- running a model ------------------------------------------------------------------------------------

class Runtime:
    """A model on ONNX Runtime or OpenVINO (CPU, f32 inference precision: INT8 layers stay INT8, the rest
    is not silently run in bf16 on a BF16 CPU), fed uint8 NHWC batches of BATCH (the last one padded)."""

    def __init__(self, runtime: str, model: Path):
        self.runtime, self.model = runtime, model
        if runtime == "onnxruntime":
            import onnxruntime as ort

            session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            self._run = lambda x: dict(zip(names, session.run(None, {INPUT: x})))
        else:
            import openvino as ov

            core = ov.Core()
            net = core.read_model(str(model))
            net.reshape({net.inputs[0].any_name: [BATCH, SIZE, SIZE, 3]})
            compiled = core.compile_model(net, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            request = compiled.create_infer_request()
            outputs = {name: compiled.output(name) for name in (SCORES, OFFSETS, ANCHORS)}

            def run(x: np.ndarray) -> dict[str, np.ndarray]:
                results = request.infer({0: x})
                return {name: results[port].copy() for name, port in outputs.items()}

            self._run = run

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        parts = []
        for start in range(0, len(images), BATCH):
            chunk = images[start:start + BATCH]
            padded = np.concatenate([chunk, np.repeat(chunk[:1], BATCH - len(chunk), 0)]) if len(chunk) < BATCH \
                else chunk
            out = self._run(np.ascontiguousarray(padded))
            parts.append({k: v[:len(chunk)] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def time_batch(self, batch: np.ndarray, seconds: float) -> float:
        """Images per second over repeated calls at BATCH for about `seconds`."""
        self._run(batch)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or count < 3:
            self._run(batch)
            count += 1
        return count * len(batch) / (time.perf_counter() - start)


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    from ssdconvert.agreement import tensor_figures

    return tensor_figures("", reference, candidate).snr_db


# --- the models -----------------------------------------------------------------------------------------

def float_model(work: Path) -> Path:
    """The FP32 original of the vendor's INT8 release (`ssdconvert dequantize`)."""
    from ssdconvert.dequantize import dequantize_model

    out = work / "ssd_mobilenet_v2_fpnlite_fp32.onnx"
    if not out.is_file():
        report = dequantize_model(realdata.ST_SSD_INT8, out)
        print("\n".join(report.lines()[:2]))
    return out


def head_nodes(onnx_path: Path, output: str) -> list[str]:
    """The Conv nodes whose results reach `output` through layout ops only (that head's last convs)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    producer = {o: n for n in graph.node for o in n.output}
    found, todo = [], [output]
    while todo:
        node = producer.get(todo.pop())
        if node is None:
            continue
        if node.op_type == "Conv":
            found.append(node.name)
        elif node.op_type in ("Concat", "Reshape", "Transpose", "DequantizeLinear", "QuantizeLinear", "Softmax"):
            todo += list(node.input[:len(node.input) if node.op_type == "Concat" else 1])
    return sorted(found)


def op_names(onnx_path: Path, *types: str) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node if n.op_type in types]


class ArraySamples:
    """Calibration images shaped as the project's quantizers read a SampleSet (len, subset, batches), so
    backends/onnxruntime/quantize.py and backends/openvino/quantize.py run unchanged on them."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices) -> "ArraySamples":
        return ArraySamples(self.images[list(indices)])

    def batches(self, inputs, batch: int):
        for start in range(0, len(self.images), batch):
            chunk = self.images[start:start + batch]
            yield [], {inputs[0].name: chunk}, len(chunk)


def evenly(images: np.ndarray, count: int) -> np.ndarray:
    """`count` images evenly spread over the set (as SampleSet.pick chooses them)."""
    if count >= len(images):
        return images
    return images[np.unique(np.linspace(0, len(images) - 1, count).round().astype(int))]


# --- INT8 recipes ---------------------------------------------------------------------------------------

def exclusions(model: Path, groups: tuple[str, ...]) -> list[str]:
    """Node names of symbolic groups: box-head / class-head (the last convs of each head), softmax, concat."""
    names: list[str] = []
    for group in groups:
        names += {"box-head": lambda: head_nodes(model, OFFSETS), "class-head": lambda: head_nodes(model, SCORES),
                  "softmax": lambda: op_names(model, "Softmax"), "concat": lambda: op_names(model, "Concat"),
                  "first-conv": lambda: op_names(model, "Conv")[:1]}[group]()
    return names


def ort_project(fp32: Path, calib: np.ndarray, out: Path) -> Path:
    """ONNX Runtime INT8 exactly as `ssdconvert quantize --backend onnxruntime` makes it today."""
    from ssdconvert.backends.onnxruntime.quantize import quantize
    from ssdconvert.quantize import QuantizeOptions

    # On "Incomplete symbolic shape inference" onnxruntime's SymbolicShapeInference saves
    # sym_shape_infer_temp.onnx (+ a 12 MB external-data file) into the current directory: keep it in `work`.
    with contextlib.chdir(out.parent):
        settings = quantize(fp32, ArraySamples(calib), out, QuantizeOptions(), lambda s: None)
    print(f"    project settings: {settings}")
    return out


def ort_static(types: str = "u8s8", per_channel: bool = True, reduce_range: bool = False, method: str = "MinMax",
               exclude: tuple[str, ...] = (), extra: dict | None = None, op_types: tuple[str, ...] = (),
               calibrator: dict | None = None) -> Callable:
    """A prototype of backends/onnxruntime/quantize.py with the options it does not expose. `calibrator`:
    options quantize_static cannot pass to its calibrator (onnxruntime 1.31 maps only CalibTensorRangeSymmetric,
    CalibMovingAverage(Constant), CalibMaxIntermediateOutputs and CalibPercentile), injected by wrapping
    onnxruntime.quantization.quantize.create_calibrator."""

    def make(fp32: Path, calib: np.ndarray, out: Path) -> Path:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process

        prepared = out.with_name(out.stem + "_prepared.onnx")
        # auto_merge: ONNX Runtime's symbolic shape inference gives the Resize of the FPN a new batch
        # symbol and, without merging, stops with "Incomplete symbolic shape inference" (the project's
        # quantize calls quant_pre_process without it, and fails on this model; see the ort-project row).
        quant_pre_process(str(fp32), str(prepared), auto_merge=True)

        class Reader(CalibrationDataReader):
            def __init__(self):  # one image a batch: the histogram calibrators stack equal-shaped batches
                self.items = iter([{INPUT: calib[i:i + 1]} for i in range(len(calib))])

            def get_next(self):
                return next(self.items, None)

        kind = {"s": QuantType.QInt8, "u": QuantType.QUInt8}
        with calibrator_options(calibrator or {}):
            quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            reduce_range=reduce_range, activation_type=kind[types[0]], weight_type=kind[types[2]],
                            calibrate_method=getattr(CalibrationMethod, method),
                            nodes_to_exclude=exclusions(prepared, exclude) or None, extra_options=extra or {},
                            op_types_to_quantize=list(op_types) or None)
        prepared.unlink()
        return out

    return make


@contextlib.contextmanager
def calibrator_options(options: dict):
    """Calibrator options that quantize_static does not forward (e.g. the Entropy histogram's num_bins)."""
    import importlib
    from unittest import mock

    module = importlib.import_module("onnxruntime.quantization.quantize")  # the package re-exports a function
    original = module.create_calibrator

    def create(*args, **kwargs):
        kwargs["extra_options"] = {**(kwargs.get("extra_options") or {}), **options}
        return original(*args, **kwargs)

    with mock.patch.object(module, "create_calibrator", create) if options else contextlib.nullcontext():
        yield


def nncf_onnx(preset: str = "performance", fast_bias_correction: bool = True) -> Callable:
    """NNCF's post-training quantization applied to the ONNX model itself: a QDQ ONNX any runtime runs."""

    def make(fp32: Path, calib: np.ndarray, out: Path) -> Path:
        import logging

        import nncf
        import onnx

        logging.getLogger("nncf").setLevel(logging.WARNING)
        quantized = nncf.quantize(onnx.load(str(fp32)), nncf.Dataset([{INPUT: calib[i:i + 1]} for i in
                                                                       range(len(calib))]),
                                  preset=getattr(nncf.QuantizationPreset, preset.upper()), subset_size=len(calib),
                                  fast_bias_correction=fast_bias_correction)
        onnx.save(quantized, str(out))
        return out

    return make


def nncf_project(fp32: Path, calib: np.ndarray, out: Path) -> Path:
    """OpenVINO INT8 exactly as `ssdconvert quantize --backend openvino` makes it today (NNCF defaults)."""
    from ssdconvert.backends.openvino.quantize import quantize
    from ssdconvert.quantize import QuantizeOptions

    xml = out.with_suffix(".xml")
    settings = quantize(fp32, ArraySamples(calib), xml, QuantizeOptions(), lambda s: None)
    print(f"    project settings: {settings}")
    return xml


def nncf_ptq(preset: str = "performance", fast_bias_correction: bool = True, ignore: tuple[str, ...] = (),
             ignore_types: tuple[str, ...] = (), advanced: Callable | None = None) -> Callable:
    """A prototype of backends/openvino/quantize.py with the nncf.quantize options it does not expose."""

    def make(fp32: Path, calib: np.ndarray, out: Path) -> Path:
        import logging

        import nncf
        import openvino as ov

        logging.getLogger("nncf").setLevel(logging.WARNING)
        model = ov.convert_model(str(fp32))
        names = [f"{n}/WithoutBiases" for n in exclusions(fp32, ignore)]
        scope = nncf.IgnoredScope(names=names, types=list(ignore_types)) if names or ignore_types else None
        quantized = nncf.quantize(model, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]),
                                  preset=getattr(nncf.QuantizationPreset, preset.upper()), subset_size=len(calib),
                                  fast_bias_correction=fast_bias_correction, ignored_scope=scope,
                                  advanced_parameters=advanced() if advanced else None)
        xml = out.with_suffix(".xml")
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
        return xml

    return make


@dataclass(frozen=True)
class Variant:
    name: str
    runtime: str  # onnxruntime | openvino
    what: str
    make: Callable | None = None  # (fp32, calibration images, output stem) -> model; None: a fixed model
    model: Path | None = None  # the fixed model (None with make: the FP32 original)
    calib: int = 85  # calibration images (evenly spread over the 85)


def ort(name: str, what: str, calib: int = 85, **options) -> Variant:
    return Variant(name, "onnxruntime", what, ort_static(**options), calib=calib)


def ov(name: str, what: str, calib: int = 85, **options) -> Variant:
    return Variant(name, "openvino", what, nncf_ptq(**options), calib=calib)


def mean_quantile():
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MEAN_QUANTILE)


VARIANTS = (
    Variant("fp32", "onnxruntime", "FP32 original (`ssdconvert dequantize` of the vendor release)"),
    Variant("vendor-int8", "onnxruntime", "ST's QDQ INT8 release as shipped", model=realdata.ST_SSD_INT8),
    Variant("ort-project", "onnxruntime", "`quantize --backend onnxruntime` today: U8S8, per-channel, MinMax",
            ort_project),
    ort("ort-default", "the project's settings (U8S8, per-channel, MinMax), quant_pre_process with auto_merge"),
    ort("ort-s8s8", "S8S8 per-channel MinMax", types="s8s8"),
    ort("ort-per-tensor", "U8S8 per-tensor weights, MinMax", per_channel=False),
    ort("ort-reduce-range", "U8S8 per-channel, reduce_range (7-bit weights)", reduce_range=True),
    ort("ort-entropy", "U8S8 per-channel, Entropy as quantize_static runs it (128/128 bins: MinMax's ranges)",
        method="Entropy"),
    ort("ort-entropy-2048", "U8S8 per-channel, Entropy with 2048 histogram bins, 128 quantized (TensorRT's KL)",
        method="Entropy", calibrator={"num_bins": 2048, "num_quantized_bins": 128}),
    ort("ort-pct-99.99", "U8S8 per-channel, Percentile 99.99", method="Percentile",
        extra={"CalibPercentile": 99.99}),
    ort("ort-pct-99.999", "U8S8 per-channel, Percentile 99.999", method="Percentile",
        extra={"CalibPercentile": 99.999}),
    ort("ort-pct-99.9", "U8S8 per-channel, Percentile 99.9", method="Percentile", extra={"CalibPercentile": 99.9}),
    ort("ort-pct-99.999-calib-32", "U8S8 per-channel, Percentile 99.999 on 32 images", calib=32,
        method="Percentile", extra={"CalibPercentile": 99.999}),
    ort("ort-calib-16", "U8S8 per-channel MinMax on 16 images", calib=16),
    ort("ort-calib-32", "U8S8 per-channel MinMax on 32 images", calib=32),
    ort("ort-conv-only", "U8S8 per-channel MinMax, only Conv quantized (Add, Resize, Concat, Softmax in float)",
        op_types=("Conv",)),
    ort("ort-conv-add", "U8S8 per-channel MinMax, only Conv and Add quantized", op_types=("Conv", "Add")),
    Variant("nncf-onnx", "onnxruntime", "NNCF PERFORMANCE on the ONNX model (QDQ ONNX)", nncf_onnx()),
    Variant("nncf-onnx-mixed", "onnxruntime", "NNCF MIXED on the ONNX model (QDQ ONNX)", nncf_onnx("mixed")),
    ort("ort-no-box-head", "U8S8 per-channel MinMax, box-offset head convs in float", exclude=("box-head",)),
    ort("ort-no-heads", "U8S8 per-channel MinMax, both heads' last convs in float",
        exclude=("box-head", "class-head")),
    ort("ort-no-softmax-concat", "U8S8 per-channel MinMax, Softmax and Concat in float",
        exclude=("softmax", "concat")),
    ort("ort-no-box-head-softmax-concat", "U8S8 per-channel MinMax, box head + Softmax + Concat in float",
        exclude=("box-head", "softmax", "concat")),
    Variant("fp32", "openvino", "FP32 original, f32 inference precision"),
    Variant("vendor-int8", "openvino", "ST's QDQ INT8 release as shipped (OpenVINO runs the QDQ graph in INT8)",
            model=realdata.ST_SSD_INT8),
    Variant("nncf-project", "openvino", "`quantize --backend openvino` today: NNCF defaults (PERFORMANCE)",
            nncf_project),
    ov("nncf-mixed", "NNCF preset MIXED (asymmetric activations)", preset="mixed"),
    ov("nncf-bias-correction", "NNCF PERFORMANCE, full bias correction", fast_bias_correction=False),
    ov("nncf-mixed-bias-correction", "NNCF MIXED, full bias correction", preset="mixed", fast_bias_correction=False),
    ov("nncf-calib-16", "NNCF PERFORMANCE on 16 images", calib=16),
    ov("nncf-calib-32", "NNCF PERFORMANCE on 32 images", calib=32),
    ov("nncf-mean-quantile", "NNCF PERFORMANCE, MEAN_QUANTILE activation ranges", advanced=mean_quantile),
    ov("nncf-no-box-head", "NNCF PERFORMANCE, box-offset head convs in float", ignore=("box-head",)),
    ov("nncf-no-heads", "NNCF PERFORMANCE, both heads' last convs in float", ignore=("box-head", "class-head")),
    ov("nncf-no-softmax-concat", "NNCF PERFORMANCE, Softmax and Concat in float", ignore_types=("Softmax", "Concat")),
    Variant("ort-pct-99.999", "openvino", "the ONNX Runtime Percentile 99.999 QDQ model, run by OpenVINO",
            ort_static(method="Percentile", extra={"CalibPercentile": 99.999})),
    Variant("nncf-onnx", "openvino", "the NNCF QDQ ONNX model, run by OpenVINO", nncf_onnx()),
)


# Timed side by side at batch 8 (besides each runtime's best-AP row).
THROUGHPUT = {("onnxruntime", n) for n in ("fp32", "vendor-int8", "ort-default", "ort-s8s8", "ort-pct-99.999",
                                           "nncf-onnx")} | \
             {("openvino", n) for n in ("fp32", "vendor-int8", "nncf-project", "nncf-mixed", "ort-pct-99.999",
                                        "nncf-onnx")}


# --- measuring ------------------------------------------------------------------------------------------

def build(variant: Variant, fp32: Path, calib: np.ndarray, work: Path) -> tuple[Path, float]:
    """The variant's model (cached in `work` by name) and the seconds it took to make."""
    if variant.make is None:
        return variant.model or fp32, 0.0
    stem = work / variant.name.replace(".", "_")
    for suffix in (".onnx", ".xml"):
        if stem.with_suffix(suffix).is_file():
            return stem.with_suffix(suffix), math.nan
    started = time.perf_counter()
    model = variant.make(fp32, evenly(calib, variant.calib), stem.with_suffix(".onnx"))
    return model, time.perf_counter() - started


def evaluate(variant: Variant, model: Path, coco: Coco, images: np.ndarray, reference: dict | None) -> dict:
    outputs = Runtime(variant.runtime, model)(images)
    stats = coco.stats(coco.rows(outputs))
    snr = {name: snr_db(reference[name], outputs[name]) for name in (SCORES, OFFSETS)} if reference else {}
    return {"ap": stats[0], "ap50": stats[1], "ap75": stats[2], "ar100": stats[8], "snr_db": snr,
            "outputs": outputs if variant.name == "fp32" else None}


def throughput(entries: list[tuple[str, str, Path]], batch: np.ndarray, rounds: int, seconds: float) -> dict:
    """Images/s per (runtime, name) in every round; each round times every model once, in alternating order."""
    runners = {(rt, name): Runtime(rt, model) for rt, name, model in entries}
    samples: dict = {key: [] for key in runners}
    for r in range(rounds):
        for key, runner in (runners.items() if r % 2 == 0 else reversed(list(runners.items()))):
            samples[key].append(runner.time_batch(batch, seconds))
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{rt} {n} {v[-1]:.1f}" for (rt, n), v in samples.items()))
    return samples


def speed_figures(samples: dict, runtime: str, name: str) -> dict:
    """Best of the rounds, and the median over rounds of the ratio to the same round's FP32 (paired in time,
    so less sensitive to the other jobs on the machine than a ratio of two bests)."""
    mine, base = samples.get((runtime, name)), samples.get((runtime, "fp32"))
    if not mine:
        return {}
    figures = {"throughput": max(mine), "throughput_rounds": mine}
    if base:
        figures["paired_ratio"] = float(np.median(np.array(mine) / np.array(base)))
    return figures


# --- report ---------------------------------------------------------------------------------------------

def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("onnxruntime", "openvino", "nncf", "onnx", "pycocotools", "opencv-python-headless",
                                    "pillow")}


def markdown(result: dict) -> str:
    lines = ["# INT8 on real data: ST SSD-MobileNetV2-FPNLite 256x256, 43 COCO val2014 images", "",
             f"CPU: {result['cpu']}. Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
             "", "AP = COCO AP@[.5:.95] (pycocotools) of the 43 images against their original annotations; "
             "ΔAP in AP points against FP32 on the same runtime; SNR of the INT8 scores / box offsets against "
             "FP32 on the same images; throughput = images/s at batch 8, best of "
             f"{result['rounds']} rounds that time every model in turn (order alternating), FP32 and INT8 side by "
             "side (OpenVINO at f32 inference precision); the paired ratio is the median over rounds of INT8 / "
             "FP32 within the same round. Pipeline: ST's resize and decode, TF OD API NMS values (see "
             "benchmarks/int8_real.py).", ""]
    from ssdconvert.formatting import markdown_table

    table = []
    for row in result["rows"]:
        if "error" in row:
            table.append((row["runtime"], row["name"], row["what"], f"fails: {row['error']}", *[""] * 8))
            continue
        speed = row.get("throughput")
        base = result["fp32_throughput"].get(row["runtime"])
        snr = row["snr_db"]
        table.append((row["runtime"], row["name"], row["what"], f"{row['ap']:.4f}", f"{row['ap50']:.4f}",
                      f"{row['delta_ap_points']:+.2f}", f"{snr.get(SCORES, math.inf):.1f}" if snr else "–",
                      f"{snr.get(OFFSETS, math.inf):.1f}" if snr else "–",
                      row["calibration_images"] if row.get("built") else "–",
                      f"{speed:.1f}" if speed else "", f"{speed / base:.2f}x" if speed and base else "",
                      f"{row['paired_ratio']:.2f}x" if "paired_ratio" in row else ""))
    lines += summary_lines(result["rows"]) + [""]
    lines.append(markdown_table(["runtime", "variant", "what", "AP", "AP50", "ΔAP", "SNR scores dB",
                                 "SNR offsets dB", "calib", "img/s bs8 (best)", "best vs best FP32",
                                 "median paired vs FP32"], table))
    return "\n".join(lines) + "\n"


def summary_lines(rows: list[dict]) -> list[str]:
    """Per runtime: the INT8 variants that beat the vendor's release on AP and on both outputs' SNR."""
    lines = []
    for runtime in dict.fromkeys(r["runtime"] for r in rows):
        mine = [r for r in rows if r["runtime"] == runtime and "error" not in r]
        vendor = next((r for r in mine if r["name"] == "vendor-int8"), None)
        if vendor is None:
            continue
        better = [r for r in mine if r["name"] not in ("fp32", "vendor-int8") and r["ap"] > vendor["ap"]
                  and all(r["snr_db"][k] > vendor["snr_db"][k] for k in (SCORES, OFFSETS))]
        shown = ", ".join(f"{r['name']} ({r['delta_ap_points']:+.2f}, {r['snr_db'][SCORES]:.1f}/"
                          f"{r['snr_db'][OFFSETS]:.1f} dB" + (f", {r['paired_ratio']:.2f}x" if "paired_ratio" in r
                                                              else "") + ")" for r in better)
        lines.append(f"- {runtime}: the vendor release is {vendor['delta_ap_points']:+.2f} AP points from FP32 "
                     f"(SNR {vendor['snr_db'][SCORES]:.1f}/{vendor['snr_db'][OFFSETS]:.1f} dB); better on AP and "
                     f"both SNRs: {shown or 'none'}.")
    return lines


def pick_throughput_rows(rows: list[dict]) -> list[dict]:
    """The rows named in THROUGHPUT and, per runtime, the INT8 row with the best AP."""
    chosen = []
    for runtime in dict.fromkeys(r["runtime"] for r in rows):
        mine = [r for r in rows if r["runtime"] == runtime and "error" not in r]
        best = max((r for r in mine if r["name"] != "fp32"), key=lambda r: r["ap"], default=None)
        chosen += [r for r in mine if (runtime, r["name"]) in THROUGHPUT or r is best]
    return chosen


def main() -> None:
    from ssdconvert.cpu import cpu_features

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated variant names (fp32 always runs)")
    parser.add_argument("--work", default=None, help="keep the models here (reused by name on the next run)")
    parser.add_argument("--rounds", type=int, default=10, help="throughput rounds (best of)")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per model per round")
    parser.add_argument("--no-write", action="store_true", help="print only (a partial run)")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    print(f"CPU: {cpu_features().describe()}")
    with tempfile.TemporaryDirectory(prefix="int8-real-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = measure([v for v in VARIANTS if not only or v.name in only | {"fp32"}], work, args.rounds,
                         args.seconds)
    result["cpu"] = cpu_features().describe()
    text = markdown(result)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "int8_real.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        (RESULTS / "int8_real.md").write_text(text)


def measure(variants: list[Variant], work: Path, rounds: int, seconds: float) -> dict:
    fp32 = float_model(work)
    coco = Coco()
    images = load_images(coco.paths)
    calib = load_images(realdata.images(realdata.CALIBRATION_IMAGES))
    rows, references, fp32_ap, models = [], {}, {}, {}
    for variant in variants:
        print(f"{variant.runtime} {variant.name}: {variant.what}")
        try:
            model, seconds_built = build(variant, fp32, calib, work)
        except Exception as exc:  # a recipe the toolchain refuses is a result too
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"  FAILED: {error}")
            rows.append({"name": variant.name, "runtime": variant.runtime, "what": variant.what, "error": error})
            continue
        found = evaluate(variant, model, coco, images, references.get(variant.runtime))
        outputs = found.pop("outputs")
        if variant.name == "fp32":
            references[variant.runtime], fp32_ap[variant.runtime] = outputs, found["ap"]
        row = {"name": variant.name, "runtime": variant.runtime, "what": variant.what, "model": model.name,
               "built": variant.make is not None, "calibration_images": min(variant.calib, len(calib)),
               "build_seconds": seconds_built, **found,
               "delta_ap_points": 100 * (found["ap"] - fp32_ap.get(variant.runtime, found["ap"]))}
        models[(variant.runtime, variant.name)] = model
        rows.append(row)
        print(f"  AP {row['ap']:.4f} (AP50 {row['ap50']:.4f}), {row['delta_ap_points']:+.2f} points vs FP32, "
              + ", ".join(f"SNR {k.split(':')[1]} {v:.1f} dB" for k, v in row["snr_db"].items()))
    timed = pick_throughput_rows(rows)
    print(f"throughput at batch {BATCH}: " + ", ".join(f"{r['runtime']} {r['name']}" for r in timed))
    samples = throughput([(r["runtime"], r["name"], models[(r["runtime"], r["name"])]) for r in timed],
                         images[:BATCH], rounds, seconds) if rounds else {}
    for row in rows:
        row.update(speed_figures(samples, row["runtime"], row["name"]))
    return {"rows": rows, "versions": versions(), "rounds": rounds, "batch": BATCH, "seconds_per_round": seconds,
            "fp32_ap": fp32_ap, "fp32_throughput": {rt: max(samples.get((rt, "fp32"), [0]) or [0]) for rt in fp32_ap},
            "postprocess": {"score_threshold": SCORE_THRESHOLD, "iou_threshold": IOU_THRESHOLD,
                            "max_detections_per_class": MAX_PER_CLASS, "max_total_detections": MAX_TOTAL,
                            "per_class": True}}


if __name__ == "__main__":
    main()
