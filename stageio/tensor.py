"""TensorSpec: the one description of a tensor, for every stage and runtime.

A model input or output (the zoo's declarations, a runner's or an ONNX graph's report), a head
output, what a preprocess `.bin` or a result `<stem>_<i>.bin` holds: all are a name, one sample's
shape and an element type.

The batch axis is never part of `shape`. `shape` is one sample's (one image's) dimensions: what one
file of the stages holds. A model's batch axis is `batch` apart: its fixed size, or None when it is
dynamic (or the tensor is not a model's, e.g. a file). `dims` joins them, batch first, as runtimes
and ONNX graphs report shapes; `TensorSpec.batched` reads such dims back.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Sequence

import numpy as np


def nbytes(shape: Sequence[int | None], dtype: str) -> int | None:
    """Bytes of a C-order tensor of `shape` and `dtype` (a numpy name); None when a dimension is unknown."""
    if None in shape:
        return None
    return prod(shape) * np.dtype(dtype).itemsize


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: name, one sample's shape (no batch axis; None where a dimension differs per sample or is
    dynamic) and numpy element type; for a model's tensor also its fixed batch (None: dynamic)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    batch: int | None = None
    meaning: str = ""  # what the values are, for people (e.g. a head's outputs)

    @classmethod
    def batched(cls, name: str, dims: Sequence[int | None], dtype: str = "float32") -> "TensorSpec":
        """From dims with the batch axis first (as a runtime or an ONNX graph reports them)."""
        dims = tuple(dims)
        return cls(name, dims[1:], dtype, batch=dims[0] if dims else None)

    @property
    def dims(self) -> tuple[int | None, ...]:
        """The shape with the batch axis first: (batch or None, *shape)."""
        return (self.batch, *self.shape)

    def with_batch(self, batch: int | str) -> tuple:
        """The shape of `batch` samples (an int, or a symbolic name such as "N")."""
        return (batch, *self.shape)

    @property
    def dynamic(self) -> bool:
        """True when a dimension of one sample is unknown (it differs per sample, e.g. an exact-mode image)."""
        return None in self.shape

    @property
    def size(self) -> int | None:
        """Elements of one sample, or None when dynamic."""
        return None if self.dynamic else prod(self.shape)

    @property
    def nbytes(self) -> int | None:
        """Bytes of one sample, or None when dynamic."""
        return nbytes(self.shape, self.dtype)

    def describe(self) -> str:
        """`name NxCxHxW dtype`, `?` for unknown dimensions (the batch first)."""
        dims = "x".join("?" if d is None else str(d) for d in self.dims)
        return f"{self.name} {dims} {self.dtype}"
