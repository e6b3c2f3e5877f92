"""The fixed-size PyTorch forward reproduces the reference path exactly (no runtime involved)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ssdconvert.zoo.faster_rcnn.validation import fixed_outputs_to_detections, reference_detections
from ssdconvert.zoo.faster_rcnn.fixed import FixedSizeDetector
from ssdconvert.zoo.faster_rcnn.network import FasterRCNN
from postprocess.detection_match import match_detections

K = 2000  # more than any image has (948..1459): the reference keeps all, slots past each count stay empty


@pytest.mark.heavy  # the eager NMS stand-ins take ~15 s; the exported graph is checked against the reference anyway
def test_fixed_forward_equals_the_reference_bit_for_bit(frcnn_model, frcnn_batches):
    batch = frcnn_batches[3]
    config = dataclasses.replace(frcnn_model.config, detections_per_img=K)
    net = FasterRCNN(config).eval()
    net.load_state_dict(frcnn_model.state_dict())
    expected = reference_detections(net, batch)
    with torch.no_grad():
        outputs = [t.numpy() for t in FixedSizeDetector(net, K)(torch.from_numpy(batch.images),
                                                                 torch.from_numpy(batch.im_info))]
    counts = outputs[3].tolist()
    assert counts == [len(d) for d in expected] and 500 < min(counts) and max(counts) < K
    for i, n in enumerate(counts):  # empty slots are zero
        assert not outputs[0][i, n:].any() and not outputs[1][i, n:].any() and not outputs[2][i, n:].any()
    report = match_detections(expected, fixed_outputs_to_detections(*outputs), 0.999, K, pixel_offset=1.0)
    assert report.matched == sum(counts) and report.max_score_diff == 0.0 and report.max_box_diff == 0.0
    # and in score order, best first
    assert all(np.all(np.diff(outputs[1][i, :n]) <= 0) for i, n in enumerate(counts))
