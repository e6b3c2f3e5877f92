"""The I/O contract shared by the MLPerf/NVIDIA SSD300 COCO detectors (ResNet-34 and ResNet-50).

Same input and transform (R34 §11, other_models §1.4) and the same head: outputs, default boxes,
decoder and NMS (R34 §4, §6-§10; other_models §1.2-§1.5), postprocess.heads.SSD300_NVIDIA.
"""

from __future__ import annotations

from postprocess.heads import SSD300_NVIDIA
from preprocess.spec import ImageTransform
from ssdconvert.zoo.spec import TensorSpec

SSD300_COCO_IO = {
    "input": TensorSpec("image", (3, 300, 300)),
    "transform": ImageTransform(),
    "head": SSD300_NVIDIA,
}
