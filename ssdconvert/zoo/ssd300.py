"""The I/O contract shared by the MLPerf/NVIDIA SSD300 COCO detectors (ResNet-34 and ResNet-50).

Same input and transform (R34 §11, other_models §1.4), same outputs and default boxes (R34 §4,
§6; other_models §1.2), 81 classes with background at index 0.
"""

from __future__ import annotations

from postprocess.priors import PriorSpec
from preprocess.spec import ImageTransform
from ssdconvert.zoo.spec import TensorSpec

SSD300_COCO_IO = {
    "input": TensorSpec("image", (3, 300, 300)),
    "outputs": (TensorSpec("ploc", (4, 8732)), TensorSpec("plabel", (81, 8732))),
    "transform": ImageTransform(),
    "priors": PriorSpec(),
    "num_classes": 81,
    "background_index": 0,
}
