"""The NVIDIA SSD head's decoder: raw (ploc, plabel) of a batch -> COCO rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from postprocess.candidates import Selected, select
from postprocess.heads.nvidia_ssd.detect import finish, result_rows
from postprocess.heads.nvidia_ssd.nms import NmsParams
from postprocess.heads.spec import NmsPolicy
from postprocess.images import ImageLike

if TYPE_CHECKING:
    from postprocess.heads.nvidia_ssd import NvidiaSsdHead

VARIANT_OF = {"per-class-top-k": "reference", "best-class-top-k": "ascend"}  # policy selection -> NMS variant


class NvidiaSsdDecoder:
    """`select` touches every logit (on the reader thread), `rows` the few candidates."""

    float32_rows = True  # the reference passes a float32 array to loadRes

    def __init__(self, head: "NvidiaSsdHead", policy: NmsPolicy):
        self.head, self.policy = head, policy
        self.params = NmsParams(score_threshold=policy.score_threshold, iou_threshold=policy.iou_threshold,
                                max_per_class=policy.pre_nms_top_k, max_output=policy.max_per_image)
        self.variant = VARIANT_OF[policy.selection]
        if self.variant == "reference" and not policy.suppress_at_equal or \
                self.variant == "ascend" and policy.suppress_at_equal:
            raise ValueError(f"NMS policy {policy.name}: selection {policy.selection} implies the other comparison")

    def select(self, arrays: Sequence[np.ndarray]) -> Selected:
        ploc, plabel = arrays
        return select(ploc, plabel, self.params.score_threshold, self.head.background_index)

    def rows(self, selected: Selected, images: Sequence[ImageLike], inv_map: np.ndarray) -> np.ndarray:
        dets = finish(selected, self.head.priors, self.params, self.variant, self.head.background_index)
        return result_rows(dets, images, inv_map)
