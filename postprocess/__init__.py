"""Stage 5: raw head outputs (ploc/plabel) -> detections -> COCO mAP.

Takes a PriorSpec and decoder parameters; never imports ssdconvert.
"""

from postprocess.errors import PostprocessError
from postprocess.priors import PriorSpec

__all__ = ["PostprocessError", "PriorSpec"]
