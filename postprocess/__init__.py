"""Stage 5: raw head outputs (ploc/plabel) -> detections -> COCO mAP.

Takes a PriorSpec, NMS parameters and plain image records (id, stem, width, height); never
imports ssdconvert. One job per module:

    priors     default boxes (reference §6)          decode     box coder, candidate softmax (§7)
    nms        reference and Ascend NMS (§8, §9.2)   detect     outputs of a batch -> detections
    coco       label map, result rows, results json  evaluate   faster-coco-eval / pycocotools stats
    reader     ais_bench result layout, streaming    synthetic  outputs from known boxes (tests)
"""

from postprocess.errors import PostprocessError
from postprocess.priors import PriorSpec

__all__ = ["PostprocessError", "PriorSpec"]
