"""Key-layout helpers shared by the detector families' checkpoint mappings."""

from __future__ import annotations

from ssdconvert.errors import CheckpointError

TORCHVISION_IGNORED_PREFIXES = ("layer4.", "fc.")  # SSD backbones stop after layer3


def rename_prefixes(state: dict, prefixes: dict[str, str]) -> dict:
    """Rename keys by their first matching prefix; other keys are kept unchanged."""
    out = {}
    for key, value in state.items():
        for old, new in prefixes.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def is_torchvision_resnet(state: dict) -> bool:
    return "conv1.weight" in state and any(k.startswith("layer1.0.") for k in state)


def refuse_torchvision_backbone(state: dict) -> None:
    """A backbone-only file passed as --checkpoint gets a message that says what to do."""
    if is_torchvision_resnet(state):
        raise CheckpointError(
            "this file is a torchvision ResNet backbone, not an SSD checkpoint; pass it with --backbone"
        )


def torchvision_backbone_to_native(state: dict, prefixes: dict[str, str]) -> dict:
    """Drop layer4/fc from a torchvision ResNet state_dict and rename the rest with `prefixes`."""
    if not is_torchvision_resnet(state):
        raise CheckpointError(
            "the --backbone file is not a torchvision ResNet state_dict (no conv1.weight / layer1.0.*)"
        )
    kept = {k: v for k, v in state.items() if not k.startswith(TORCHVISION_IGNORED_PREFIXES)}
    return rename_prefixes(kept, prefixes)
