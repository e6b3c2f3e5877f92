"""Stage 1: COCO annotations + images -> per-image input tensors (.bin) and manifest.json.

Takes plain parameters (an ImageTransform); never imports ssdconvert.
"""

from preprocess.errors import PreprocessError
from preprocess.spec import ImageTransform

__all__ = ["ImageTransform", "PreprocessError"]
