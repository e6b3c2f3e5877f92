"""Faster R-CNN R-101-FPN 1x (maskrcnn-benchmark `e2e_faster_rcnn_R_101_FPN_1x.pth`, box AP 39.1).

One module per job, torch imported only by the modules that need it:

    config     the reference's test configuration (plain data)
    network    the modules, key-compatible with maskrcnn-benchmark checkpoints
    boxes      legacy +1/-1 geometry: anchors, coder, clip, IoU, NMS, LevelMapper, ROIAlign
    reference  the reference test path, per image and data-dependent (the ground truth)
    onnx_ops   NonMaxSuppression and RoiAlign as autograd Functions with ONNX symbolics
    fixed      the exportable fixed-size detector (dynamic batch, K detections per image)
    split      dense model + box-head model with proposal selection and RoIAlign on the host
    layouts    checkpoint key layout and cell-anchor check
    export     ONNX export and detection-level validation
"""
