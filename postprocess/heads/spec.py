"""Detector heads as plain data: what the exported outputs mean and how they become detections.

A head declaration says everything eval needs and nothing about how it is computed: the output
tensors (stageio.TensorSpec: names, per-image shapes, element types, how they map to anchors x
classes), the anchors, the box coder, the score function, the NMS policies it offers (the first is
the reference), which images its reference evaluates and how labels map to COCO category ids. A
HeadKind registers a kind of head with what does the work (postprocess.heads): its Decoder and its
synthetic outputs.

On disk a float32 output may also arrive as float16 (an FP16 model), an int64 one as int32 (device
compilers narrow 64-bit integers); stageio.reader tells them apart by file size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from stageio.tensor import TensorSpec


@dataclass(frozen=True)
class NmsPolicy:
    """How candidates are chosen and suppressed. All score thresholds are strict (score > threshold).

    selection:
      per-class-top-k     per class, the pre_nms_top_k best (anchor, class) pairs (NVIDIA reference)
      best-class-top-k    the pre_nms_top_k anchors with the best foreground score, every class of each
                          (Ascend ssd_postprocess.py)
      per-level-pairs     per feature level, the pre_nms_top_k best (anchor, class) pairs above the
                          threshold (mmdet >= 2.18 / 3.x filter_scores_and_topk)
      per-level-anchors   per feature level, the pre_nms_top_k anchors by best foreground score, all
                          levels when None; threshold applied to (anchor, class) pairs afterwards
                          (mmdet 2.10 anchor_head + multiclass_nms)
    suppress_at_equal: IoU >= threshold suppresses (True) or only IoU > threshold (False).
    drop_empty_boxes: drop boxes with width or height <= 0 before NMS (mmdet 3.x min_bbox_size 0).
    """

    name: str
    summary: str
    score_threshold: float
    iou_threshold: float
    suppress_at_equal: bool
    selection: str
    pre_nms_top_k: int | None
    max_per_image: int
    drop_empty_boxes: bool = False

    def describe(self) -> dict:
        return {"summary": self.summary, "score_threshold": self.score_threshold,
                "iou_threshold": self.iou_threshold, "suppress": "IoU >= thr" if self.suppress_at_equal else "IoU > thr",
                "selection": self.selection, "pre_nms_top_k": self.pre_nms_top_k,
                "max_per_image": self.max_per_image, "drop_empty_boxes": self.drop_empty_boxes}


@dataclass(frozen=True)
class DetectionHead:
    """Fields every head has; families use one of the subclasses."""

    outputs: tuple[TensorSpec, ...]  # per image; dtype float32 | int64
    num_classes: int  # including background
    background_index: int
    policies: tuple[NmsPolicy, ...]  # the first is the reference (the default)
    evaluated_images: str  # "annotated": images with annotations only · "all": every image of the json

    kind = "head"

    @property
    def default_policy(self) -> NmsPolicy:
        return self.policies[0]

    @property
    def policy_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.policies)

    def policy(self, name: str | None = None) -> NmsPolicy:
        if name is None:
            return self.default_policy
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    def describe(self) -> dict:
        return {"kind": self.kind, "outputs": [{"name": o.name, "shape": ["N", *o.shape], "dtype": o.dtype,
                                                "meaning": o.meaning} for o in self.outputs],
                "classes": {"count": self.num_classes, "background_index": self.background_index},
                "nms": {"default": self.default_policy.name, "policies": {p.name: p.describe() for p in self.policies}},
                "evaluated_images": self.evaluated_images}

    def summary(self) -> list[str]:
        """Human-readable lines for `ssdconvert models`."""
        return [f"nms     {p.name}{' (default)' if p is self.default_policy else ''}: {p.summary}"
                for p in self.policies]

    def category_ids(self, categories: Sequence[Mapping]) -> np.ndarray:
        """inv_map: label k -> id of the k-th foreground category in file order (postprocess.coco.category_ids);
        a head that maps labels otherwise says so."""
        from postprocess.coco import category_ids

        return category_ids(categories, self.num_classes, self.background_index)


class Decoder(Protocol):
    """A head's outputs of a batch -> COCO rows, with one NMS policy, in two steps (see postprocess.heads)."""

    head: DetectionHead
    policy: NmsPolicy
    float32_rows: bool  # whether the head's reference hands COCO float32 rows (else a json's doubles)

    def select(self, arrays: Sequence[Any]) -> Any:
        """Per output, a (B, *shape) array or a sequence of B per-image arrays (possibly views of mapped
        files: copy what is kept) -> what rows() needs, small enough to hand between threads."""

    def rows(self, selected: Any, images: Sequence[Any], inv_map: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class HeadKind:
    """One kind of head as the registry (postprocess.heads) knows it: its declaration's class, the decoder
    made from (head, policy), and `exact_outputs(head, boxes, labels, images)`: outputs that decode back to
    the given boxes (normalised ltrb of the original image) and foreground labels 0..C-2; `images` (with
    width/height and resized_width/resized_height) for heads whose boxes live in the resized image."""

    head: type[DetectionHead]
    decoder: Callable[[DetectionHead, NmsPolicy], Decoder]
    exact_outputs: Callable[[DetectionHead, Sequence[np.ndarray], Sequence[np.ndarray], Sequence | None],
                            tuple[np.ndarray, ...]]
