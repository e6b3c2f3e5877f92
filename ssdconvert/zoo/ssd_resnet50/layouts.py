"""Checkpoint key layouts of NVIDIA SSD300 v1.1 ResNet-50 and their mapping onto the native keys.

Native (= NVIDIA `ssd/model.py`): feature_extractor.feature_extractor.{0,1,4,5,6}.*,
additional_blocks.{i}.{0,1,3,4}.*, loc.i.*, conf.i.*  (module names of `ssd/model.py`).

Accepted on top of what ssdconvert.checkpoints already unwraps (['model'], a leading `module.`):
- `module.1.` keys (DDP around the old `nn.Sequential(tofp16(), model)` AMP wrapper). NVIDIA's hub
  loader (`ssd/entrypoints.py`, nvidia_ssd) removes both `module.1.` and `module.`; after the
  generic `module.` strip such keys start with `1.`, which is removed here.
- torchvision resnet50 backbone files (`resnet50-19c8e357.pth`, IMAGENET1K_V2): conv1, bn1,
  layer1..4, fc; layer4 and fc are dropped; num_batches_tracked may be absent.
"""

from __future__ import annotations

from ssdconvert.errors import CheckpointError
from ssdconvert.zoo.layouts import is_torchvision_resnet, refuse_torchvision_backbone, torchvision_backbone_to_native

BACKBONE = "feature_extractor.feature_extractor."
NATIVE_PREFIXES = (BACKBONE, "additional_blocks.", "loc.", "conf.")
TORCHVISION_BACKBONE_PREFIXES = {
    "conv1.": BACKBONE + "0.",
    "bn1.": BACKBONE + "1.",
    "layer1.": BACKBONE + "4.",
    "layer2.": BACKBONE + "5.",
    "layer3.": BACKBONE + "6.",
}
AMP_WRAPPER_PREFIX = "1."  # what is left of `module.1.` once the loader has removed `module.`


def _strip_amp_wrapper(state: dict) -> dict:
    """`1.feature_extractor...` -> `feature_extractor...` (only for keys that then become native)."""
    out = {}
    for key, value in state.items():
        if key.startswith(AMP_WRAPPER_PREFIX) and key[len(AMP_WRAPPER_PREFIX):].startswith(NATIVE_PREFIXES):
            key = key[len(AMP_WRAPPER_PREFIX):]
        out[key] = value
    return out


def to_native_layout(state: dict) -> dict:
    """Map an NVIDIA SSD-ResNet50 state_dict (plain or `module.1.`-wrapped) onto the native keys."""
    state = _strip_amp_wrapper(state)
    refuse_torchvision_backbone(state)
    return state  # native, or unknown: strict loading then reports the differences, grouped


def backbone_to_native(state: dict) -> dict:
    """Map a torchvision resnet50 state_dict onto the native backbone keys (layer4/fc dropped)."""
    if is_torchvision_resnet(state) and "layer1.0.conv3.weight" not in state:
        raise CheckpointError(
            "the --backbone file is a ResNet with basic blocks (resnet18/34: no layer1.0.conv3); "
            "ssd-resnet50 needs a torchvision resnet50 file such as resnet50-19c8e357.pth"
        )
    return torchvision_backbone_to_native(state, TORCHVISION_BACKBONE_PREFIXES)
