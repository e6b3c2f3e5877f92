"""mmdet SSD300 head: anchors against the sheet's size table, and decode + NMS against a plain
per-image, per-class loop written here from the sheet's rules (other_models §2.3-§2.6, mmcv
batched_nms and nms_cpu), on crafted outputs with ties, near-threshold scores and full levels."""

from __future__ import annotations

from math import log

import numpy as np
import pytest

from postprocess.decode import softmax
from postprocess.heads import SSD300_MMDET, decoder_for
from postprocess.heads.mmdet_ssd import ssd_anchors
from postprocess.synthetic import mmdet_exact_outputs
from ssdconvert.synth import COCO_CATEGORIES

F32 = np.float32
FEAT = (38, 19, 10, 5, 3, 1)
STRIDES = (8, 16, 32, 64, 100, 300)
PER_LOCATION = (4, 6, 6, 6, 4, 4)
OFFSETS = (0, 5776, 7942, 8542, 8692, 8728)
# the sheet's size table (w, h) in pixels, per location in emission order
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


def test_anchor_sizes_match_the_sheet_table():
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


def decode_one(deltas, anchors, input_size=300):
    """DeltaXYWH per the sheet §2.5, float32: d = delta * std; centre/size without +1; d_w, d_h clamped
    to |log(16/1000)|; corners; clip to the input."""
    d = deltas.astype(F32) * np.array([0.1, 0.1, 0.2, 0.2], F32) + np.zeros(4, F32)
    px, py = (anchors[:, 0] + anchors[:, 2]) * F32(0.5), (anchors[:, 1] + anchors[:, 3]) * F32(0.5)
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    lim = F32(abs(log(16 / 1000)))
    dw, dh = np.clip(d[:, 2], -lim, lim), np.clip(d[:, 3], -lim, lim)
    gx, gy = px + pw * d[:, 0], py + ph * d[:, 1]
    gw, gh = pw * np.exp(dw), ph * np.exp(dh)
    out = np.stack([gx - gw * F32(0.5), gy - gh * F32(0.5), gx + gw * F32(0.5), gy + gh * F32(0.5)], axis=1)
    return np.clip(out, F32(0), F32(input_size))


def nms_per_class(boxes, scores, labels, iou_thr, strict=True):
    """mmcv batched_nms + nms_cpu, one class at a time, greedy one box at a time: boxes shifted by
    label * (max coordinate + 1) in float32; IoU without +1; suppress IoU > thr (float32)."""
    shift = labels.astype(F32) * (boxes.max() + F32(1))
    b = boxes + shift[:, None]
    keep = []
    for c in sorted(set(labels.tolist())):
        idx = [i for i in np.argsort(-scores, kind="stable") if labels[i] == c]
        alive = [True] * len(idx)
        for p, i in enumerate(idx):
            if not alive[p]:
                continue
            keep.append(i)
            for q in range(p + 1, len(idx)):
                j = idx[q]
                if not alive[q]:
                    continue
                iw = max(F32(0), min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
                ih = max(F32(0), min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
                inter = F32(iw * ih)
                area_i = (b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1])
                area_j = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
                iou = inter / (area_i + area_j - inter)
                if (iou > F32(iou_thr)) if strict else (iou >= F32(iou_thr)):
                    alive[q] = False
    keep = np.sort(np.array(keep, dtype=np.int64))  # one NMS over all shifted boxes: score order, ties by position
    return keep[np.argsort(-scores[keep], kind="stable")]


def mmdet_loop(deltas, logits, decoded_wh, version, nms_pre):
    """One image -> [x, y, w, h, score, category] rows, mmdet 3.x or 2.10 rules (sheet §2.6)."""
    anchors = ssd_anchors()
    scores = softmax(logits, axis=1)[:, :80]
    thr = F32(0.02)
    rows_a, rows_k = [], []
    for s, e in zip(OFFSETS, (*OFFSETS[1:], 8732)):
        if version == 3:  # per level: (anchor, class) pairs > thr, sorted by score, first nms_pre
            a, k = np.nonzero(scores[s:e] > thr)
            order = np.argsort(-scores[s:e][a, k], kind="stable")[:nms_pre]
            rows_a += (a[order] + s).tolist()
            rows_k += k[order].tolist()
        else:  # 2.10: per level with more anchors than nms_pre, the nms_pre best by best class score
            level = np.arange(s, e)
            if nms_pre is not None and e - s > nms_pre:
                level = level[np.argsort(-scores[s:e].max(axis=1), kind="stable")[:nms_pre]]
            for a in level:
                for k in range(80):
                    if scores[a, k] > thr:
                        rows_a.append(a)
                        rows_k.append(k)
    a, k = np.array(rows_a, dtype=np.int64), np.array(rows_k, dtype=np.int64)
    score = scores[a, k]
    boxes = decode_one(deltas[a], anchors[a])
    w, h = decoded_wh
    if version == 3:  # boxes * float32(1 / (300 / w)), then drop w or h <= 0
        boxes = boxes * np.array([1 / (300 / w), 1 / (300 / h)] * 2, F32)
        ok = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
        boxes, score, k = boxes[ok], score[ok], k[ok]
    else:  # boxes / float32(300 / w)
        boxes = boxes / np.array([300 / w, 300 / h] * 2, F32)
    if not len(score):
        return np.zeros((0, 6))
    keep = nms_per_class(boxes, score, k, 0.45)[:200]
    b = boxes[keep].astype(np.float64)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], score[keep], INV_MAP[k[keep]]])


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
    return deltas, logits, images


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
        expected = mmdet_loop(deltas[b], logits[b], wh, version, nms_pre)
        assert len(expected) > 20
        assert got.shape == expected.shape and np.array_equal(got, expected), (policy, b)
    scores = softmax(logits[0], axis=1)[:, :80]
    assert (scores[:5776] > 0.02).sum() > 1000 and (np.abs(scores - 0.02) < 2e-3).sum() > 200


def test_the_policies_differ_where_the_sheet_says():
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
