"""Reference-exact pieces, each against a literal implementation of maskrcnn-benchmark's rules."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from ssdconvert.zoo.faster_rcnn import boxes as B
from ssdconvert.zoo.faster_rcnn.config import REFERENCE, RcnnConfig
from ssdconvert.zoo.faster_rcnn.network import generated_cell_anchors

# cell anchors (x1, y1, x2, y2) per stride, worked out from generate_anchors (+1 and rounding) in
# maskrcnn-benchmark modeling/rpn/anchor_generator.py
CELL_ANCHORS = {
    4: [[-22, -10, 25, 13], [-14, -14, 17, 17], [-10, -22, 13, 25]],
    8: [[-40, -20, 47, 27], [-28, -28, 35, 35], [-20, -44, 27, 51]],
    16: [[-84, -40, 99, 55], [-56, -56, 71, 71], [-36, -80, 51, 95]],
    32: [[-164, -72, 195, 103], [-112, -112, 143, 143], [-76, -168, 107, 199]],
    64: [[-332, -152, 395, 215], [-224, -224, 287, 287], [-148, -328, 211, 391]],
}


def test_cell_anchors_are_the_worked_out_table():
    for stride, cell in zip(REFERENCE.anchor_strides, generated_cell_anchors()):
        assert cell.dtype == torch.float32
        assert cell.tolist() == CELL_ANCHORS[stride], stride


def test_grid_anchors_are_location_major_and_anchor_minor():
    cell = generated_cell_anchors()[1]  # stride 8
    anchors = B.grid_anchors(cell, 8, 3, 5)
    expected = [[x1 + 8 * j, y1 + 8 * i, x2 + 8 * j, y2 + 8 * i]
                for i in range(3) for j in range(5) for x1, y1, x2, y2 in CELL_ANCHORS[8]]
    assert anchors.tolist() == expected


def literal_decode(code, box, weights, clip=math.log(1000.0 / 16)):
    """BoxCoder.decode (modeling/box_coder.py) for one box, in float32 arithmetic."""
    f = np.float32
    x1, y1, x2, y2 = map(f, box)
    w, h = x2 - x1 + f(1), y2 - y1 + f(1)
    cx, cy = x1 + f(0.5) * w, y1 + f(0.5) * h
    dx, dy = f(code[0]) / f(weights[0]), f(code[1]) / f(weights[1])
    dw, dh = min(f(code[2]) / f(weights[2]), f(clip)), min(f(code[3]) / f(weights[3]), f(clip))
    px, py = dx * w + cx, dy * h + cy
    pw, ph = np.exp(dw) * w, np.exp(dh) * h
    return [px - f(0.5) * pw, py - f(0.5) * ph, px + f(0.5) * pw - f(1), py + f(0.5) * ph - f(1)]


@pytest.mark.parametrize("weights", [REFERENCE.rpn_box_weights, REFERENCE.box_weights], ids=["rpn", "box_head"])
def test_decode_uses_the_legacy_plus_one_minus_one_geometry(weights):
    gen = torch.Generator().manual_seed(0)
    boxes = torch.rand(50, 4, generator=gen) * 300
    boxes[:, 2:] += boxes[:, :2]
    codes = torch.randn(50, 8, generator=gen) * 2
    codes[:5, 2] = 30.0  # far past the log(1000/16) clamp
    got = B.decode(codes, boxes, weights, REFERENCE.bbox_xform_clip)
    for i in range(50):
        for k in range(2):
            expected = literal_decode(codes[i, 4 * k:4 * k + 4].tolist(), boxes[i].tolist(), weights)
            np.testing.assert_allclose(got[i, 4 * k:4 * k + 4].numpy(), expected, rtol=1e-6, atol=1e-4)
    # a zero code maps a box onto itself (the +1 width and the -1 cancel)
    assert torch.allclose(B.decode(torch.zeros(50, 4), boxes, weights, 4.0), boxes, atol=1e-4)
    # with a non-zero size code the +1 shows: dw = log 2 doubles the legacy width x2 - x1 + 1
    doubled = B.decode(torch.tensor([[0.0, 0.0, math.log(2) * weights[2], 0.0]]), torch.tensor([[10.0, 0, 19, 9]]),
                       weights, 4.0)
    assert doubled[0, 2] - doubled[0, 0] + 1 == pytest.approx(20.0)  # continuous: (19 - 10) * 2 = 18


def test_clip_uses_the_unpadded_size_minus_one():
    boxes = torch.tensor([[-5.0, -3.0, 500.0, 400.0], [10.0, 20.0, 30.0, 40.0]])
    got = B.clip_to_image(boxes, torch.tensor(100.0), torch.tensor(200.0))
    assert got.tolist() == [[0.0, 0.0, 199.0, 99.0], [10.0, 20.0, 30.0, 40.0]]


def literal_level(x1, y1, x2, y2):
    """LevelMapper (modeling/poolers.py): floor(4 + log2(sqrt(area) / 224 + 1e-6)) in [2, 5], +1 area, - 2."""
    s = math.sqrt((x2 - x1 + 1) * (y2 - y1 + 1))
    return min(max(math.floor(4 + math.log2(s / 224 + 1e-6)), 2), 5) - 2


@pytest.mark.parametrize("side, level", [
    (111, 0), (112, 1), (223, 1), (224, 2), (447, 2), (448, 3), (4, 0), (2000, 3)])
def test_level_mapper_boundaries_use_the_plus_one_area(side, level):
    box = torch.tensor([[10.0, 20.0, 10.0 + side - 1, 20.0 + side - 1]])  # legacy: `side` pixels wide
    assert literal_level(*box[0].tolist()) == level
    assert B.fpn_level(box).item() == level
    # continuous geometry would map a 224-pixel box one level down
    if side in (112, 224, 448):
        assert B.fpn_level(box + torch.tensor([0.0, 0.0, -1.0, -1.0])).item() == level - 1


def test_level_mapper_matches_the_literal_rule_on_random_boxes():
    gen = torch.Generator().manual_seed(1)
    xy = torch.rand(2000, 2, generator=gen) * 800
    wh = torch.exp(torch.rand(2000, 2, generator=gen) * 7)
    boxes = torch.cat([xy, xy + wh], 1)
    assert B.fpn_level(boxes).tolist() == [literal_level(*b) for b in boxes.tolist()]


def literal_nms(boxes, scores, thr, compare):
    """The reference kernels (csrc/cpu/nms_cpu.cpp, csrc/cuda/nms.cu): +1 areas and intersections,
    greedy by score."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    removed = set()
    for a, i in enumerate(order):
        if i in removed:
            continue
        for j in order[a + 1:]:
            if j in removed:
                continue
            bi, bj = boxes[i], boxes[j]
            w = max(0.0, min(bi[2], bj[2]) - max(bi[0], bj[0]) + 1)
            h = max(0.0, min(bi[3], bj[3]) - max(bi[1], bj[1]) + 1)
            inter = w * h
            ai = (bi[2] - bi[0] + 1) * (bi[3] - bi[1] + 1)
            aj = (bj[2] - bj[0] + 1) * (bj[3] - bj[1] + 1)
            ovr = inter / (ai + aj - inter)
            if (ovr >= thr) if compare == ">=" else (ovr > thr):
                removed.add(j)
    return sorted(set(range(len(scores))) - removed)


def test_nms_at_exactly_the_threshold_follows_the_kernel():
    # legacy areas: A = 4x2 = 8 px, B = 2x2 = 4 px, intersection 4 -> IoU exactly 0.5
    boxes = torch.tensor([[0.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    scores = torch.tensor([0.9, 0.8])
    assert B.legacy_iou(boxes)[0, 1].item() == 0.5
    assert B.nms(boxes, scores, 0.5, ">=").tolist() == [0] == literal_nms(boxes.tolist(), [0.9, 0.8], 0.5, ">=")
    assert B.nms(boxes, scores, 0.5, ">").tolist() == [0, 1] == literal_nms(boxes.tolist(), [0.9, 0.8], 0.5, ">")


@pytest.mark.parametrize("compare", [">=", ">"])
def test_nms_matches_the_literal_kernel_on_random_boxes(compare):
    gen = torch.Generator().manual_seed(2)
    xy = torch.randint(0, 60, (300, 2), generator=gen).float()
    wh = torch.randint(0, 30, (300, 2), generator=gen).float()  # integer boxes: exact IoU ties happen
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.randint(0, 50, (300,), generator=gen).float() / 50  # and score ties too
    expected = literal_nms(boxes.tolist(), scores.tolist(), 0.5, compare)
    assert B.nms(boxes, scores, 0.5, compare).tolist() == expected


def test_the_onnx_nms_on_plus_one_boxes_is_the_legacy_nms_with_strict_compare():
    from ssdconvert.zoo.faster_rcnn.fixed import plus_one
    from ssdconvert.zoo.faster_rcnn.onnx_ops import nms_keep

    gen = torch.Generator().manual_seed(3)
    xy = torch.rand(400, 2, generator=gen) * 100
    boxes = torch.cat([xy, xy + torch.rand(400, 2, generator=gen) * 40], 1)
    scores = torch.rand(400, generator=gen)
    keep = nms_keep(plus_one(boxes).numpy(), scores.numpy(), 0.7, 1000, 0.0)
    assert np.flatnonzero(keep).tolist() == literal_nms(boxes.tolist(), scores.tolist(), 0.7, ">")


def literal_roi_align(feature, roi, scale, out=7, ratio=2):
    """RoIAlign with aligned=False for one RoI, point by point: no -0.5 shift, width/height >= 1,
    2x2 samples per bin, a point outside [-1, size] adds 0, else clamp to >= 0 and use the last
    row/column at the edge."""
    c, height, width = feature.shape
    x1, y1, x2, y2 = [v * scale for v in roi]
    rw, rh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    bw, bh = rw / out, rh / out
    result = np.zeros((c, out, out))

    def bilinear(y, x):
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return np.zeros(c)
        y, x = max(y, 0.0), max(x, 0.0)
        y0, x0 = int(y), int(x)
        if y0 >= height - 1:
            y0 = y1_ = height - 1
            y = float(y0)
        else:
            y1_ = y0 + 1
        if x0 >= width - 1:
            x0 = x1_ = width - 1
            x = float(x0)
        else:
            x1_ = x0 + 1
        ly, lx = y - y0, x - x0
        return ((1 - ly) * (1 - lx) * feature[:, y0, x0] + (1 - ly) * lx * feature[:, y0, x1_]
                + ly * (1 - lx) * feature[:, y1_, x0] + ly * lx * feature[:, y1_, x1_])

    for ph in range(out):
        for pw in range(out):
            acc = np.zeros(c)
            for iy in range(ratio):
                for ix in range(ratio):
                    acc += bilinear(y1 + ph * bh + (iy + 0.5) * bh / ratio, x1 + pw * bw + (ix + 0.5) * bw / ratio)
            result[:, ph, pw] = acc / (ratio * ratio)
    return result


def test_roi_align_matches_the_literal_kernel():
    gen = torch.Generator().manual_seed(4)
    features = torch.randn(2, 3, 10, 13, generator=gen)
    rois = torch.tensor([
        [8.0, 4.0, 40.0, 30.0],  # ordinary
        [-20.0, -12.0, 10.0, 6.0],  # starts before the map: points in [-1, 0) clamp, below -1 add 0
        [40.0, 30.0, 70.0, 60.0],  # runs past the bottom-right edge (map is 52 x 40 px at scale 1/4)
        [20.0, 20.0, 20.5, 20.2],  # malformed: forced to 1 x 1 feature pixel
        [0.0, 0.0, 51.0, 39.0],  # the whole map
    ])
    batch = torch.tensor([0, 1, 0, 1, 1])
    got = B.roi_align(features, rois, batch, 0.25, 7, 2)
    for r in range(len(rois)):
        expected = literal_roi_align(features[batch[r]].double().numpy(), rois[r].tolist(), 0.25)
        np.testing.assert_allclose(got[r].numpy(), expected, atol=1e-5)  # float32 vs float64
    assert B.roi_align(features, rois[:0], batch[:0], 0.25).shape == (0, 3, 7, 7)


def _tied_head_outputs(classes_tied: int = 3, proposals: int = 60):
    """Box-head outputs where `classes_tied` classes score the same on every proposal (exact ties)."""
    cfg = REFERENCE
    logits = torch.full((proposals, cfg.num_classes), -5.0)
    logits[:, 1:1 + classes_tied] = 3.0
    gen = torch.Generator().manual_seed(5)
    xy = torch.rand(proposals, 2, generator=gen) * 600
    rois = torch.cat([xy, xy + 20 + torch.rand(proposals, 2, generator=gen) * 60], 1)
    return logits, torch.zeros(proposals, cfg.num_classes * 4), rois


def test_ties_past_100_are_kept_by_the_reference_and_cut_at_k_by_the_fixed_graph():
    from ssdconvert.zoo.faster_rcnn.fixed import FixedSizeDetector
    from ssdconvert.zoo.faster_rcnn.network import FasterRCNN
    from ssdconvert.zoo.faster_rcnn.reference import Proposals, filter_detections

    logits, deltas, rois = _tied_head_outputs()
    ref = filter_detections(logits, deltas, [Proposals(rois, torch.ones(len(rois)))], [(800, 800)], REFERENCE)[0]
    # literal PostProcessor.filter_results (roi_heads/box_head/inference.py): more than 100 -> keep
    # score >= the (n - 100 + 1)-th smallest; all equal -> all kept
    survivors = len(ref)
    assert survivors > 100 and torch.unique(ref.scores).numel() == 1
    assert ref.labels.tolist() == sorted(ref.labels.tolist())  # concatenated class by class

    detector = FixedSizeDetector(FasterRCNN(RcnnConfig()))
    boxes, scores, labels, count = detector.detect(logits, deltas, rois[None], torch.ones(1, len(rois), dtype=torch.bool),
                                                   torch.tensor([[800.0]]), torch.tensor([[800.0]]))
    assert count.tolist() == [100]
    # ties resolved by lower class, then lower proposal: the reference's first 100, in its order
    assert labels[0].tolist() == ref.labels[:100].tolist()
    assert torch.equal(boxes[0], ref.boxes[:100]) and torch.equal(scores[0], ref.scores[:100])


def test_saturated_objectness_ties_are_ranked_by_the_logit_in_the_reference_and_the_graph(tmp_path):
    """sigmoid(17), sigmoid(18), ... are all 1.0 in float32: ranked by probability, which of them make the
    per-level top k would be up to each runtime's sort and sigmoid (a 1344x1344 canvas showed 16 such ties
    at the 1000th place). Ranked by the logit, the k largest logits are chosen, in that order."""
    import onnxruntime as ort

    from ssdconvert.zoo.faster_rcnn import reference
    from ssdconvert.zoo.faster_rcnn.fixed import FixedSizeDetector
    from ssdconvert.zoo.faster_rcnn.network import FasterRCNN

    logits = torch.tensor([[17.0, 19.0, 17.25, 18.0, 20.0, 17.5, 9.0, 18.5]])
    assert torch.unique(logits[:, :6].sigmoid()).tolist() == [1.0]  # six exact ties
    anchors = torch.tensor([[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(8)])  # disjoint: NMS keeps all
    config = RcnnConfig(pre_nms_top_n=3, post_nms_top_n=3, fpn_post_nms_top_n=3)
    (proposals,) = reference.select_proposals([logits], [torch.zeros(1, 8, 4)], [anchors], [(100, 100)], config)
    literal = torch.argsort(logits[0], descending=True)[:3]  # 20.0, 19.0, 18.5: no equal logits
    assert torch.equal(proposals.boxes, anchors[literal])

    class LevelProposals(torch.nn.Module):  # the fixed graph's proposal stage on one level with these anchors
        def __init__(self):
            super().__init__()
            self.detector = FixedSizeDetector(FasterRCNN(config))

        def forward(self, objectness):
            size = torch.full((objectness.shape[0], 1), 100.0)
            return self.detector.level_proposals([objectness], [torch.zeros(objectness.shape[0], 8, 4)], [anchors],
                                                 size, size)

    module = LevelProposals().eval()
    with torch.no_grad():
        boxes, valid = module(logits)
        assert valid.all() and torch.equal(boxes[0], anchors[literal])
        path = tmp_path / "level.onnx"
        with warnings.catch_warnings():  # the tracer's notes on the Functions' numeric forwards
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, (logits,), str(path), input_names=["objectness"],
                              output_names=["boxes", "valid"], opset_version=16, dynamo=False)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"objectness": logits.numpy()})
    assert got[1].all() and np.array_equal(got[0][0], anchors[literal].numpy())
