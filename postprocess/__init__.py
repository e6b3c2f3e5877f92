"""Stage 5: raw head outputs -> detections -> COCO mAP.

Takes a head declaration (postprocess.heads) and plain image records (id, stem, width, height,
optionally the decoded size); never imports ssdconvert. One job per module:

    heads      head declarations + decoder_for       priors     NVIDIA default boxes (dboxes300_coco)
    decode     box coder, candidate softmax          nms        vectorised greedy NMS (MLPerf, Ascend, mmcv)
    detect     NVIDIA outputs of a batch -> dets     coco       label map, result rows, results json
    evaluate   faster-coco-eval / pycocotools stats  reader     ais_bench result layout, streaming
    synthetic  outputs from known boxes (tests, benchmarks)
"""

from postprocess.errors import PostprocessError
from postprocess.priors import PriorSpec

__all__ = ["PostprocessError", "PriorSpec"]
