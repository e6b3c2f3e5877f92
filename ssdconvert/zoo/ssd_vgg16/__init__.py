"""SSD300-VGG16, mmdetection (configs/ssd/ssd300_coco.py; the mmdet port of Ascend ModelZoo's SSD for PyTorch).

The transform is mmcv's (cv2 decode to BGR, cv2 bilinear 300x300, BGR->RGB, minus mean
[123.675, 116.28, 103.53], std 1; configs/ssd/ssd300_coco.py) and the head is mmdet's SSDHead
(mmdet/models/dense_heads/ssd_head.py) with its anchors, DeltaXYWH coder and mmdet 3.x
post-processing (postprocess.heads.SSD300_MMDET).
"""

from __future__ import annotations

from postprocess.heads import SSD300_MMDET
from preprocess.spec import MMDET_SSD300
from ssdconvert.zoo import register
from ssdconvert.zoo.spec import ModelSpec
from ssdconvert.zoo.ssd_vgg16.layouts import to_native_layout
from stageio.tensor import TensorSpec

# Conv multiply-accumulates at 300x300, batch 1 (ReLU, pooling and L2Norm ignored), counted per conv.
MACS_PER_IMAGE = 34_360_351_232


def build():
    from ssdconvert.zoo.ssd_vgg16.network import SSDVGG16

    return SSDVGG16()


SPEC = register(
    ModelSpec(
        name="ssd-vgg16",
        description="SSD300-VGG16, mmdetection (>= 2.14 and pre-2.14 checkpoints; Ascend mmdet SSD)",
        build=build,
        input=TensorSpec("image", (3, 300, 300)),
        transform=MMDET_SSD300,
        head=SSD300_MMDET,
        to_native_layout=to_native_layout,
        flops_per_image=2.0 * MACS_PER_IMAGE,
        reference_map="25.5% AP@[.5:.95] (ssd300_coco_20210803_015428-d231a06e.pth); 25.6% "
                      "(ssd300_coco_20200307-a92d2092.pth, pre-2.14 layout)",
        notes=(
            "evaluates all 5000 val2017 images (mmdet does not skip images without annotations); "
            "preprocess keeps them by default",
            "outputs are raw (no NMS in the graph); eval runs mmdet's post-processing on the host",
        ),
    )
)
