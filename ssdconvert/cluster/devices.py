"""Which host and device a task runs on, and the `--device` its vendor tool takes there.

The trap: a visible-devices mask renumbers devices. With `ASCEND_RT_VISIBLE_DEVICES=3` the NPU
that `npu-smi` calls 3 is device 0 for ACL, ais_bench and `InferSession`; with
`MLU_VISIBLE_DEVICES=4,5` MLU 5 is device 1 for CNRT and MagicMind. So a task records the
physical id (the host's numbering, what Ray assigned) and passes the logical one, which the
backend maps from it (`Backend.cluster_device`: its position in the mask this process sees).

- An id Ray assigns (NPU, `ClusterResource.ray_assigns_ids`): `get_accelerator_ids()["NPU"]`,
  already mapped through the mask the node was started with; Ray sets `ASCEND_RT_VISIBLE_DEVICES`
  to it before the task runs, so the logical id is 0. With
  `RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES=1` Ray leaves the mask alone and the logical
  id is the physical id's position in it.
- A custom resource (MLU, no ids from Ray): the task takes the first free slot 0..N-1 of its node
  (N = the node's `MLU` amount) under a file lock held while it runs; Ray never runs more than N
  such tasks on the node, so a slot is always free. Slot i is the i-th id of the node's
  `MLU_VISIBLE_DEVICES`, or MLU i without a mask.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from ssdconvert.backends.base import CPU_CORES, Backend
from ssdconvert.errors import SsdConvertError


@dataclass(frozen=True)
class Placement:
    """Where one task ran."""

    host: str  # the node's host name
    node: str  # Ray node id (hex)
    resource: str  # NPU, MLU or CPU
    physical: str | None = None  # the host's device id (npu-smi / cnmon numbering); None for CPU cells
    logical: str | None = None  # what --device took inside the task (after the visible-devices mask)

    @property
    def device(self) -> str:
        """For reports: `NPU 3` (physical id), or `CPU`."""
        return self.resource if self.physical is None else f"{self.resource} {self.physical}"

    def to_dict(self) -> dict:
        return asdict(self)


@contextmanager
def claim(backend: Backend | None) -> Iterator[Placement]:
    """Inside a Ray task: the placement of this task, with the device a cell of `backend` holds
    (`cluster_resource`; None: nothing, a CPU cell) held until the block ends."""
    import ray

    context = ray.get_runtime_context()
    host, node = socket.gethostname(), context.get_node_id()
    resource = backend.cluster_resource if backend is not None else CPU_CORES
    if not resource.device:
        yield Placement(host, node, resource.name)
        return
    mask = os.environ.get(resource.visible_env or "")
    if resource.ray_assigns_ids:
        ids = context.get_accelerator_ids().get(resource.name) or []
        if not ids:
            raise SsdConvertError(f"Ray assigned this task no {resource.name} id")
        physical = str(ids[0])
        yield Placement(host, node, resource.name, physical, backend.cluster_device(physical, mask))
        return
    with _slot(node, resource.name, _node_amount(node, resource.name)) as slot:
        physical = mask.split(",")[slot].strip() if mask and mask.strip() else str(slot)
        yield Placement(host, node, resource.name, physical, backend.cluster_device(physical, mask))


def _node_amount(node: str, name: str) -> int:
    import ray

    for entry in ray.nodes():
        if entry.get("NodeID") == node:
            return int(entry.get("Resources", {}).get(name, 0))
    return 0


def slot_lock(node: str, name: str, slot: int) -> Path:
    """The file whose flock holds slot `slot` of resource `name` on `node` (its folder made)."""
    folder = Path(tempfile.gettempdir()) / "ssdconvert-cluster-slots" / node
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{slot}.lock"


@contextmanager
def _slot(node: str, name: str, count: int) -> Iterator[int]:
    """The first free slot of `count` on this node, held (an flock) until the block ends."""
    for slot in range(count):
        handle = open(slot_lock(node, name, slot), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield slot
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    raise SsdConvertError(f"every {name} slot of this node ({count}) is taken: was `ray start --resources` given "
                          f"more {name}s than the node has?")
