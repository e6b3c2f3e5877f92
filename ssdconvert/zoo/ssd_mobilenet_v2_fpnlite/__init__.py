"""SSD-MobileNetV2-FPNLite 256x256, COCO (STMicroelectronics, X-LINUX-AI): a family whose source is an ONNX file.

The model is STMicroelectronics' release (meta-st-x-linux-ai 6813080f, recipes-samples/object-detection/
models/files/ssd_mobilenet_v2_fpnlite_10_256_int8.onnx: tf2onnx 1.16.1, opset 18, QDQ INT8, Apache-2.0),
vendored in ssdconvert/realdata with its provenance. There is no torch network: `export` reads an ONNX
file (default: the vendored release), checks it is this graph, dequantizes a QDQ release to its FP32
original and validates the exported graph against that source on ONNX Runtime (ssdconvert.zoo.onnx_source).

    input    serving_default_input_1:0, uint8 [N, 256, 256, 3], RGB: ST's app resize (preprocess.st_app)
    outputs  StatefulPartitionedCall:2 scores, :1 corner offsets, :0 anchors (postprocess.heads.st_ssd)
    eval     tf-od-api (default): TF Object Detection API's values for this model family
             (research/object_detection/configs/tf2/ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config at
             tensorflow/models 5245161c: per class, score > 1e-8, IoU 0.6, 100 per class, 100 per image);
             st-app: ST's app (class-agnostic, score > 0.70, IoU 0.45)
"""

from __future__ import annotations

from functools import lru_cache, partial

from postprocess.heads import ST_SSD_MOBILENET_V2_FPNLITE
from preprocess.st_app import ST_SSD_MOBILENET_256
from ssdconvert import realdata
from ssdconvert.errors import CheckpointError
from ssdconvert.zoo import register
from ssdconvert.zoo.onnx_source import ONNX_SOURCE, load_onnx_source
from ssdconvert.zoo.spec import ModelSpec
from stageio.tensor import TensorSpec

NAME = "ssd-mobilenet-v2-fpnlite"
# Conv multiply-accumulates at batch 1, counted over the 123 Conv nodes of the FP32 graph with ONNX shape
# inference: output elements x input channels per group x kernel area.
MACS_PER_IMAGE = 604_819_456


def no_network():
    raise CheckpointError(f"{NAME} has no PyTorch network: its source is an ONNX file")


def not_a_state_dict(state: dict) -> dict:
    raise CheckpointError(f"{NAME} is exported from an ONNX file (--checkpoint model.onnx), not a PyTorch state_dict")


@lru_cache(maxsize=64)
def _real_image(index: int):
    """The index-th vendored COCO val2014 image (cyclic) through the family's transform."""
    paths = realdata.images(realdata.VAL_IMAGES)
    pixels, _ = ST_SSD_MOBILENET_256.converter()(str(paths[index % len(paths)]))
    pixels.flags.writeable = False
    return pixels


def example_inputs(spec: ModelSpec, batch: int) -> dict:
    """`batch` real images (the vendored val2014 ones, in name order, repeated as needed): what export
    validates on and bench times with."""
    import numpy as np

    return {spec.input.name: np.stack([_real_image(i) for i in range(batch)])}


SPEC = register(
    ModelSpec(
        name=NAME,
        description="SSD-MobileNetV2-FPNLite 256x256, STMicroelectronics X-LINUX-AI (from its ONNX release)",
        build=no_network,
        input=TensorSpec("serving_default_input_1:0", ST_SSD_MOBILENET_256.input_shape, "uint8"),
        transform=ST_SSD_MOBILENET_256,
        head=ST_SSD_MOBILENET_V2_FPNLITE,
        to_native_layout=not_a_state_dict,
        flops_per_image=2.0 * MACS_PER_IMAGE,
        reference_map="22.2% AP@[.5:.95] for TF's 320x320 original on COCO 2017 val (its tf2 config); the vendored "
                      "256x256 release, dequantized: 0.2024 on the 43 vendored val2014 images (tf-od-api)",
        notes=(
            "source: an ONNX file (--checkpoint model.onnx; default the vendored QDQ release), dequantized to FP32",
            "outputs are softmax scores, corner offsets and the anchors; eval decodes on the host",
        ),
        exporter=ONNX_SOURCE,
        example_inputs=example_inputs,
        load_source=partial(load_onnx_source, default=realdata.ST_SSD_INT8),
    )
)
