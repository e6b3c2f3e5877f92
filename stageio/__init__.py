"""The I/O vocabulary every stage speaks: one tensor description and the files the stages exchange.

A leaf: it imports nothing from ssdconvert, preprocess or postprocess, and all three import it.

    tensor   TensorSpec: a model's or a file's tensor (name, one sample's shape, dtype; the batch apart)
    files    crash-safe tensor files: written under a temporary name, renamed when complete
    results  the ais_bench result layout: `<stem>_<i>.bin` per sample and output, device folders,
             `<folder>_summary.json`, the one stem rule, writing a batch's outputs
    reader   a result folder checked against the samples and outputs, read in streamed batches
    errors   LayoutError: result files that do not fit the layout
"""

from stageio.errors import LayoutError
from stageio.tensor import TensorSpec

__all__ = ["LayoutError", "TensorSpec"]
