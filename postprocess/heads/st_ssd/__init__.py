"""STMicroelectronics' SSD head (SSD-MobileNetV2-FPNLite 256x256 of X-LINUX-AI): anchors as a model output,
the corner-offset box coder, softmax scores with background column 0.

Sources (read in the repositories, not copied):
- ST = STMicroelectronics/meta-st-x-linux-ai, recipes-samples/object-detection/files/stai-mpu/:
  ssd_mobilenet_pp.py at 8003709d (same text at 85d76b13): decode_predictions (xmin = offset_xmin * w +
  a_xmin, ..., xmax = offset_xmax * w + a_xmax with w, h the anchor's size), postprocess_predictions
  (anchors with any of score columns 1..80 > confidence_thresh; score = max, class = argmax over all 81
  columns), non_max_supression (class-agnostic greedy, np.argsort(scores)[::-1], a box stays while
  IoU <= threshold, no +1); stai_mpu_object_detection.py at 364e6b4a: --conf_threshold 0.70 and
  --iou_threshold 0.45 by default, outputs read as scores (index 0), offsets (1), anchors (2).
- TF = tensorflow/models research/object_detection/configs/tf2/
  ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8.config at 5245161c: post_processing
  batch_non_max_suppression score_threshold 1e-8, iou_threshold 0.6, max_detections_per_class 100,
  max_total_detections 100 (use_class_agnostic_nms unset: per class); research/object_detection/core/
  post_processing.py at 0492e5bb, multiclass_non_max_suppression: per class
  tf.image.non_max_suppression_with_scores, classes concatenated and sorted by score, clipped to the
  window (normalised [0, 0, 1, 1] for an unpadded image) with zero-area boxes pruned, then the first
  max_total_detections; tensorflow/tensorflow core/kernels/image/non_max_suppression_op.cc at 0698f751:
  candidates score > threshold, ranked by score then lower index, suppressed when IoU > threshold, IOU
  of min/max corners and 0 when either box has no area.

The graph gives every image the same anchors (output `StatefulPartitionedCall:0`); eval reads them from
the results like the other outputs. The decoded boxes are normalised to the image, so COCO rows scale them
by the original width and height.

    coder      decode_corners, encode_corners      nms        tf_multiclass, st_agnostic
    decoder    StSsdDecoder                         synthetic  outputs from known boxes (tests)
"""

from __future__ import annotations

from dataclasses import dataclass

from postprocess.heads.spec import DetectionHead, HeadKind, NmsPolicy
from postprocess.heads.st_ssd.decoder import StSsdDecoder
from postprocess.heads.st_ssd.synthetic import outputs_from_boxes
from stageio.tensor import TensorSpec

ANCHORS = 6820

TF_OD_API = NmsPolicy(
    name="tf-od-api", summary="TF Object Detection API (ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8): per class "
                              "score > 1e-8, NMS suppressing IoU > 0.6, 100 per class; clipped to the image, "
                              "empty boxes dropped, 100 per image",
    score_threshold=1e-8, iou_threshold=0.6, suppress_at_equal=False, selection="tf-multiclass", pre_nms_top_k=100,
    max_per_image=100, drop_empty_boxes=True)
ST_APP = NmsPolicy(
    name="st-app", summary="ST X-LINUX-AI app: anchors with a foreground score > 0.70, best column's score and "
                           "label, class-agnostic NMS keeping IoU <= 0.45; no clipping, no cap",
    score_threshold=0.70, iou_threshold=0.45, suppress_at_equal=False, selection="st-agnostic", pre_nms_top_k=None,
    max_per_image=ANCHORS)


@dataclass(frozen=True)
class StSsdHead(DetectionHead):
    """Outputs scores (A, C) softmax, offsets (A, 4) and anchors (A, 4), in that order."""

    kind = "ssd-st"

    @property
    def num_anchors(self) -> int:
        return self.outputs[0].shape[0]

    def describe(self) -> dict:
        return {**super().describe(),
                "anchors": {"count": self.num_anchors, "source": f"model output {self.outputs[2].name}",
                            "units": "normalised xmin, ymin, xmax, ymax"},
                "box_coder": {"type": "corner offsets", "rule": "box = anchor + offset * (w, h, w, h) of the anchor",
                              "variances": None, "clip": "tf-od-api: to the image after NMS; st-app: none"},
                "scores": f"softmax probabilities from the model, background column {self.background_index}",
                "categories": "score column c (1..80) -> c-th category of the annotation file"}

    def summary(self) -> list[str]:
        return [f"anchors {self.num_anchors} from the model's output {self.outputs[2].name}; corner offsets "
                "x anchor size, no variances; softmax scores, background column 0", *super().summary()]


ST_SSD_MOBILENET_V2_FPNLITE = StSsdHead(
    outputs=(TensorSpec("StatefulPartitionedCall:2", (ANCHORS, 81), meaning="softmax scores, background column 0"),
             TensorSpec("StatefulPartitionedCall:1", (ANCHORS, 4), meaning="corner offsets in anchor widths/heights"),
             TensorSpec("StatefulPartitionedCall:0", (ANCHORS, 4),
                        meaning="anchors, normalised xmin ymin xmax ymax (the same for every image)")),
    num_classes=81, background_index=0, policies=(TF_OD_API, ST_APP), evaluated_images="all")

KIND = HeadKind(StSsdHead, StSsdDecoder, outputs_from_boxes)
