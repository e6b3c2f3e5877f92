"""The I/O contract shared by the MLPerf/NVIDIA SSD300 COCO detectors (ResNet-34 and ResNet-50).

Same input and transform (SSDTransformer(val=True)) and the same head: outputs (SSD300.bbox_view),
default boxes (dboxes300_coco), decoder and NMS (Encoder) and COCO mapping, in both
mlcommons/training_results_v0.7 NVIDIA/benchmarks/ssd/implementations/pytorch
and NVIDIA DeepLearningExamples PyTorch/Detection/SSD/ssd/; postprocess.heads.SSD300_NVIDIA.
"""

from __future__ import annotations

from postprocess.heads import SSD300_NVIDIA
from preprocess.spec import ImageTransform
from stageio.tensor import TensorSpec

SSD300_COCO_IO = {
    "input": TensorSpec("image", (3, 300, 300)),
    "transform": ImageTransform(),
    "head": SSD300_NVIDIA,
}
