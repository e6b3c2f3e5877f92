"""Stage 5: raw head outputs -> detections -> COCO mAP.

Takes a head declaration (postprocess.heads) and plain image records (id, stem, width, height,
optionally the decoded size); never imports ssdconvert. The result files are read with the stage
vocabulary (stageio.reader). One job per module:

    heads       head declarations, one folder per kind (decoder, synthetic outputs), the registry
    candidates  the candidate softmax of anchor heads    nms        vectorised greedy NMS (shared machinery)
    coco        label map, results json                  evaluate   COCO stats (arrays, faster-coco-eval, pycocotools)
    cocoeval_numpy  pycocotools' COCOeval on arrays      parallel   decode + matching over forked workers
    detection_match  detections paired by IoU            synthetic  what the heads' synthetic outputs share
    images      what an evaluated image record has       errors     PostprocessError
"""

from postprocess.errors import PostprocessError

__all__ = ["PostprocessError"]
