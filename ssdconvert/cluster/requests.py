"""What the driver sends with each cell: plain, picklable descriptions (no Ray objects but refs). The
backend, configured with its typed options (Ascend's chip, the compiler), travels with the cell
(schedule.Cell.backend)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssdconvert.cluster.transport import Bundle


@dataclass(frozen=True)
class BenchRequest:
    """One timed cell of a sweep: a model at one precision and one batch size."""

    bundle: Bundle
    batch: int
    max_batch: int  # the sweep's largest batch size: what a precision build is made at, as run_bench does
    duration: float
    warmup: int
    device: str  # --device as given: what CPU backends take (OpenVINO's device name)
    precision: str | None = None
    calib: Bundle | None = None  # a folder: primary "."
    feeds: Any = None  # the zoo model's FeedMaker (realistic inputs), or None: random ones
    flops_per_image: float | None = None


@dataclass(frozen=True)
class ShardRequest:
    """Consecutive whole batches of an infer run."""

    bundle: Bundle
    batch: int
    first_batch: int  # index of the shard's first batch in the whole run
    folders: tuple[str, ...]  # each model input's folder, relative to the shard's input root
    entries: tuple[tuple[str, str], ...]  # (path relative to the input root, path on the driver)
    stems: tuple[str, ...]  # output stems of the shard's samples, in order
    warmup: int = 1
    loop: int = 1
    device: str = "0"
    ref: Any = None  # ObjectRef of the packed entries, or None: the driver paths are read directly
