"""Default boxes: count, order, clamp and spot values of dboxes300_coco (replicated in float32)."""

from __future__ import annotations

from math import sqrt

import numpy as np
import pytest

from postprocess.heads.nvidia_ssd.priors import PriorSpec, default_boxes, xywh_to_ltrb

# index: (cx, cy, w, h), from a float32 replication of dboxes300_coco (6 decimals)
SPOT_XYWH = {
    0: (0.013333, 0.013333, 0.07, 0.07),
    1: (0.04, 0.013333, 0.07, 0.07),
    37: (1.0, 0.013333, 0.07, 0.07),
    38: (0.013333, 0.04, 0.07, 0.07),
    1444: (0.013333, 0.013333, 0.10247, 0.10247),
    5775: (1.0, 1.0, 0.049497, 0.098995),
    5776: (0.026667, 0.026667, 0.15, 0.15),
    7942: (0.053333, 0.053333, 0.33, 0.33),
    7951: (1.0, 0.053333, 0.33, 0.33),
    8542: (0.106667, 0.106667, 0.51, 0.51),
    8692: (0.166667, 0.166667, 0.69, 0.69),
    8728: (0.5, 0.5, 0.87, 0.87),
    8729: (0.5, 0.5, 0.955772, 0.955772),
    8730: (0.5, 0.5, 1.0, 0.615183),
    8731: (0.5, 0.5, 0.615183, 1.0),
}
SPOT_LTRB = {
    0: (-0.021667, -0.021667, 0.048333, 0.048333),
    1: (0.005, -0.021667, 0.075, 0.048333),
    7951: (0.835, -0.111667, 1.165, 0.218333),
    8728: (0.065, 0.065, 0.935, 0.935),
    8729: (0.022114, 0.022114, 0.977886, 0.977886),
    8730: (0.0, 0.192409, 1.0, 0.807591),
    8731: (0.192409, 0.0, 0.807591, 1.0),
}


@pytest.fixture(scope="module")
def boxes():
    return default_boxes(PriorSpec())


def test_count_dtype_and_level_offsets(boxes):
    assert boxes.shape == (8732, 4) and boxes.dtype == np.float32
    assert PriorSpec().num_priors == 8732
    # first box of each level sits at the first cell with the level's first size (s_k, s_k)
    for offset, fk, sk in zip((0, 5776, 7942, 8542, 8692, 8728), (37.5, 18.75, 9.375, 4.6875, 3.0, 1.0),
                              (21, 45, 99, 153, 207, 261)):
        np.testing.assert_allclose(boxes[offset], [0.5 / fk, 0.5 / fk, sk / 300, sk / 300], rtol=1e-6)


@pytest.mark.parametrize("index", sorted(SPOT_XYWH))
def test_spot_values_xywh(boxes, index):
    np.testing.assert_allclose(boxes[index], SPOT_XYWH[index], atol=1e-6)


@pytest.mark.parametrize("index", sorted(SPOT_LTRB))
def test_spot_values_ltrb_from_clamped_xywh(boxes, index):
    np.testing.assert_allclose(xywh_to_ltrb(boxes[index]), SPOT_LTRB[index], atol=1e-6)


def test_clamp_acts_on_xywh_only(boxes):
    """The clamp: 122 entries change (60 cx + 60 cy on level 2, one w and one h on level 5), 116 boxes."""
    spec = PriorSpec()
    raw = []
    for level, (f, step) in enumerate(zip(spec.feat_size, spec.steps)):
        fk, sk, sk1 = 300 / step, spec.scales[level] / 300, spec.scales[level + 1] / 300
        sizes = [(sk, sk), (sqrt(sk * sk1),) * 2]
        for a in spec.aspect_ratios[level]:
            sizes += [(sk * sqrt(a), sk / sqrt(a)), (sk / sqrt(a), sk * sqrt(a))]
        raw += [((j + 0.5) / fk, (i + 0.5) / fk, w, h) for w, h in sizes for i in range(f) for j in range(f)]
    raw = np.array(raw, dtype=np.float32)
    changed = raw != boxes
    assert changed.sum() == 122
    assert changed[:, 0].sum() == 60 and changed[:, 1].sum() == 60
    assert changed[:, 2].sum() == 1 and changed[:, 3].sum() == 1
    rows = np.nonzero(changed.any(axis=1))[0]
    assert len(rows) == 116 and rows.min() >= 7951 and rows.max() <= 8731
    ltrb = xywh_to_ltrb(boxes)
    assert ltrb.min() < -0.3 and ltrb.max() > 1.4  # ltrb is not clamped (about [-0.335, 1.402])


def test_read_only_and_cached(boxes):
    assert default_boxes(PriorSpec()) is boxes
    with pytest.raises(ValueError):
        boxes[0, 0] = 0.0
