"""Eval over several processes gives exactly the one-process result: rows in image order, stats equal."""

from __future__ import annotations

import numpy as np
import pytest

from postprocess.evaluate import coco_stats, load_ground_truth
from postprocess.heads import SSD300_NVIDIA, decoder_for
from postprocess.parallel import decode_rows
from postprocess.heads.nvidia_ssd.synthetic import realistic_outputs
from stageio.reader import scan_results


@pytest.fixture(scope="module")
def noisy(tmp_path_factory, coco):
    """Detector-like outputs (hundreds of candidates per image) for the synthetic set, on disk."""
    ploc, plabel = realistic_outputs(coco.boxes, coco.labels, np.random.default_rng(11))
    folder = tmp_path_factory.mktemp("noisy")
    for k, im in enumerate(coco.images):
        ploc[k].tofile(folder / f"{im.stem}_0.bin")
        plabel[k].tofile(folder / f"{im.stem}_1.bin")
    outputs = SSD300_NVIDIA.outputs
    return scan_results(folder, coco.images, outputs)


class Count:
    def __init__(self):
        self.n = 0

    def update(self, n: int) -> None:
        self.n += n


def test_rows_do_not_depend_on_the_number_of_workers(noisy, coco):
    decoder = decoder_for(SSD300_NVIDIA)
    inv_map = SSD300_NVIDIA.category_ids(coco.doc["categories"])
    one = decode_rows(noisy, decoder, inv_map, workers=1)
    counted = Count()
    three = decode_rows(noisy, decoder, inv_map, workers=3, images_per_task=4, progress=counted)
    assert len(one) == 200 * len(coco.images)  # every image has its 200 detections
    np.testing.assert_array_equal(three, one)  # same rows, same order (image order)
    assert counted.n == len(coco.images)


def test_library_stats_do_not_depend_on_workers_or_groups(noisy, coco):
    decoder = decoder_for(SSD300_NVIDIA)
    rows = decode_rows(noisy, decoder, SSD300_NVIDIA.category_ids(coco.doc["categories"]))
    gt = load_ground_truth(coco.annotation, "faster-coco-eval")
    ids = [im.id for im in coco.images]
    whole = coco_stats(gt, rows, ids, "faster-coco-eval", max_rows=10 ** 9)
    assert coco_stats(gt, rows, ids, "faster-coco-eval", max_rows=500, workers=1) == whole
    assert coco_stats(gt, rows, ids, "faster-coco-eval", max_rows=500, workers=2) == whole
    assert coco_stats(gt, rows, ids, "faster-coco-eval", workers=3) == whole
    assert whole[0] > 0.05  # the noisy detections overlap the objects: a real, non-zero AP


def test_array_stats_do_not_depend_on_slices_or_workers(noisy, coco):
    """Matching in decode workers per slice of images, then ranking categories in 1-3 workers, gives
    pycocotools' stats of all the rows at once, bit for bit (faster-coco-eval's differ from both in
    the last bit of some means)."""
    from postprocess.evaluate import ArrayEvaluation
    from postprocess.parallel import decode_slices, joined_rows

    decoder = decoder_for(SSD300_NVIDIA)
    inv_map = SSD300_NVIDIA.category_ids(coco.doc["categories"])
    gt = load_ground_truth(coco.annotation)
    ids = [im.id for im in coco.images]
    arrays = ArrayEvaluation(gt, ids)
    parts = decode_slices(noisy, decoder, inv_map, workers=3, images_per_task=4, then=arrays.match)
    assert len(parts) == -(-len(ids) // 4)
    library = coco_stats(load_ground_truth(coco.annotation, "pycocotools"), joined_rows(parts), ids, "pycocotools")
    matches = [m for _, m in parts]
    assert arrays.stats(matches) == library
    assert arrays.stats(matches[::-1], workers=2) == library  # slices in any order
    assert arrays.stats(matches, workers=3) == library
    assert library[0] > 0.05


def test_mapped_files_decode_as_the_arrays_in_memory(noisy, coco):
    """The reader hands the decoder views of the mapped files; the rows equal those of decoding the
    same outputs generated in memory, stacked (no file, no mapping)."""
    ploc, plabel = realistic_outputs(coco.boxes, coco.labels, np.random.default_rng(11))
    decoder = decoder_for(SSD300_NVIDIA)
    inv_map = SSD300_NVIDIA.category_ids(coco.doc["categories"])
    in_memory = decoder.rows(decoder.select([ploc, plabel]), coco.images, inv_map)
    np.testing.assert_array_equal(decode_rows(noisy, decoder, inv_map, batch_size=3), in_memory)


def test_the_transform_gets_read_only_views_of_the_files(noisy):
    from stageio.reader import read_batches

    seen = []

    def transform(arrays):
        seen.extend(a for per_image in arrays for a in per_image)
        return [np.stack(per_image) for per_image in arrays]

    list(read_batches(noisy, batch_size=4, transform=transform))
    assert len(seen) == 2 * len(noisy.present)
    assert not any(a.flags.writeable or a.flags.owndata for a in seen)  # views, not copies
