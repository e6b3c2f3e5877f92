"""Stage 5: raw head outputs -> detections -> COCO mAP.

Takes a head declaration (postprocess.heads) and plain image records (id, stem, width, height,
optionally the decoded size); never imports ssdconvert. One job per module:

    heads      head declarations + decoder_for       priors     NVIDIA default boxes (dboxes300_coco)
    decode     box coder, candidate softmax          nms        vectorised greedy NMS (MLPerf, Ascend, mmcv)
    detect     NVIDIA outputs of a batch -> dets     coco       label map, result rows, results json
    evaluate   COCO stats (the arrays, faster-coco-eval, pycocotools)
    cocoeval_numpy  pycocotools' COCOeval on arrays      reader     ais_bench result layout, streaming
    parallel   decode + matching over forked workers     synthetic  outputs from known boxes (tests, benchmarks)
"""

from postprocess.errors import PostprocessError
from postprocess.priors import PriorSpec

__all__ = ["PostprocessError", "PriorSpec"]
