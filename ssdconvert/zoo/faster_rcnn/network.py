"""Faster R-CNN R-101-FPN in plain torch, key-compatible with maskrcnn-benchmark checkpoints.

Verified in facebookresearch/maskrcnn-benchmark (HEAD 57eec25b):

- `layers/batch_norm.py` FrozenBatchNorm2d: weight, bias, running_mean, running_var are buffers
  (no num_batches_tracked) and y = x * s + (bias - running_mean * s), s = weight * rsqrt(var),
  **without eps** (an older revision in the index called F.batch_norm with its default eps 1e-5
  in eval mode; the released code, which produced MODEL_ZOO's 39.1, is eps-free).
- `modeling/backbone/resnet.py`: StemWithFixedBatchNorm (7x7/2 conv, FrozenBN, relu, max-pool
  3/2 pad 1); BottleneckWithFixedBatchNorm with STRIDE_IN_1X1 (the stride on conv1, the 1x1),
  a downsample (1x1 conv with the stride + FrozenBN) whenever in != out channels, no conv bias;
  R-101-FPN stages (3, 4, 23, 3), every stage returned.
- `modeling/backbone/fpn.py`: fpn_inner{1..4} 1x1 and fpn_layer{1..4} 3x3 convs with bias, top-down
  nearest upsampling by scale factor 2, P6 = max_pool2d(P5, 1, 2, 0) (`LastLevelMaxPool`).
- `modeling/rpn/rpn.py` RPNHead (conv 3x3 + relu, cls_logits A, bbox_pred 4A) and
  `rpn/anchor_generator.py` (cell anchors kept as buffers `cell_anchors.{i}`).
- `roi_heads/box_head/roi_box_feature_extractors.py` FPN2MLPFeatureExtractor (flatten C-major,
  fc6 + relu, fc7 + relu) and `roi_box_predictors.py` FPNPredictor (cls_score 81, bbox_pred 81*4).

State-dict keys (after the `module.` prefix is stripped) are exactly the reference's:
`backbone.body.{stem,layer1..4}.*`, `backbone.fpn.fpn_{inner,layer}{1..4}.*`,
`rpn.anchor_generator.cell_anchors.{0..4}`, `rpn.head.{conv,cls_logits,bbox_pred}.*`,
`roi_heads.box.feature_extractor.{fc6,fc7}.*`, `roi_heads.box.predictor.{cls_score,bbox_pred}.*`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssdconvert.zoo.faster_rcnn.boxes import cell_anchors
from ssdconvert.zoo.faster_rcnn.config import FPN_CHANNELS, MLP_HEAD_DIM, REFERENCE, STAGES, STEM_CHANNELS, RcnnConfig


class FrozenBatchNorm2d(nn.Module):
    """Affine-only batch norm with fixed statistics, as buffers, without eps."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * self.running_var.rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


class Bottleneck(nn.Module):
    """MSRA bottleneck: the stride sits on the first 1x1 conv (STRIDE_IN_1X1=True)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                FrozenBatchNorm2d(out_channels),
            )
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, stride=stride, bias=False)
        self.bn1 = FrozenBatchNorm2d(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class Stem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(STEM_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)


class ResNet101Body(nn.Module):
    """stem + layer1..layer4; returns [C2, C3, C4, C5] (strides 4, 8, 16, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = Stem()
        in_channels = STEM_CHANNELS
        for index, (mid, out, blocks) in enumerate(STAGES, start=1):
            first_stride = 1 if index == 1 else 2
            layers = [Bottleneck(in_channels if b == 0 else out, mid, out, first_stride if b == 0 else 1)
                      for b in range(blocks)]
            self.add_module(f"layer{index}", nn.Sequential(*layers))
            in_channels = out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for index in range(1, len(STAGES) + 1):
            x = getattr(self, f"layer{index}")(x)
            outputs.append(x)
        return outputs


class FPN(nn.Module):
    """[C2..C5] -> [P2, P3, P4, P5, P6]; P6 samples every second pixel of P5."""

    def __init__(self) -> None:
        super().__init__()
        for index, (_, channels, _) in enumerate(STAGES, start=1):
            self.add_module(f"fpn_inner{index}", nn.Conv2d(channels, FPN_CHANNELS, 1))
            self.add_module(f"fpn_layer{index}", nn.Conv2d(FPN_CHANNELS, FPN_CHANNELS, 3, padding=1))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        top = len(features)
        last = getattr(self, f"fpn_inner{top}")(features[-1])
        results = [getattr(self, f"fpn_layer{top}")(last)]
        for index in range(top - 1, 0, -1):
            lateral = getattr(self, f"fpn_inner{index}")(features[index - 1])
            last = lateral + F.interpolate(last, scale_factor=2, mode="nearest")
            results.insert(0, getattr(self, f"fpn_layer{index}")(last))
        results.append(F.max_pool2d(results[-1], 1, 2, 0))
        return results


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = ResNet101Body()
        self.fpn = FPN()

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.fpn(self.body(images))


class CellAnchors(nn.Module):
    """The reference's BufferList: one (A, 4) buffer per level named "0", "1", ..."""

    def __init__(self, anchors: list[torch.Tensor]) -> None:
        super().__init__()
        for index, value in enumerate(anchors):
            self.register_buffer(str(index), value)

    def __getitem__(self, index: int) -> torch.Tensor:
        return getattr(self, str(index))

    def __len__(self) -> int:
        return len(self._buffers)


class AnchorGenerator(nn.Module):
    def __init__(self, config: RcnnConfig) -> None:
        super().__init__()
        self.strides = config.anchor_strides
        self.cell_anchors = CellAnchors(generated_cell_anchors(config))


def generated_cell_anchors(config: RcnnConfig = REFERENCE) -> list[torch.Tensor]:
    """The cell anchors the reference generates for `config` (one tensor per level)."""
    return [cell_anchors(stride, size, config.aspect_ratios)
            for stride, size in zip(config.anchor_strides, config.anchor_sizes)]


class RPNHead(nn.Module):
    def __init__(self, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(FPN_CHANNELS, FPN_CHANNELS, 3, padding=1)
        self.cls_logits = nn.Conv2d(FPN_CHANNELS, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(FPN_CHANNELS, num_anchors * 4, 1)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = [], []
        for feature in features:
            t = F.relu(self.conv(feature))
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas


class RPN(nn.Module):
    def __init__(self, config: RcnnConfig) -> None:
        super().__init__()
        self.anchor_generator = AnchorGenerator(config)
        self.head = RPNHead(config.num_anchors)


class FeatureExtractor(nn.Module):
    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(FPN_CHANNELS * resolution * resolution, MLP_HEAD_DIM)
        self.fc7 = nn.Linear(MLP_HEAD_DIM, MLP_HEAD_DIM)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = pooled.reshape(pooled.shape[0], -1)
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class Predictor(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(MLP_HEAD_DIM, num_classes)
        self.bbox_pred = nn.Linear(MLP_HEAD_DIM, num_classes * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class BoxHead(nn.Module):
    """Pooled RoI features (R, 256, 7, 7) -> (class logits (R, 81), class-specific deltas (R, 324))."""

    def __init__(self, config: RcnnConfig) -> None:
        super().__init__()
        self.feature_extractor = FeatureExtractor(config.pooler_resolution)
        self.predictor = Predictor(config.num_classes)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predictor(self.feature_extractor(pooled))


class RoIHeads(nn.Module):
    def __init__(self, config: RcnnConfig) -> None:
        super().__init__()
        self.box = BoxHead(config)


class FasterRCNN(nn.Module):
    """The network's modules; the test-time forwards live in reference.py, fixed.py and split.py."""

    def __init__(self, config: RcnnConfig = REFERENCE) -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone()
        self.rpn = RPN(config)
        self.roi_heads = RoIHeads(config)

    def dense(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """images (N, 3, H, W), H and W multiples of 32 -> (P2..P6, RPN logits, RPN deltas) per level."""
        features = self.backbone(images)
        logits, deltas = self.rpn.head(features)
        return features, logits, deltas

    def forward(self, images: torch.Tensor):
        raise TypeError("FasterRCNN has no single forward: use reference.detect, FixedSizeDetector or the split "
                        "models (ssdconvert.zoo.faster_rcnn)")
