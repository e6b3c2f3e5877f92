"""mmdet SSD300 head: anchors against a size table, and decode + NMS against a plain per-image,
per-class loop written from mmdet's rules (SSDAnchorGenerator, DeltaXYWHBBoxCoder, the SSD300
test_cfg; mmcv batched_nms and nms_cpu; benchmarks/loop_baseline.py), on crafted outputs with ties,
near-threshold scores and full levels."""

from __future__ import annotations

import numpy as np
import pytest
from loop_baseline import mmdet_loop

from postprocess.candidates import softmax
from postprocess.heads import SSD300_MMDET, decoder_for
from postprocess.heads.mmdet_ssd.anchors import ssd_anchors
from postprocess.heads.mmdet_ssd.synthetic import mmdet_exact_outputs
from ssdconvert.synth import COCO_CATEGORIES

F32 = np.float32
FEAT = (38, 19, 10, 5, 3, 1)
STRIDES = (8, 16, 32, 64, 100, 300)
PER_LOCATION = (4, 6, 6, 6, 4, 4)
OFFSETS = (0, 5776, 7942, 8542, 8692, 8728)
# (w, h) in pixels, per location in emission order, computed from SSDAnchorGenerator's rules
SIZES = {
    0: [(21, 21), (30.74, 30.74), (29.70, 14.85), (14.85, 29.70)],
    1: [(45, 45), (66.75, 66.75), (63.64, 31.82), (31.82, 63.64), (77.94, 25.98), (25.98, 77.94)],
    2: [(99, 99), (123.07, 123.07), (140.01, 70.0), (70.0, 140.01), (171.47, 57.16), (57.16, 171.47)],
    3: [(153, 153), (177.96, 177.96), (216.37, 108.19), (108.19, 216.37), (265.0, 88.33), (88.33, 265.0)],
    4: [(207, 207), (232.44, 232.44), (292.74, 146.37), (146.37, 292.74)],
    5: [(261, 261), (286.73, 286.73), (369.11, 184.55), (184.55, 369.11)],
}
CATEGORIES = [{"id": i, "name": n, "supercategory": s} for i, n, s in COCO_CATEGORIES]
INV_MAP = np.array([c[0] for c in COCO_CATEGORIES] + [0])


def test_anchor_sizes_match_the_size_table():
    anchors = ssd_anchors()
    assert anchors.shape == (8732, 4) and anchors.dtype == np.float32
    for level, sizes in SIZES.items():
        got = anchors[OFFSETS[level]:OFFSETS[level] + len(sizes)]
        wh = np.stack([got[:, 2] - got[:, 0], got[:, 3] - got[:, 1]], axis=1)
        assert np.allclose(wh, sizes, atol=0.006), level


@pytest.mark.parametrize("level", range(6))
def test_anchors_are_location_major_in_pixels_and_not_clamped(level):
    anchors = ssd_anchors()
    f, s, a_per = FEAT[level], STRIDES[level], PER_LOCATION[level]
    rng = np.random.default_rng(level)
    for y, x, a in zip(rng.integers(0, f, 10), rng.integers(0, f, 10), rng.integers(0, a_per, 10)):
        box = anchors[OFFSETS[level] + (y * f + x) * a_per + a]
        assert (box[0] + box[2]) / 2 == pytest.approx(x * s + s / 2)
        assert (box[1] + box[3]) / 2 == pytest.approx(y * s + s / 2)
        w, h = SIZES[level][a]
        assert box[2] - box[0] == pytest.approx(w, abs=0.006) and box[3] - box[1] == pytest.approx(h, abs=0.006)
    last = anchors[OFFSETS[level] + f * f * a_per - 1]
    assert (last[0] + last[2]) / 2 == (f - 1) * s + s / 2  # e.g. level 2: 304 px, beyond the 300 input


def test_spot_values_beyond_the_input_are_kept():
    anchors = ssd_anchors()
    wide = anchors[8728 + 2]  # level 5 wide box: 369.11 x 184.55 about (150, 150)
    assert wide[0] == pytest.approx(150 - 369.11 / 2, abs=0.01) and wide[2] == pytest.approx(150 + 369.11 / 2, abs=0.01)
    assert anchors[0].tolist() == [-6.5, -6.5, 14.5, 14.5]  # 21 px square about (4, 4)
    assert SSD300_MMDET.anchors.base_sizes == ((21, 45, 99, 153, 207, 261), (45, 99, 153, 207, 261, 315))


# ------------------------------------------------------------------------------ the plain loop
# benchmarks/loop_baseline.mmdet_loop: mmdet's rules written as a per-image, per-class loop


class Image:
    def __init__(self, id, stem, width, height, decoded_width=None, decoded_height=None):
        self.id, self.stem, self.width, self.height = id, stem, width, height
        self.decoded_width, self.decoded_height = decoded_width, decoded_height


def crafted_outputs(seed: int):
    """Three images: objects on their anchors, a noisy background whose foreground scores sit around
    the 0.02 threshold, exact ties (copied logit rows), and a level-0 block with > 1000 pairs."""
    rng = np.random.default_rng(seed)
    boxes = [rng.uniform(0, 0.5, (5, 2)) for _ in range(3)]
    boxes = [np.concatenate([b, b + rng.uniform(0.1, 0.5, b.shape)], axis=1).clip(0, 1) for b in boxes]
    labels = [rng.integers(0, 80, 5) for _ in range(3)]
    deltas, exact = mmdet_exact_outputs(boxes, labels, confidence=9.0)
    deltas, exact = deltas.transpose(0, 2, 1), exact.transpose(0, 2, 1)  # build in (B, A, C), anchors first
    logits = rng.normal(0, 1, exact.shape).astype(F32)
    logits[..., 80] = np.where(exact[..., 80] > 0, F32(7.0), F32(0.0))  # score > 0.02 needs z > ~3.2
    logits[..., :80] = np.where(exact[..., :80] == 9.0, F32(9.0), logits[..., :80])  # the objects
    deltas = deltas + rng.normal(0, 0.5, deltas.shape).astype(F32)
    for b in range(3):
        logits[b, rng.integers(0, 8732, 40)] = logits[b, rng.integers(0, 8732, 40)]  # exact ties
        logits[b, 200:230] = logits[b, 199]  # 30 neighbouring anchors, identical scores
        logits[b, 100:160, :3] += F32(3.0)
    logits[0, :700, 5:7] = F32(5.0)  # > 1000 tied pairs above threshold in level 0 (nms_pre cuts them)
    images = [Image(11, "a", 640, 480), Image(12, "b", 427, 640, 640, 427), Image(13, "c", 97, 130)]
    return (np.ascontiguousarray(deltas.transpose(0, 2, 1)), np.ascontiguousarray(logits.transpose(0, 2, 1)),
            images)


@pytest.mark.parametrize("policy, version, nms_pre", [("mmdet3", 3, 1000), ("mmdet2", 2, None),
                                                      ("mmdet2-nms-pre", 2, 1000)])
@pytest.mark.parametrize("seed", [0, 1])
def test_decode_and_nms_equal_the_plain_loop(policy, version, nms_pre, seed):
    deltas, logits, images = crafted_outputs(seed)
    decoder = decoder_for(SSD300_MMDET, policy)
    rows = decoder.rows(decoder.select([deltas, logits]), images, SSD300_MMDET.category_ids(CATEGORIES))
    for b, im in enumerate(images):
        got = rows[rows[:, 0] == im.id][:, 1:]
        wh = (im.decoded_width or im.width, im.decoded_height or im.height)
        expected = mmdet_loop(deltas[b], logits[b], ssd_anchors(), wh, version=version, nms_pre=nms_pre)
        expected[:, 5] = INV_MAP[expected[:, 5].astype(int)]
        assert len(expected) > 20
        assert got.shape == expected.shape and np.array_equal(got, expected), (policy, b)
    scores = softmax(logits[0], axis=0)[:80].T
    assert (scores[:5776] > 0.02).sum() > 1000 and (np.abs(scores - 0.02) < 2e-3).sum() > 200


def test_the_nms_pre_policies_differ_as_mmdet_versions_do():
    """nms_pre on (anchor, class) pairs (3.x) keeps fewer boxes than on anchors (2.10); no nms_pre keeps more."""
    deltas, logits, images = crafted_outputs(0)
    counts = {}
    for policy in ("mmdet3", "mmdet2", "mmdet2-nms-pre"):
        d = decoder_for(SSD300_MMDET, policy)
        counts[policy] = d.rows(d.select([deltas[:1], logits[:1]]), images[:1], INV_MAP)
    assert not np.array_equal(counts["mmdet3"], counts["mmdet2-nms-pre"])
    assert len(counts["mmdet2"]) >= len(counts["mmdet2-nms-pre"])


def test_rescale_uses_the_decoded_size_and_clips_to_the_input():
    """A box hanging over the 300x300 input is clipped before rescaling; an EXIF-rotated image
    (decoded 480x640, json 640x480) is rescaled by its decoded size, as mmdet does."""
    box = np.array([[0.5, 0.5, 1.3, 0.9]])  # beyond the right edge
    deltas, logits = mmdet_exact_outputs([box], [np.array([3])])
    decoder = decoder_for(SSD300_MMDET)
    rows = decoder.rows(decoder.select([deltas, logits]), [Image(1, "x", 640, 480, 480, 640)], INV_MAP)
    (x, y, w, h, score, cat), = rows[:, 1:].tolist()
    assert cat == 4 and score > 0.99
    assert x == pytest.approx(0.5 * 480, abs=0.01) and x + w == pytest.approx(480, abs=1e-3)  # clipped at 300 px
    assert y == pytest.approx(0.5 * 640, abs=0.01) and h == pytest.approx(0.4 * 640, abs=0.01)


def test_category_ids_follow_the_file_order_of_matching_names():
    shuffled = CATEGORIES[::-1] + [{"id": 999, "name": "not a coco class"}]
    inv = SSD300_MMDET.category_ids(shuffled)
    assert inv[0] == 90 and inv[79] == 1 and inv[80] == 0  # label k -> k-th matching category in file order
    with pytest.raises(Exception, match="categories named like"):
        SSD300_MMDET.category_ids(CATEGORIES[:79])
