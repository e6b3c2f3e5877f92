"""The head's decode + NMS equal a literal per-image loop written here from ST's decode rule and the
cited NMS values, on the real model's outputs for the real images; the head declares what the graph
gives.

ST's rule (meta-st-x-linux-ai ssd_mobilenet_pp.py at 8003709d, decode_predictions): per anchor,
xmin = off_xmin * w + a_xmin, ymin = off_ymin * h + a_ymin, xmax = off_xmax * w + a_xmax,
ymax = off_ymax * h + a_ymax with w = a_xmax - a_xmin, h = a_ymax - a_ymin.
TF OD API (ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config at tensorflow/models 5245161c;
post_processing.py at 0492e5bb; non_max_suppression_op.cc at tensorflow 0698f751): per class, score
> 1e-8, greedy NMS dropping IoU > 0.6 (IoU of min/max corners, 0 for an empty box), 100 per class;
all classes by score, clipped to [0, 1], empty boxes dropped, 100 per image.
ST's app (non_max_supression; --conf_threshold 0.70, --iou_threshold 0.45 in stai_mpu_object_detection.py
at 364e6b4a): anchors with a column 1..80 > 0.70, score = max and class = argmax of the row, one greedy
pass over all classes keeping a box while IoU <= 0.45.
"""

from __future__ import annotations

import numpy as np
import pytest

from postprocess.heads import decoder_for

TF_IMAGES = 4  # the per-class loop visits every class of every image: a few images keep it fast


@pytest.fixture(scope="module")
def outputs(spec, st_export, val_bins):
    """The FP32 model's (scores, offsets, anchors) for the 43 images, and their records."""
    import onnxruntime as ort

    from preprocess.manifest import read_manifest

    manifest = read_manifest(val_bins)
    x = np.stack([np.fromfile(val_bins / f"{r.stem}.bin", np.uint8).reshape(256, 256, 3) for r in manifest.images])
    session = ort.InferenceSession(str(st_export), providers=["CPUExecutionProvider"])
    return session.run(list(spec.output_names), {spec.input.name: x}), manifest.images


def st_decode(offsets, anchors) -> np.ndarray:
    """decode_predictions, anchor by anchor, in float32 scalars as ST's numpy loop computes it."""
    boxes = []
    for off, a in zip(offsets, anchors):
        w, h = a[2] - a[0], a[3] - a[1]
        boxes.append((off[0] * w + a[0], off[1] * h + a[1], off[2] * w + a[2], off[3] * h + a[3]))
    return np.array(boxes, dtype=np.float32)


def tf_iou(box, others) -> np.ndarray:
    """non_max_suppression_op.cc IOU: min/max corners, 0 when either area is <= 0, float32."""
    lo, hi = np.minimum(others[:, :2], others[:, 2:]), np.maximum(others[:, :2], others[:, 2:])
    blo, bhi = np.minimum(box[:2], box[2:]), np.maximum(box[:2], box[2:])
    area, barea = (hi[:, 0] - lo[:, 0]) * (hi[:, 1] - lo[:, 1]), (bhi[0] - blo[0]) * (bhi[1] - blo[1])
    inter = np.maximum(np.minimum(hi, bhi) - np.maximum(lo, blo), np.float32(0))
    inter = inter[:, 0] * inter[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (barea + area - inter)
    return np.where((area <= 0) | (barea <= 0), np.float32(0), iou)


def tf_loop(scores, boxes) -> list[tuple]:
    """(score, class column, anchor, clipped box) of one image, best first."""
    found = []
    for c in range(1, scores.shape[1]):
        column = scores[:, c]
        order = np.lexsort((np.arange(len(column)), -column))  # by score, then the lower anchor
        order = order[column[order] > np.float32(1e-8)]
        selected = []
        for a in order:  # the kernel: a candidate survives unless IoU > 0.6 with a selected box
            if len(selected) == 100:
                break
            if not selected or not (tf_iou(boxes[a], boxes[selected]) > np.float32(0.6)).any():
                selected.append(a)
        found += [(column[a], c, a) for a in selected]
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    kept = []
    for score, c, a in found:
        box = np.clip(boxes[a], np.float32(0), np.float32(1))
        if (box[3] - box[1]) * (box[2] - box[0]) > 0:
            kept.append((score, c, a, box))
    return kept[:100]


def st_loop(scores, boxes) -> list[tuple]:
    """ST's postprocess_predictions + non_max_supression of one image."""
    rows = np.where(np.any(scores[:, 1:81] > 0.70, axis=1))[0]
    score, label = np.max(scores[rows], axis=1), np.argmax(scores[rows], axis=1)
    remaining = np.argsort(score, kind="stable")[::-1]
    kept = []
    while len(remaining):
        i, rest = remaining[0], remaining[1:]
        kept.append((score[i], label[i], rows[i], boxes[rows[i]]))
        x1, y1, x2, y2 = (boxes[rows, k] for k in range(4))
        area = (x2 - x1) * (y2 - y1)
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        overlap = w * h / (area[i] + area[rest] - w * h)
        remaining = rest[np.where(overlap <= 0.45)[0]]
    return kept


def literal_rows(loop, arrays, images) -> np.ndarray:
    rows = []
    for (scores, offsets, anchors), image in zip(zip(*arrays), images):
        size = np.array([image.width, image.height] * 2, np.float64)
        for score, label, _, box in loop(scores, st_decode(offsets, anchors)):
            x0, y0, x1, y1 = box.astype(np.float64) * size
            rows.append([image.id, x0, y0, x1 - x0, y1 - y0, score, label])
    return np.array(rows, np.float64).reshape(-1, 7)


@pytest.mark.parametrize("policy, loop, count", [("tf-od-api", tf_loop, TF_IMAGES), ("st-app", st_loop, 43)])
def test_decode_and_nms_equal_the_literal_loop(spec, outputs, policy, loop, count):
    arrays, images = outputs
    arrays, images = [a[:count] for a in arrays], images[:count]
    decoder = decoder_for(spec.head, policy)
    got = decoder.rows(decoder.select(arrays), images, np.arange(81))  # labels as score columns
    expected = literal_rows(loop, arrays, images)
    assert got.shape == expected.shape and len(got) > 0
    assert np.array_equal(got, expected)
    if policy == "tf-od-api":
        assert len(got) == 100 * count  # every image fills its 100 detections
    print(f"{policy}: {len(got)} detections on {count} images, identical to the literal loop")


def test_the_graph_gives_what_the_head_declares(spec, outputs):
    (scores, offsets, anchors), _ = outputs
    assert [a.shape[1:] for a in (scores, offsets, anchors)] == [o.shape for o in spec.head.outputs]
    assert np.allclose(scores.sum(-1), 1, atol=1e-5) and (scores >= 0).all()  # softmax, background column 0
    assert (anchors == anchors[:1]).all()  # the same anchors for every image
    wh = anchors[0, :, 2:] - anchors[0, :, :2]
    assert (wh > 0).all() and anchors.min() > -1 and anchors.max() < 2  # normalised corners
    assert spec.head.num_anchors == 6820 and spec.head.background_index == 0
