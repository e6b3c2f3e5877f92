"""TensorSpec: one sample's shape, the batch axis apart."""

from __future__ import annotations

import pytest

from stageio.tensor import TensorSpec, nbytes


def test_a_runtime_shape_is_split_into_the_batch_and_one_sample():
    dynamic = TensorSpec.batched("image", (None, 3, 300, 300))
    assert (dynamic.shape, dynamic.batch, dynamic.dtype) == ((3, 300, 300), None, "float32")
    assert dynamic.dims == (None, 3, 300, 300) and dynamic.describe() == "image ?x3x300x300 float32"
    fixed = TensorSpec.batched("count", (4,), "int64")
    assert (fixed.shape, fixed.batch, fixed.dims) == ((), 4, (4,))
    assert fixed.describe() == "count 4 int64" and fixed.size == 1 and fixed.nbytes == 8


def test_a_declared_tensor_has_no_batch_until_given_one():
    spec = TensorSpec("plabel", (81, 8732), meaning="class logits")
    assert spec.batch is None and spec.with_batch(16) == (16, 81, 8732) and spec.with_batch("N") == ("N", 81, 8732)
    assert spec.size == 707_292 and spec.nbytes == 2_829_168  # the ais_bench file of ssd-resnet34's plabel


@pytest.mark.parametrize("shape, dtype, expected", [
    ((3, 300, 300), "float32", 1_080_000), ((3, 300, 300), "float16", 540_000), ((300, 300, 3), "uint8", 270_000),
    ((3, None, None), "float32", None), ((), "int64", 8),
])
def test_bytes_of_one_sample(shape, dtype, expected):
    assert nbytes(shape, dtype) == expected
    assert TensorSpec("x", shape, dtype).nbytes == expected
    assert TensorSpec("x", shape, dtype).dynamic == (expected is None)
