"""One small runner interface (in the spirit of Polygraphy's runners).

    with OnnxRuntimeRunner("model.onnx") as runner:
        outputs = runner.infer({"image": batch})      # dict name -> ndarray, in output order
        ms = runner.last_compute_ms                   # time of the runtime call only

A runner loads a model (`activate`), runs one batch at a time (`infer`) and releases it
(`deactivate`). `infer` times only the runtime call: no file I/O, no Python-side batching.
Subclasses implement `_activate`, `_infer`, `_deactivate` and fill `inputs` / `outputs`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ssdconvert.errors import SsdConvertError


class RunnerError(SsdConvertError):
    """A runtime cannot load or run the model."""


@dataclass(frozen=True)
class TensorMeta:
    """A model input or output. `shape` includes the batch axis; dynamic dims are None."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str  # numpy dtype name, e.g. "float32"

    @property
    def batch(self) -> int | None:
        return self.shape[0] if self.shape else None

    @property
    def sample_shape(self) -> tuple[int | None, ...]:
        return tuple(self.shape[1:])

    def sample_nbytes(self) -> int | None:
        """Bytes of one sample (batch axis excluded), or None if a non-batch dim is dynamic."""
        if any(d is None for d in self.sample_shape):
            return None
        return int(np.prod(self.sample_shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {dims} {self.dtype}"


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (runtimes raise multi-line errors)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def dim_or_none(d) -> int | None:
    """Normalise a runtime's dimension (int, -1, 'N', None, Dimension) to int or None."""
    if isinstance(d, (int, np.integer)) and int(d) >= 0:
        return int(d)
    return None


class Runner(ABC):
    """Base runner: context manager, per-call compute timing, I/O metadata."""

    name = "runner"  # short backend name (onnxruntime, openvino, ais_bench)

    def __init__(self, model: str | Path):
        self.model = Path(model)
        self.inputs: list[TensorMeta] = []
        self.outputs: list[TensorMeta] = []
        self.is_active = False
        self.last_compute_ms: float = 0.0
        self.compute_ms: list[float] = []  # every call since activation

    # -- lifecycle ----------------------------------------------------------------------------
    def activate(self) -> "Runner":
        if not self.is_active:
            if not self.model.exists():
                raise RunnerError(f"model not found: {self.model}")
            self._activate()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # -- inference ----------------------------------------------------------------------------
    def infer(self, feeds: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch. `feeds` maps input name -> array (or a list in input order).

        Returns output name -> array in the model's output order. The time of the runtime call
        alone is kept in `last_compute_ms` and appended to `compute_ms`.
        """
        if not self.is_active:
            raise RunnerError(f"{self.name} runner is not active; use it as a context manager")
        if not isinstance(feeds, Mapping):
            feeds = {meta.name: array for meta, array in zip(self.inputs, feeds)}
        arrays, ms = self._infer(feeds)
        self.last_compute_ms = ms
        self.compute_ms.append(ms)
        return dict(zip((o.name for o in self.outputs), arrays))

    def reset_timing(self) -> None:
        self.compute_ms = []

    @property
    def static_batch(self) -> int | None:
        """The batch the model is fixed to, or None if its batch axis is dynamic."""
        return self.inputs[0].batch if self.inputs else None

    def versions(self) -> dict[str, str]:
        """Runtime name -> version string, for reports."""
        return {}

    # -- for subclasses -----------------------------------------------------------------------
    @abstractmethod
    def _activate(self) -> None:
        """Load the model; fill `inputs` and `outputs`."""

    @abstractmethod
    def _infer(self, feeds: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], float]:
        """Return (outputs in output order, compute milliseconds)."""

    def _deactivate(self) -> None:
        pass

    @staticmethod
    def _clock() -> float:
        return time.perf_counter()
