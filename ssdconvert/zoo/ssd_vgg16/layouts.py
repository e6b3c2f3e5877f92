"""Checkpoint key layouts of mmdetection SSD300-VGG16 and their mapping onto the native keys.

Native = mmdet >= 2.14 (PR #5291, e.g. ssd300_coco_20210803_015428-d231a06e.pth): backbone.features.*,
neck.extra_layers.{i}.{0,1}.conv.*, neck.l2_norm.weight, bbox_head.{cls,reg}_convs.{i}.0.*.
Old = mmdet <= 2.13 (ssd300_coco_20200307-a92d2092.pth): backbone.extra.{0..7}.*, backbone.l2_norm.weight,
bbox_head.{cls,reg}_convs.{i}.*. The mapping is the one of mmdet's
tools/model_converters/upgrade_ssd_version.py: extra.K -> extra_layers.{K//2}.{K%2}.conv,
any l2_norm -> neck.l2_norm.weight, head convs i -> i.0.

The mmcv container {"meta": {...}, "state_dict": ...} is unwrapped by ssdconvert.checkpoints; its
meta (config text, CLASSES tuple, versions, epoch/iter, hook_msgs) holds only str/int/tuple/dict,
which torch's weights-only unpickler accepts, so no allowlist is needed.
"""

from __future__ import annotations

import re


_OLD_EXTRA = re.compile(r"^backbone\.extra\.(\d+)\.(weight|bias)$")
_OLD_HEAD = re.compile(r"^bbox_head\.(cls|reg)_convs\.(\d+)\.(weight|bias)$")


def to_native_layout(state: dict) -> dict:
    """Map an mmdet SSD300 state_dict of either layout onto the >= 2.14 keys."""
    out = {}
    for key, value in state.items():
        if (m := _OLD_EXTRA.match(key)) is not None:
            k = int(m.group(1))
            key = f"neck.extra_layers.{k // 2}.{k % 2}.conv.{m.group(2)}"
        elif "l2_norm" in key:
            key = "neck.l2_norm.weight"
        elif (m := _OLD_HEAD.match(key)) is not None:
            key = f"bbox_head.{m.group(1)}_convs.{m.group(2)}.0.{m.group(3)}"
        out[key] = value
    return out  # native, or unknown: strict loading reports the differences, grouped
