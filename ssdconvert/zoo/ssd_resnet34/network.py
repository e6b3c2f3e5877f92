"""SSD300-ResNet34 (MLPerf Training v0.7), module layout identical to the NVIDIA v0.7 code.

State-dict keys: `model.{0,1,3,4,5}.*` (backbone), `additional_blocks.{0..4}.{0,2}.*`,
`mbox.{0..5}.*` (fused heads, class logits first), as built by
mlcommons/training_results_v0.7 NVIDIA/benchmarks/ssd/implementations/pytorch/
ssd300.py and resnet.py with use_nhwc=False, pad_input=False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_DEFAULTS = (4, 6, 6, 6, 4, 4)
NUM_LABELS = 81
BACKBONE_CHANNELS = 256
# (in, mid, out, stride, padding) of the five additional blocks (ssd300.py, _build_additional_features)
ADDITIONAL_BLOCKS = (
    (256, 256, 512, 2, 1),
    (512, 256, 512, 2, 1),
    (512, 128, 256, 2, 1),
    (256, 128, 256, 1, 0),
    (256, 128, 256, 1, 0),
)
SOURCE_CHANNELS = (BACKBONE_CHANNELS,) + tuple(b[2] for b in ADDITIONAL_BLOCKS)


class BatchNormReLU(nn.BatchNorm2d):
    """BN followed by ReLU in one module (NVIDIA's `model.1`), so its keys sit at `model.1.*`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class BasicBlock(nn.Module):
    """torchvision-style ResNet BasicBlock: conv1/bn1/conv2/bn2 and optional downsample."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def _res_layer(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(in_ch, out_ch, stride)]
    layers += [BasicBlock(out_ch, out_ch, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _additional_block(in_ch: int, mid: int, out: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, mid, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out, 3, stride, padding),
        nn.ReLU(inplace=True),
    )


class SSDResNet34(nn.Module):
    """image [N,3,300,300] -> (ploc [N,4,8732], plabel [N,81,8732]), raw (no softmax)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            BatchNormReLU(64),
            nn.MaxPool2d(3, 2, 1),
            _res_layer(64, 64, 3, 1),
            _res_layer(64, 128, 4, 2),
            _res_layer(128, 256, 6, 1),  # layer3 at stride 1: feature map 0 is 38x38
        )
        self.additional_blocks = nn.ModuleList(_additional_block(*b) for b in ADDITIONAL_BLOCKS)
        self.mbox = nn.ModuleList(
            nn.Conv2d(ch, nd * (NUM_LABELS + 4), 3, padding=1)
            for ch, nd in zip(SOURCE_CHANNELS, NUM_DEFAULTS)
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.model(image)
        sources = [x]
        for block in self.additional_blocks:
            x = block(x)
            sources.append(x)
        locs, confs = [], []
        for source, head, nd in zip(sources, self.mbox, NUM_DEFAULTS):
            conf, loc = torch.split(head(source), [nd * NUM_LABELS, nd * 4], dim=1)
            n = source.shape[0]
            confs.append(conf.reshape(n, NUM_LABELS, -1))
            locs.append(loc.reshape(n, 4, -1))
        return torch.cat(locs, 2), torch.cat(confs, 2)
