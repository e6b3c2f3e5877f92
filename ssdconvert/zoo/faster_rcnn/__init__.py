"""Faster R-CNN R-101-FPN 1x (maskrcnn-benchmark `e2e_faster_rcnn_R_101_FPN_1x.pth`, box AP 39.1).

One module per job, torch imported only by the modules that need it:

    config     the reference's test configuration (plain data)
    network    the modules, key-compatible with maskrcnn-benchmark checkpoints
    boxes      legacy +1/-1 geometry: anchors, coder, clip, IoU, NMS, LevelMapper, ROIAlign
    reference  the reference test path, per image and data-dependent (the ground truth)
    onnx_ops   NonMaxSuppression and RoiAlign as autograd Functions with ONNX symbolics
    fixed      the exportable fixed-size detector (dynamic batch, K detections per image)
    split      dense model + box-head model with proposal selection and RoIAlign on the host
    layouts    checkpoint key layout and cell-anchor check
    export     ModelSpec.exporter: the fixed or split variant for ssdconvert.export's one path
    graphs     the graphs it exports (fixed detector, dense and box-head models)
    validation its comparator: detections matched with the reference's, judged against float64
    demo       demo weights (calibrated random weights) and synthetic test images
    flops      multiply-accumulates per canvas (plain Python)

This module registers the ModelSpec; nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import replace

from postprocess.heads import MASKRCNN_BENCHMARK_RCNN
from preprocess.resize_pad import DEFAULT_CANVAS, IM_INFO, ResizePadTransform, exact_mode, for_canvas, resized_size
from preprocess.spec import EXACT_CANVAS
from ssdconvert.zoo import register
from ssdconvert.zoo.faster_rcnn.export import FASTER_RCNN
from ssdconvert.zoo.faster_rcnn.flops import flops_per_image
from ssdconvert.zoo.spec import ModelSpec
from stageio.tensor import TensorSpec

NAME = "faster-rcnn-r101-fpn"
TYPICAL_IMAGE = (640, 480)  # (width, height): the most common val2017 size, for the exact mode's FLOPs


def build():
    from ssdconvert.zoo.faster_rcnn.network import FasterRCNN

    return FasterRCNN()


def to_native_layout(state: dict) -> dict:
    from ssdconvert.zoo.faster_rcnn.layouts import to_native_layout as native

    return native(state)


def demo_weights(model, seed: int) -> None:
    from ssdconvert.zoo.faster_rcnn.demo import demo_weights as calibrate

    calibrate(model, seed)


def example_inputs(spec, batch: int):
    from ssdconvert.zoo.faster_rcnn.validation import example_inputs as make

    return make(spec, batch)


def split_stage(descriptor: dict):
    from ssdconvert.zoo.faster_rcnn.split import SplitStage

    return SplitStage(descriptor)


def at_canvas(spec: ModelSpec, canvas: tuple[int, int] | str) -> ModelSpec:
    """The spec for a (height, width) canvas: input shape, transform (preprocess.resize_pad.for_canvas) and
    FLOPs follow it. EXACT_CANVAS: the reference's rule with each image padded to its own multiple of 32
    (input 3 x ? x ?; FLOPs of a 640x480 COCO image, 800x1088 padded)."""
    if canvas == EXACT_CANVAS:
        transform = exact_mode()
        typical = transform.canvas_for(resized_size(*TYPICAL_IMAGE, transform.min_size, transform.max_size))
        return replace(spec, input=replace(spec.input, shape=transform.input_shape), transform=transform,
                       flops_per_image=flops_per_image(typical))
    transform = for_canvas(canvas)
    return replace(spec, input=replace(spec.input, shape=transform.input_shape),
                   transform=transform, flops_per_image=flops_per_image(transform.canvas))


SPEC = register(
    ModelSpec(
        name=NAME,
        description="Faster R-CNN R-101-FPN 1x, maskrcnn-benchmark (e2e_faster_rcnn_R_101_FPN_1x.pth); two inputs, "
                    "100 final detections per image",
        build=build,
        input=TensorSpec("images", (3, *DEFAULT_CANVAS)),
        extra_inputs=(IM_INFO.tensor,),
        transform=ResizePadTransform(),
        head=MASKRCNN_BENCHMARK_RCNN,
        to_native_layout=to_native_layout,
        flops_per_image=flops_per_image(DEFAULT_CANVAS),
        reference_map="39.1 box AP (MODEL_ZOO.md, e2e_faster_rcnn_R_101_FPN_1x.pth); 0.387 AP / 0.603 AP50 "
                      "(Cambricon MLU370-X4, bs 32, FP32)",
        notes=(
            "the canvas (default 1344x1344, --canvas HxW) is a deployment choice: images are resized like the "
            "reference (short side 800, long side <= 1333) and zero-padded to it; a canvas below 1344 scales "
            "that rule down so every image fits (not the reference)",
            "--canvas exact: each image padded only to its own multiple of 32, the reference at IMS_PER_BATCH 1 "
            "(the accuracy baseline; ONNX Runtime and OpenVINO only, batch 1)",
            "variants: fixed (every stage in one graph, NonMaxSuppression and RoiAlign on the device) and split "
            "(dense model + box-head model, proposal selection and RoIAlign on the host): export --variant",
            "evaluates all 5000 val2017 images; NMS runs in the graph (IoU > 0.5, the CUDA kernel's test)",
        ),
        demo_weights=demo_weights,
        exporter=FASTER_RCNN,
        at_canvas=at_canvas,
        example_inputs=example_inputs,
        composite={"split": split_stage},
    )
)
