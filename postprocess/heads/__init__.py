"""Detector heads: plain-data declarations owned by their families, and `decoder_for(head)`.

    spec        OutputTensor, NmsPolicy, DetectionHead (the common fields)
    nvidia_ssd  SSD300 of MLPerf/NVIDIA (ssd-resnet34, ssd-resnet50): reference and Ascend NMS
    mmdet_ssd   SSD300 of mmdetection (ssd-vgg16): mmdet 3.x and 2.10-era post-processing
    final_detections  graphs that end in K final detections + a count (faster-rcnn-r101-fpn): only
                the COCO mapping is left for eval

A decoder turns a batch of raw outputs into COCO rows in two steps: `select(arrays)` does the
work that touches every logit (run on the reader thread while the data is in cache), and
`rows(selected, images, inv_map)` decodes the few candidates, runs NMS and maps boxes to the
original image with the per-image records (id, size; mmdet also the decoded size; final detections the
resized size). Each head owns
its coordinate convention; `float32_rows` says whether its reference hands COCO float32 rows.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from postprocess.heads.final_detections import MASKRCNN_BENCHMARK_RCNN, FinalDetectionsDecoder, FinalDetectionsHead
from postprocess.heads.mmdet_ssd import SSD300_MMDET, MmdetSsdDecoder, MmdetSsdHead
from postprocess.heads.nvidia_ssd import SSD300_NVIDIA, NvidiaSsdDecoder, NvidiaSsdHead
from postprocess.heads.spec import DetectionHead, NmsPolicy, OutputTensor


class Decoder(Protocol):
    head: DetectionHead
    policy: NmsPolicy
    float32_rows: bool

    def select(self, arrays: Sequence[Any]) -> Any:
        """Per output, a (B, *shape) array or a sequence of B per-image arrays (possibly views of mapped
        files: copy what is kept) -> what rows() needs, small enough to hand between threads."""

    def rows(self, selected: Any, images: Sequence[Any], inv_map: Any) -> Any: ...


_DECODERS = {NvidiaSsdHead: NvidiaSsdDecoder, MmdetSsdHead: MmdetSsdDecoder,
             FinalDetectionsHead: FinalDetectionsDecoder}


def decoder_for(head: DetectionHead, policy: str | None = None) -> Decoder:
    """The decoder of `head` with the named NMS policy (default: the head's reference policy)."""
    try:
        chosen = head.policy(policy)
    except KeyError:
        raise ValueError(f"NMS policy {policy!r} is not one of this head's: {', '.join(head.policy_names)}") from None
    return _DECODERS[type(head)](head, chosen)


__all__ = ["DetectionHead", "NmsPolicy", "OutputTensor", "NvidiaSsdHead", "MmdetSsdHead", "FinalDetectionsHead",
           "SSD300_NVIDIA", "SSD300_MMDET", "MASKRCNN_BENCHMARK_RCNN", "Decoder", "decoder_for"]
