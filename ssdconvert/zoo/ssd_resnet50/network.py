"""SSD300 v1.1 ResNet-50 (NVIDIA DeepLearningExamples `PyTorch/Detection/SSD`), same module layout.

Module names as in `ssd/model.py` (ResNet, SSD300). State-dict keys (342 tensors):

- backbone: `feature_extractor.feature_extractor.{0,1,4,5,6}.*`: a torchvision resnet50 cut after
  layer3 (children conv1, bn1, relu, maxpool, layer1, layer2, layer3), layer3 block 0 at stride 1;
- `additional_blocks.{0..4}.{0,3}.weight` (convs, no bias), `additional_blocks.{0..4}.{1,4}.*` (BN);
- separate heads `loc.{0..5}.*` (nd*4 channels) and `conf.{0..5}.*` (nd*81 channels).

Outputs ploc [N,4,8732] and plabel [N,81,8732] are each head output reshaped without a permute,
so the anchor index within a level is d*H*W + y*W + x, exactly as SSD-ResNet34 (SSD300.bbox_view).
"""

from __future__ import annotations

import torch
from torch import nn

NUM_DEFAULTS = (4, 6, 6, 6, 4, 4)
NUM_LABELS = 81
# out_channels of the six sources (ResNet.out_channels in ssd/model.py)
SOURCE_CHANNELS = (1024, 512, 512, 256, 256, 256)
ADDITIONAL_MID_CHANNELS = (256, 256, 128, 128, 128)
# torchvision resnet50 (planes, blocks) of layer1..layer3; bottleneck expansion 4
RESNET50_LAYERS = ((64, 3), (128, 4), (256, 6))
EXPANSION = 4


class Bottleneck(nn.Module):
    """torchvision ResNet v1.5 bottleneck (stride on conv2) with torchvision's module names."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * EXPANSION:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * EXPANSION, 1, stride, bias=False),
                nn.BatchNorm2d(planes * EXPANSION),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def _res_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride)]
    layers += [Bottleneck(planes * EXPANSION, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50Backbone(nn.Module):
    """NVIDIA's `ResNet` wrapper: `.feature_extractor` = torchvision resnet50 children [0:7]."""

    def __init__(self) -> None:
        super().__init__()
        (p1, n1), (p2, n2), (p3, n3) = RESNET50_LAYERS
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),  # 0 conv1
            nn.BatchNorm2d(64),  # 1 bn1
            nn.ReLU(inplace=True),  # 2 relu
            nn.MaxPool2d(3, 2, 1),  # 3 maxpool
            _res_layer(64, p1, n1, 1),  # 4 layer1
            _res_layer(p1 * EXPANSION, p2, n2, 2),  # 5 layer2
            _res_layer(p2 * EXPANSION, p3, n3, 2),  # 6 layer3, built as torchvision does ...
        )
        # ... then, as ssd/model.py does, "conv4_block1" gets stride 1 on conv1, conv2 and
        # downsample[0], so layer3 keeps the 38x38 map of layer2.
        block = self.feature_extractor[6][0]
        block.conv1.stride = (1, 1)
        block.conv2.stride = (1, 1)
        block.downsample[0].stride = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor(x)


def _additional_block(in_ch: int, mid: int, out: int, level: int) -> nn.Sequential:
    stride, padding = (2, 1) if level < 3 else (1, 0)
    return nn.Sequential(
        nn.Conv2d(in_ch, mid, 1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out, 3, stride, padding, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
    )


class SSDResNet50(nn.Module):
    """image [N,3,300,300] -> (ploc [N,4,8732], plabel [N,81,8732]), raw (no softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_extractor = ResNet50Backbone()
        self.additional_blocks = nn.ModuleList(
            _additional_block(i, m, o, level)
            for level, (i, o, m) in enumerate(
                zip(SOURCE_CHANNELS[:-1], SOURCE_CHANNELS[1:], ADDITIONAL_MID_CHANNELS)
            )
        )
        self.loc = nn.ModuleList(
            nn.Conv2d(ch, nd * 4, 3, padding=1) for ch, nd in zip(SOURCE_CHANNELS, NUM_DEFAULTS)
        )
        self.conf = nn.ModuleList(
            nn.Conv2d(ch, nd * NUM_LABELS, 3, padding=1) for ch, nd in zip(SOURCE_CHANNELS, NUM_DEFAULTS)
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.feature_extractor(image)
        sources = [x]
        for block in self.additional_blocks:
            x = block(x)
            sources.append(x)
        locs, confs = [], []
        for source, loc, conf in zip(sources, self.loc, self.conf):
            n = source.shape[0]
            locs.append(loc(source).reshape(n, 4, -1))
            confs.append(conf(source).reshape(n, NUM_LABELS, -1))
        return torch.cat(locs, 2), torch.cat(confs, 2)
