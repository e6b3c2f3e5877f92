"""Shared Faster R-CNN fixtures: one batch of test images, their reference detections (128x160 canvas).

The demo model (`frcnn_model`) and the export (`frcnn_export`) are in tests/conftest.py: the
contract suite uses them too.

The canvas is small on purpose: the network costs ~290 GMAC per image at 800x1344 and ~20 GMAC
here (the box head's 1000 RoIs dominate). Everything is session-scoped so the export, the ONNX
Runtime sessions and the reference detections are made once.

The model is the zoo's demo model (seeded `randomize`, then ssdconvert.zoo.faster_rcnn.demo's
calibration, whose calibration images are these test images): plentiful, varied detections, more
than 100 candidates per image. Images: a flat colour, six coloured rectangles and noise (in the
BGR-minus-mean value range), zero past each image's unpadded size as preprocess pads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssdconvert.zoo.faster_rcnn.demo import CALIBRATION_CANVAS, CALIBRATION_SEED, CALIBRATION_SIZES, synthetic_images

CANVAS = CALIBRATION_CANVAS
SIZES = list(CALIBRATION_SIZES)  # unpadded (h, w): clipping differs per image
IMAGE_SEED = CALIBRATION_SEED


@pytest.fixture(scope="session")
def frcnn_images():
    return synthetic_images(SIZES, CANVAS, IMAGE_SEED)


@pytest.fixture(scope="session")
def frcnn_batches(frcnn_images):
    """Validation batches at batch 1 and 3 (different image contents and sizes)."""
    from ssdconvert.zoo.faster_rcnn.validation import ValidationBatch

    images = frcnn_images.numpy()
    return {1: ValidationBatch(images[:1], SIZES[:1]), 3: ValidationBatch(images, SIZES)}


@pytest.fixture(scope="session")
def frcnn_reference(frcnn_model, frcnn_batches):
    """reference.detect on each validation batch, as ImageDetections."""
    from ssdconvert.zoo.faster_rcnn.validation import reference_detections

    return {n: reference_detections(frcnn_model, batch) for n, batch in frcnn_batches.items()}


@pytest.fixture(scope="session")
def run_onnx():
    """run_onnx(path, batch) -> the four fixed-K outputs from ONNX Runtime."""
    import onnxruntime as ort

    from ssdconvert.zoo.faster_rcnn.fixed import INPUT_NAMES

    def run(path: Path, batch) -> list[np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {INPUT_NAMES[0]: batch.images, INPUT_NAMES[1]: batch.im_info})

    return run


@pytest.fixture(scope="session")
def frcnn_split(tmp_path_factory, frcnn_model, frcnn_spec):
    """The split variant for the small canvas through the family's exporter (validated at batch 1 and 3):
    (dense WrittenGraph, head WrittenGraph, composite descriptor), unsimplified (see frcnn_export)."""
    from ssdconvert.checkpoints import WeightsSource
    from ssdconvert.export import export_model

    out = tmp_path_factory.mktemp("split") / "faster_rcnn_r101_fpn.onnx"
    result = export_model(frcnn_model, frcnn_spec, out, weights=WeightsSource(random_seed=0, demo=True), batch=3,
                          variant="split", simplify_model=False)
    dense, head = result.graphs
    return dense, head, result.onnx_path
