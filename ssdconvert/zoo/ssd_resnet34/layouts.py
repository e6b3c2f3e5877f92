"""Checkpoint key layouts of SSD-ResNet34 and their mapping onto the NVIDIA v0.7 layout.

NV  (native): model.{0,1,3,4,5}.*, fused mbox.i = [conf (nd*81) | loc (nd*4)]
     (mlcommons/training_results_v0.7 NVIDIA/benchmarks/ssd/implementations/pytorch/
     ssd300.py, resnet.py)
REF (mlcommons): model.layer1.{0,1,4,5}.*, model.layer2.0.*, separate loc.i / conf.i
     (mlcommons/training single_stage_detector/ssd/ssd300.py, base_model.py)
torchvision resnet34 backbone file: conv1, bn1, layer1..layer4, fc  (NV resnet.py drops layer4 and fc)
"""

from __future__ import annotations

from postprocess.heads.nvidia_ssd.priors import PriorSpec
from ssdconvert.zoo.layouts import refuse_torchvision_backbone, rename_prefixes, torchvision_backbone_to_native

NUM_DEFAULTS = PriorSpec().boxes_per_location  # (4, 6, 6, 6, 4, 4), without importing torch

REF_BACKBONE_PREFIXES = {
    "model.layer1.0.": "model.0.",
    "model.layer1.1.": "model.1.",
    "model.layer1.4.": "model.3.",
    "model.layer1.5.": "model.4.",
    "model.layer2.0.": "model.5.",
}
TORCHVISION_BACKBONE_PREFIXES = {
    "conv1.": "model.0.",
    "bn1.": "model.1.",
    "layer1.": "model.3.",
    "layer2.": "model.4.",
    "layer3.": "model.5.",
}


def _fuse_ref_heads(state: dict) -> dict:
    """Concatenate REF's conf.i and loc.i into NV's mbox.i along the output channels."""
    import torch

    out = {k: v for k, v in state.items() if not k.startswith(("loc.", "conf."))}
    for level in range(len(NUM_DEFAULTS)):
        for param in ("weight", "bias"):
            conf, loc = state.get(f"conf.{level}.{param}"), state.get(f"loc.{level}.{param}")
            if conf is None or loc is None:  # leave the pieces: strict loading reports them
                for name, part in (("conf", conf), ("loc", loc)):
                    if part is not None:
                        out[f"{name}.{level}.{param}"] = part
                continue
            out[f"mbox.{level}.{param}"] = torch.cat([conf, loc], 0)
    return out


def to_native_layout(state: dict) -> dict:
    """Map an NV or REF SSD-ResNet34 state_dict onto NV keys (NV mbox.i = REF [conf.i | loc.i])."""
    if any(k.startswith("mbox.") for k in state):
        return dict(state)
    if any(k.startswith(("loc.", "conf.")) for k in state) or any(
        k.startswith("model.layer1.") for k in state
    ):
        return _fuse_ref_heads(rename_prefixes(state, REF_BACKBONE_PREFIXES))
    refuse_torchvision_backbone(state)
    return dict(state)


def backbone_to_native(state: dict) -> dict:
    """Map a torchvision resnet34 state_dict onto the native backbone keys (layer4/fc dropped)."""
    return torchvision_backbone_to_native(state, TORCHVISION_BACKBONE_PREFIXES)
