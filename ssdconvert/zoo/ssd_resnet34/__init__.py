"""SSD300-ResNet34, MLPerf Training v0.7 (the Ascend `iter_183250.pt` model)."""

from __future__ import annotations

from ssdconvert.zoo import register
from ssdconvert.zoo.spec import ModelSpec
from ssdconvert.zoo.ssd300 import SSD300_COCO_IO
from ssdconvert.zoo.ssd_resnet34.layouts import backbone_to_native, to_native_layout


def build():
    from ssdconvert.zoo.ssd_resnet34.network import SSDResNet34

    return SSDResNet34()


SPEC = register(
    ModelSpec(
        name="ssd-resnet34",
        description="SSD300-ResNet34, MLPerf Training v0.7 (NVIDIA layout; Ascend iter_183250.pt)",
        build=build,
        **SSD300_COCO_IO,
        to_native_layout=to_native_layout,
        backbone_to_native=backbone_to_native,
        backbone_file="resnet34-333f7ec4.pth",
        flops_per_image=31.72e9,
        reference_map="23.0% AP@[.5:.95] (iter_183250.pt; MLPerf target 0.23)",
    )
)
