"""The two ONNX-backed Functions: their PyTorch forward equals what ONNX Runtime and OpenVINO compute."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from ssdconvert.zoo.faster_rcnn.onnx_ops import nms_keep_mask, roi_align

F32 = {"INFERENCE_PRECISION_HINT": "f32"}
# the Functions run their numeric forward while being traced; the symbolic replaces it in the graph
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")


class NmsModule(torch.nn.Module):
    def forward(self, boxes, scores):
        return nms_keep_mask(boxes, scores, 0.5, 7, 0.0)


class RoiAlignModule(torch.nn.Module):
    def forward(self, features, rois, batch_index):
        return roi_align(features, rois, batch_index, 0.25, 7, 2)


def export(module, args, names, path, opset=16):
    axes = {name: {0: "N"} for name in (*names, "out")}
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=names, output_names=["out"], opset_version=opset,
                          dynamic_axes=axes, dynamo=False)
    return path


def run_ort(path, feed):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]


def run_openvino(path, feed):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", F32)
    return compiled(feed)[compiled.output(0)]


def random_nms_inputs(seed=0, batch=2, classes=3, n=60):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, n, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(batch, n, 2, generator=gen) * 30], -1)
    scores = torch.rand(batch, classes, n, generator=gen) * 2 - 0.5  # some below the 0.0 score threshold
    return boxes, scores


def test_nms_mask_forward_equals_onnx_runtime_and_openvino(tmp_path):
    boxes, scores = random_nms_inputs()
    path = export(NmsModule(), (boxes, scores), ["boxes", "scores"], tmp_path / "nms.onnx")
    expected = NmsModule()(boxes, scores).numpy()
    assert 0 < expected.sum() < (scores > 0).sum()  # NMS removed some candidates
    assert (expected.sum(-1) <= 7).all() and (expected.sum(-1) == 7).any()  # max_output_boxes_per_class
    boxes2, scores2 = random_nms_inputs(seed=1, batch=3)  # another batch size through the same graph
    for b, s in ((boxes, scores), (boxes2, scores2)):
        feed = {"boxes": b.numpy(), "scores": s.numpy()}
        want = NmsModule()(b, s).numpy()
        assert np.array_equal(run_ort(path, feed), want)
        assert np.array_equal(run_openvino(path, feed), want)


def test_runtimes_differ_only_at_an_iou_equal_to_the_threshold(tmp_path):
    """Measured semantics: ONNX Runtime suppresses IoU > thr (as maskrcnn-benchmark's CUDA kernel and the
    Function's forward), OpenVINO IoU >= thr (as its CPU kernel)."""
    boxes = torch.tensor([[[0.0, 0.0, 4.0, 1.0], [0.0, 0.0, 2.0, 1.0], [10.0, 10.0, 12.0, 12.0]]])  # IoU(0, 1) = 0.5
    scores = torch.tensor([[[0.9, 0.8, 0.7]]])
    path = export(NmsModule(), (boxes, scores), ["boxes", "scores"], tmp_path / "nms_tie.onnx")
    feed = {"boxes": boxes.numpy(), "scores": scores.numpy()}
    assert NmsModule()(boxes, scores)[0, 0].tolist() == [1.0, 1.0, 1.0]
    assert run_ort(path, feed)[0, 0].tolist() == [1.0, 1.0, 1.0]
    assert run_openvino(path, feed)[0, 0].tolist() == [1.0, 0.0, 1.0]


def roi_inputs():
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(2, 4, 10, 13, generator=gen)
    rois = torch.tensor([[8.0, 4.0, 40.0, 30.0], [-20.0, -12.0, 10.0, 6.0], [40.0, 30.0, 70.0, 60.0],
                         [20.0, 20.0, 20.5, 20.2], [0.0, 0.0, 51.0, 39.0], [3.3, 7.1, 29.9, 12.4]])
    return features, rois, torch.tensor([0, 1, 0, 1, 1, 0])


@pytest.mark.parametrize("opset, mode", [(16, "output_half_pixel"), (11, None)])
def test_roi_align_is_unshifted_in_every_runtime_and_says_so_from_opset_16(tmp_path, opset, mode):
    features, rois, batch = roi_inputs()
    path = export(RoiAlignModule(), (features, rois, batch), ["features", "rois", "batch_index"],
                  tmp_path / f"roi{opset}.onnx", opset)
    node = next(n for n in onnx.load(str(path)).graph.node if n.op_type == "RoiAlign")
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attributes.get("coordinate_transformation_mode", b"").decode() == (mode or "")
    assert attributes["sampling_ratio"] == 2 and attributes["output_height"] == 7
    expected = RoiAlignModule()(features, rois, batch).numpy()
    feed = {"features": features.numpy(), "rois": rois.numpy(), "batch_index": batch.numpy()}
    np.testing.assert_allclose(run_ort(path, feed), expected, atol=1e-5)
    np.testing.assert_allclose(run_openvino(path, feed), expected, atol=1e-5)
    # the aligned (-0.5 shifted) variant is measurably different, so the comparison above can fail
    shifted = RoiAlignModule()(features, rois - 2.0, batch).numpy()  # -0.5 px at scale 1/4
    assert np.abs(shifted - expected).max() > 0.05
