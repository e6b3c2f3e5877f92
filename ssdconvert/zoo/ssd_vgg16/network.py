"""SSD300-VGG16 as mmdetection builds it (SSDVGG + SSDNeck + L2Norm + SSDHead), in plain torch.

Module names follow mmdet >= 2.14 so the state_dict keys are the checkpoint's (mmdet/models/
backbones/ssd_vgg.py, necks/ssd_neck.py, dense_heads/ssd_head.py):

- `backbone.features.{0..34}`: mmcv VGG16 (ceil-mode 2x2 max-pools, no last pool) + SSDVGG's
  max-pool 3/1/1 (30), conv 512->1024 3x3 pad 6 dilation 6 (31), conv 1024->1024 1x1 (33); the
  outputs are taken after the ReLUs 22 (512x38x38) and 34 (1024x19x19);
- `neck.l2_norm.weight` on output 0: (w * x) / (sqrt(sum_c x^2) + 1e-10), computed in float32
  (mmdet/models/necks/ssd_neck.py L2Norm);
- `neck.extra_layers.{0..3}.{0,1}.conv`: 1x1 to out/2 channels + ReLU, 3x3 (stride 2, 2, 1, 1; pad
  1, 1, 0, 0) + ReLU: 10x10x512, 5x5x256, 3x3x256, 1x1x256;
- `bbox_head.cls_convs.{i}.0`, `bbox_head.reg_convs.{i}.0`: 3x3 pad 1 convs with A*81 and A*4
  outputs, A = (4, 6, 6, 6, 4, 4).

Outputs: bbox_deltas [N, 4, 8732] and cls_logits [N, 81, 8732], raw (no softmax). Each level's
[N, A*K, H, W] (channel a * K + k, as mmdet's permute(0, 2, 3, 1).reshape(N, -1, K) reads it) becomes
[N, K, H*W*A] with anchor index (y * W + x) * A + a: mmdet's location-major, anchor-minor order,
levels concatenated. Coordinates/classes come first so that the host reduces over classes with
contiguous rows, as for the NVIDIA heads' ploc/plabel.
"""

from __future__ import annotations

import torch
from torch import nn

NUM_ANCHORS = (4, 6, 6, 6, 4, 4)
NUM_LABELS = 81  # 80 classes + background (last)
# (out_channels, stride after pool?) of mmcv VGG16: 'M' = 2x2 ceil-mode max-pool
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
SOURCE_CHANNELS = (512, 1024, 512, 256, 256, 256)
OUT_FEATURE_INDICES = (22, 34)
EXTRA_STRIDES = (2, 2, 1, 1)
EXTRA_PADDINGS = (1, 1, 0, 0)
L2NORM_EPS = 1e-10
L2NORM_SCALE = 20.0


def _vgg_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    layers += [nn.MaxPool2d(3, 1, 1),  # 30
               nn.Conv2d(512, 1024, 3, padding=6, dilation=6), nn.ReLU(inplace=True),  # 31, 32
               nn.Conv2d(1024, 1024, 1), nn.ReLU(inplace=True)]  # 33, 34
    return nn.Sequential(*layers)


class VGGBackbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg_features()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in OUT_FEATURE_INDICES:
                outs.append(x)
        return outs


class L2Norm(nn.Module):
    def __init__(self, channels: int, scale: float = L2NORM_SCALE, eps: float = L2NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), scale))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_float = x.float()
        norm = x_float.pow(2).sum(1, keepdim=True).sqrt() + self.eps
        return (self.weight[None, :, None, None].float().expand_as(x_float) * x_float / norm).type_as(x)


class ConvReLU(nn.Module):
    """mmcv ConvModule with bias and ReLU: the conv sits at `.conv`."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x))


class SSDNeck(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.extra_layers = nn.ModuleList(
            nn.Sequential(ConvReLU(cin, cout // 2, 1), ConvReLU(cout // 2, cout, 3, stride, padding))
            for cin, cout, stride, padding in zip(SOURCE_CHANNELS[1:-1], SOURCE_CHANNELS[2:], EXTRA_STRIDES,
                                                  EXTRA_PADDINGS))
        self.l2_norm = L2Norm(SOURCE_CHANNELS[0])

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = list(inputs)
        outs[0] = self.l2_norm(outs[0])
        feat = outs[-1]
        for layer in self.extra_layers:
            feat = layer(feat)
            outs.append(feat)
        return outs


class SSDHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cls_convs = nn.ModuleList(nn.Sequential(nn.Conv2d(c, a * NUM_LABELS, 3, padding=1))
                                       for c, a in zip(SOURCE_CHANNELS, NUM_ANCHORS))
        self.reg_convs = nn.ModuleList(nn.Sequential(nn.Conv2d(c, a * 4, 3, padding=1))
                                       for c, a in zip(SOURCE_CHANNELS, NUM_ANCHORS))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        deltas, logits = [], []
        for feat, reg, cls, a in zip(feats, self.reg_convs, self.cls_convs, NUM_ANCHORS):
            deltas.append(_anchor_minor(reg(feat), a, 4))
            logits.append(_anchor_minor(cls(feat), a, NUM_LABELS))
        return torch.cat(deltas, 2), torch.cat(logits, 2)


def _anchor_minor(x: torch.Tensor, anchors: int, k: int) -> torch.Tensor:
    """[N, A*K, H, W] (channel a*K + k) -> [N, K, H*W*A] (index (y*W + x)*A + a)."""
    n, _, h, w = x.shape
    return x.reshape(n, anchors, k, h, w).permute(0, 2, 3, 4, 1).reshape(n, k, h * w * anchors)


class SSDVGG16(nn.Module):
    """image [N,3,300,300] (RGB minus the mean) -> (bbox_deltas [N,4,8732], cls_logits [N,81,8732]), raw."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = VGGBackbone()
        self.neck = SSDNeck()
        self.bbox_head = SSDHead()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.bbox_head(self.neck(self.backbone(image)))
