"""The one head registry: a head kind brings its decoder and its synthetic outputs, found by the head's class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import postprocess.heads as heads
from postprocess.heads import (MASKRCNN_BENCHMARK_RCNN, SSD300_MMDET, SSD300_NVIDIA, DetectionHead, HeadKind,
                               NmsPolicy, NvidiaSsdHead, decoder_for, exact_outputs_for, kind_of)
from postprocess.heads.final_detections.decoder import FinalDetectionsDecoder
from postprocess.heads.mmdet_ssd.decoder import MmdetSsdDecoder
from postprocess.heads.nvidia_ssd.decoder import NvidiaSsdDecoder
from stageio.tensor import TensorSpec

TOY_POLICY = NmsPolicy(name="none", summary="toy", score_threshold=0.0, iou_threshold=1.0, suppress_at_equal=False,
                       selection="none", pre_nms_top_k=None, max_per_image=1)


@dataclass(frozen=True)
class ToyHead(DetectionHead):
    kind = "toy"


class ToyDecoder:
    float32_rows = False

    def __init__(self, head, policy):
        self.head, self.policy = head, policy

    def select(self, arrays):
        return arrays

    def rows(self, selected, images, inv_map):
        return np.zeros((0, 7))


def toy_outputs(head, boxes, labels, images=None):
    return (np.asarray([len(b) for b in boxes], np.int64),)


TOY = ToyHead(outputs=(TensorSpec("count", (), "int64"),), num_classes=2, background_index=0,
              policies=(TOY_POLICY,), evaluated_images="all")


def test_every_registered_head_has_its_own_decoder():
    assert [type(decoder_for(h)) for h in (SSD300_NVIDIA, SSD300_MMDET, MASKRCNN_BENCHMARK_RCNN)] == \
        [NvidiaSsdDecoder, MmdetSsdDecoder, FinalDetectionsDecoder]
    assert decoder_for(SSD300_NVIDIA, "ascend").policy.name == "ascend"
    with pytest.raises(ValueError, match="NMS policy 'mmdet3' is not one of this head's: reference, ascend"):
        decoder_for(SSD300_NVIDIA, "mmdet3")


def test_a_new_kind_of_head_is_one_registry_entry(monkeypatch):
    with pytest.raises(TypeError, match="no registered head kind for ToyHead"):
        decoder_for(TOY)
    monkeypatch.setattr(heads, "KINDS", (*heads.KINDS, HeadKind(ToyHead, ToyDecoder, toy_outputs)))
    decoder = decoder_for(TOY)
    assert isinstance(decoder, ToyDecoder) and decoder.policy is TOY_POLICY
    (counts,) = exact_outputs_for(TOY, [np.zeros((3, 4)), np.zeros((0, 4))], [np.zeros(3), np.zeros(0)])
    assert counts.tolist() == [3, 0]


def test_a_head_subclass_is_served_by_its_base_kind():
    @dataclass(frozen=True)
    class Variant(NvidiaSsdHead):
        pass

    variant = Variant(outputs=SSD300_NVIDIA.outputs, num_classes=81, background_index=0,
                      policies=SSD300_NVIDIA.policies, evaluated_images="annotated")
    assert kind_of(variant) is kind_of(SSD300_NVIDIA)
    assert isinstance(decoder_for(variant), NvidiaSsdDecoder)
