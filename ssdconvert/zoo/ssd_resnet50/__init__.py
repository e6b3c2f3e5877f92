"""SSD300 v1.1 ResNet-50, NVIDIA DeepLearningExamples (the Cambricon modelzoo SSD_ResNet50 model).

Reference: NVIDIA/DeepLearningExamples PyTorch/Detection/SSD. Everything a stage needs beyond the
network is the same as SSD-ResNet34: default boxes (`ssd/utils.py` dboxes300_coco), decoder and NMS
(`ssd/utils.py` Encoder, called from `ssd/evaluate.py` with criteria 0.5, max_output 200; score > 0.05)
and the evaluation transform (`ssd/utils.py` SSDTransformer(val=True): PIL bilinear 300x300 aspect
not kept, /255, ImageNet mean/std, RGB). So the spec uses the default PriorSpec and ImageTransform.
"""

from __future__ import annotations

from ssdconvert.zoo import register
from ssdconvert.zoo.spec import ModelSpec
from ssdconvert.zoo.ssd300 import SSD300_COCO_IO
from ssdconvert.zoo.ssd_resnet50.layouts import backbone_to_native, to_native_layout

# Conv multiply-accumulates at 300x300, batch 1 (BN, ReLU, add, max-pool ignored), counted from the layers:
# backbone 13,517,961,984 + additional blocks 987,660,288 + heads 5,645,283,840.
MACS_PER_IMAGE = 20_150_906_112


def build():
    from ssdconvert.zoo.ssd_resnet50.network import SSDResNet50

    return SSDResNet50()


SPEC = register(
    ModelSpec(
        name="ssd-resnet50",
        description="SSD300 v1.1 ResNet-50, NVIDIA DeepLearningExamples layout (Cambricon SSD_ResNet50)",
        build=build,
        **SSD300_COCO_IO,
        to_native_layout=to_native_layout,
        backbone_to_native=backbone_to_native,
        backbone_file="resnet50-19c8e357.pth",
        flops_per_image=2.0 * MACS_PER_IMAGE,
        reference_map="~25.0% AP@[.5:.95] (NVIDIA hub checkpoint nvidia_ssdpyt_amp_200703.pt, 20.06 recipe); "
                      "~27% with the 22.10 recipe",
        notes=(
            "no official checkpoint in Cambricon's modelzoo: train one, then --checkpoint <last.pt>",
            "do not use the torch.hub demo preprocessing (keep-aspect centre crop, (x*256-128)/128)",
        ),
    )
)
